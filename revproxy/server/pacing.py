"""How fast a client connection goes: its deadlines, back-pressure and slow clients.

``PacingMixin`` is the part of ``ClientConnection`` (``revproxy.server.protocol``) that
answers to time and to the client's pace: the deadline kinds (header, body, idle, send) and
what happens when one expires, the request body's minimum rate, the transport's
pause/resume passed on to the current producer, a client that falls behind (its next
pipelined request held, ``DrainWatch`` measuring it against ``min_response_rate``), and the
closes ``Stats`` asks for (``shed`` at the connection ceiling, ``close_if_idle`` at
shutdown). It shares the connection's attributes (set in ``ClientConnection.__init__``) and
calls its ``_close``, ``_abort``, ``_refuse``, ``_rid``, ``reply_and_close``,
``abort_response`` and ``_next_request``.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.netio import unsent_bytes
from revproxy.protection.rates import RateWindow
from revproxy.protection.slowread import DrainWatch

log = Logger(namespace="revproxy.server")

_HEADER, _BODY, _IDLE, _SEND = "header", "body", "idle", "send"
# Output waiting for the client beyond this means it has not taken a response yet: its next
# (pipelined) request waits. Also how often, in bytes written, that is looked at.
BEHIND = 65536


class PacingMixin:
    """Deadlines, flow control and slow clients of a ``ClientConnection`` (with
    ``revproxy.timers.DeadlineMixin`` for ``_arm`` / ``_cancel_timer``)."""

    # -- the client's reading speed (min_response_rate; revproxy.protection.slowread) -------
    def bytes_taken(self):
        """What the client took of our output: written, less what still waits in our buffers
        (the outbox, the transport's own buffer, the kernel's unacknowledged queue)."""
        transport = self.transport
        return (self.bytes_out - self._outbox.pending_bytes(transport)
                - unsent_bytes(transport))

    def output_waiting(self):
        """Output waits for the client: it is the bottleneck."""
        transport = self.transport
        return (self.writing_paused or unsent_bytes(transport) > 0
                or self._outbox.pending_bytes(transport) > 0)

    def behind(self):
        """More than ``BEHIND`` bytes of our output wait for the client."""
        return self.writing_paused or unsent_bytes(self.transport) > BEHIND

    def _fell_behind(self):
        """At the end of a response: has the client fallen behind? Looked at (a system call)
        only once per ``BEHIND`` bytes written, so small responses to a fast client cost
        nothing."""
        if self.writing_paused:
            return True
        if self.bytes_out - self._checked_out < BEHIND:
            return False
        self._checked_out = self.bytes_out
        return unsent_bytes(self.transport) > BEHIND

    def caught_up(self):
        """The client took what held its next request back: go on with it."""
        if self.held:
            self.held = False
            if self._timer_kind == _SEND:
                self._cancel_timer()
            if self._drain is not None and not self.writing_paused:
                self._drain.stop()
            if not self._closing:
                self._next_request()

    def _watch_drain(self):
        """The client fell behind (paused us, we wait for it before its next request, or we
        close with output unsent): measure it."""
        limits = self._limits
        if not limits.min_response_rate and not self.held:
            return
        drain = self._drain
        if drain is None:
            drain = self._drain = DrainWatch(self, self.runtime.deadlines, self._clock,
                                             limits.min_response_rate, limits.min_rate_grace)
        drain.start()

    def reader_too_slow(self, rate, window):
        """The client took our output slower than ``min_response_rate``: cut it off."""
        self.runtime.stats.slow_response_cuts += 1
        reason = "client too slow: took %.0f B/s over %.1fs (min_response_rate %d B/s)" % (
            rate, window, self._limits.min_response_rate)
        if self._request is not None and self._tunnel is None:
            self.abort_response(reason)
            return
        log.warn("{ip} connection aborted: {reason}", ip=self.client_ip, reason=reason)
        self._abort()

    # -- flow control: the transport tells us; we tell the current producer ----------------
    def set_producer(self, producer):
        self._producer = producer
        if producer is not None and self.writing_paused:
            producer.pauseProducing()

    def pauseProducing(self):
        self.writing_paused = True
        if self.deadline is None:
            self._arm(self._limits.send_timeout, _SEND)
        self._watch_drain()
        if self._producer is not None:
            self._producer.pauseProducing()

    def resumeProducing(self):
        self.writing_paused = False
        if self.held:
            if not self.behind():
                self.caught_up()
        elif self._timer_kind == _SEND:
            self._cancel_timer()
        if self._drain is not None and not self.held:
            # Everything buffered was taken (>= the transport's buffer size since the pause):
            # the client keeps up for now.
            self._drain.stop()
        if self._producer is not None:
            self._producer.resumeProducing()

    def stopProducing(self):
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()

    def _pause_reading(self):
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()

    # -- deadlines ------------------------------------------------------------------------
    def _arm_body(self):
        """The body's deadline: ``body_timeout`` of silence, or with ``min_request_rate``
        windows of ``min(min_rate_grace, body_timeout)`` that must each keep up the rate."""
        limits = self._limits
        if not limits.min_request_rate:
            self._body_rate = None
            self._arm(limits.body_timeout, _BODY)
            return
        window = min(limits.min_rate_grace, limits.body_timeout)
        self._body_rate = RateWindow(limits.min_request_rate, window, self._clock.seconds(),
                                     self.bytes_in)
        self._arm(window, _BODY)

    def expired(self, now):
        kind, self._timer_kind = self._timer_kind, None
        if kind is not None and not self._closing:
            self._timed_out(kind)

    def _timed_out(self, kind):
        if kind == _IDLE:
            self._close()
        elif kind == _SEND:
            self.abort_response("client did not read for %gs" % self._limits.send_timeout)
        elif self._request is not None and not self._writer.started:
            if kind == _BODY and self._body_rate is not None:
                window = self._body_rate
                elapsed = self._clock.seconds() - window.started
                rate = window.check(window.started + elapsed, self.bytes_in)
                if rate is None:
                    self._arm(window.window, _BODY)
                    return
                log.info("{ip} rid={rid} 408: request body too slow: {rate:.0f} B/s over "
                         "{t:.1f}s (min_request_rate {min} B/s)", ip=self.client_ip,
                         rid=self._rid(), rate=rate, t=elapsed, min=self._limits.min_request_rate)
            else:
                log.info("{ip} rid={rid} 408: request body too slow", ip=self.client_ip,
                         rid=self._rid())
            self.runtime.stats.slow_request_cuts += 1
            self._request.fail_request(408, "request body not received in time")
        elif self._request is None:
            reason = "request head not received in time"
            if self._parser.buffered_bytes():
                started = self._clock.seconds() - self._limits.header_timeout
                self._refuse(408, reason, started)
            else:
                # no byte of a request: nothing to log as a request (nginx neither)
                log.info("{ip} 408: {reason}", ip=self.client_ip, reason=reason)
                self._closing = True
                self.reply_and_close(408, reason)

    # -- closes Stats asks for (connection ceiling, shutdown) ------------------------------
    def shed(self):
        """Close this idle keep-alive connection to make room for a new one (the total
        ceiling was reached; ``Stats`` no longer counts it)."""
        log.info("{ip} idle keep-alive connection closed to admit a new one", ip=self.client_ip)
        self._cancel_timer()
        self._close()

    def close_if_idle(self):
        """Shutdown: close a keep-alive connection that has no request in progress."""
        if self._request is None and not self._parser.buffered_bytes() and self._tunnel is None:
            self._close()
