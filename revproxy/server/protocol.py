"""The client-facing HTTP/1.1 connection: parsing, deadlines, pipelining, flow control.

One request is handled at a time: pipelined requests wait, parsed only once the response to
the previous one is complete, and reading stops while too many of their bytes are waiting.
Each request's journey is a ``ProxyRequest`` (``revproxy.server.proxy``); this module only
owns the connection. Its deadlines, flow control and slow-client handling are
``revproxy.server.pacing``; admitting it, ``revproxy.server.admission``.
"""

from __future__ import annotations

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from revproxy.http1.errors import ProtocolError
from revproxy.pipeline.hooks import run_phase
from revproxy.http1.parser import CLOSED, END, NEED_DATA, PAUSED, RequestParser
from revproxy.netio import unsent_bytes
from revproxy.server import replies
from revproxy.server.accesslog import AccessRecord
from revproxy.server.admission import admit
from revproxy.server.pacing import _BODY, _HEADER, _IDLE, _SEND, PacingMixin
from revproxy.server.tunnel import Tunnel
from revproxy.server.writer import ResponseWriter
from revproxy.timers import DeadlineMixin

log = Logger(namespace="revproxy.server")


@implementer(IHandshakeListener)  # told when a TLS listener's handshake completes
class ClientConnection(PacingMixin, DeadlineMixin, Protocol):
    """One client connection. ``runtime`` is the config snapshot it was accepted under."""

    address = None  # the peer address its factory was asked for (see admit)

    def __init__(self, runtime, scheme="http", listener=""):
        self.runtime = runtime
        self.scheme = scheme
        self.listener = listener
        self.peer = None
        self.client_ip = ""
        self.client_port = 0
        self._clock = runtime.clock
        self._limits = runtime.config.limits
        self._parser = RequestParser(runtime.parser_limits)
        self._request = None
        self._writer = None
        self._producer = None
        self.deadline = None  # absolute time; Runtime.deadlines calls expired() after it
        self._timer_kind = None
        self._processing = False
        self._reading_paused = False
        self.writing_paused = False
        self._closing = False
        self._tunnel = None
        self._outbox = runtime.outbox
        self.counted = False
        self.bytes_in = 0  # everything received (the request body's minimum rate)
        self.bytes_out = 0  # everything written (what the client took: bytes_taken())
        self._body_rate = None  # RateWindow of the request body, when min_request_rate is on
        self._drain = None  # DrainWatch, made the first time the client falls behind
        self.held = False  # the next request waits until the client took the last response
        self._checked_out = 0  # bytes_out when the kernel's queue was last looked at

    @property
    def activity(self) -> str:
        """What the connection does now (the admin status counts them): "tunnel",
        "request" (a request in progress), "idle" (keep-alive, between requests) or
        "head" (reading a request head)."""
        if self._tunnel is not None:
            return "tunnel"
        if self._request is not None:
            return "request"
        if self._timer_kind == _IDLE:
            return "idle"
        return "head"

    # -- Twisted ---------------------------------------------------------------------------
    def connectionMade(self):
        transport = self.transport
        if not admit(self):
            self._abort()
            return
        self.counted = True
        self.runtime.deadlines.watch(self)
        try:
            transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        transport.registerProducer(self, True)
        self._arm(self._limits.header_timeout, _HEADER)
        hooks = self.runtime.hooks.connection_made
        if hooks:
            self._pause_reading()  # nothing is parsed before the hooks let the connection in
            run_phase(hooks, (self.peer,), self._admitted, self._refused, self._hook_failed)

    def handshakeCompleted(self):
        """IHandshakeListener: the TLS handshake is done; fill ``peer.tls`` (before any
        request byte is delivered)."""
        tls = self.peer.tls if self.peer is not None else None
        if tls is not None:
            tls.fill(self.transport.getHandle())

    def _admitted(self):
        if not self._closing and self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()

    def _refused(self, answer):
        """A connection_made hook refused this client: answer it and close."""
        if self._closing:
            return
        log.info("{ip} {status}: {reason}", ip=self.client_ip, status=answer.status,
                 reason=answer.reason or "refused by a hook")
        self._closing = True
        self.reply_and_close(answer.status, answer.reason)

    def _hook_failed(self, failure):
        log.failure("{ip}: a connection_made hook failed; closing", failure, ip=self.client_ip)
        self._abort()

    def dataReceived(self, data):
        if self._tunnel is not None:
            self._tunnel.write(data)
            return
        if self._closing:
            return
        self.bytes_in += len(data)
        if self._timer_kind == _IDLE:
            self.runtime.stats.idle.discard(self)
            self._arm(self._limits.header_timeout, _HEADER)
        elif self._timer_kind == _BODY and self._body_rate is None:
            self._arm(self._limits.body_timeout, _BODY)
        self._parser.feed(data)
        self._process()

    def connectionLost(self, reason=None):
        self._closing = True
        self._cancel_timer()
        self.runtime.deadlines.unwatch(self)
        if self._drain is not None:
            self._drain.stop()
        if self.counted:
            self.counted = False
            self.runtime.stats.connection_closed(self)
        if self._tunnel is not None:
            tunnel, self._tunnel = self._tunnel, None
            tunnel.loseConnection()  # unregisters the producer first: see _close
        request, self._request = self._request, None
        if request is not None:
            request.connection_lost()
        self._producer = None

    # -- parsing loop ----------------------------------------------------------------------
    def _process(self):
        if self._processing:
            return  # the outer loop picks up whatever changed
        if self.held:
            # the previous response still waits for the client (see response_done)...
            if self.behind():
                if self._parser.buffered_bytes() > self._limits.max_pipeline_bytes:
                    self._pause_reading()
                return
            # ...or no longer: a keep-alive client sends its next request once it has the
            # whole response, maybe before our poll saw the last acknowledgements
            self.caught_up()
            return
        self._processing = True
        parser = self._parser
        try:
            while not self._closing:
                try:
                    event = parser.next_event()
                except ProtocolError as e:
                    self._protocol_error(e)
                    return
                if event.__class__ is bytes:
                    self._request.body_data(event)
                elif event is NEED_DATA or event is PAUSED:
                    if parser.buffered_bytes() > self._limits.max_pipeline_bytes:
                        self._pause_reading()
                    return
                elif event is END:
                    if self._timer_kind == _BODY:
                        self._cancel_timer()
                    self._body_rate = None
                    self._request.body_end()
                elif event is CLOSED:
                    self._close_when_idle()
                    return
                else:
                    self._begin(event)
        finally:
            self._processing = False

    def _begin(self, head):
        self._cancel_timer()
        writer = ResponseWriter(self, head.method, head.version, head.keep_alive)
        self._writer = writer
        self.runtime = runtime = self.runtime.holder.current  # each request: the newest config
        self._limits = runtime.config.limits
        self._request = runtime.new_request(self.peer, head, writer)
        if self._request is not None and not writer.started and head.framing:
            self._arm_body()
        if self._request is not None:
            self._request.begin()

    def _protocol_error(self, error):
        request = self._request
        if request is None:
            self._refuse(error.status, error.reason, self._head_started())
            return
        log.info(
            "{ip} rid={rid} {status} bad request: {reason}",
            ip=self.client_ip, rid=self._rid(), status=error.status, reason=error.reason,
        )
        request.fail_request(error.status, error.reason)

    def _head_started(self):
        """When the head being read began to arrive: the header deadline was armed then (at
        accept, or at the first byte after an idle spell), so no clock read per request."""
        if self._timer_kind == _HEADER:
            return self.deadline - self._limits.header_timeout
        return self._clock.seconds()

    def _refuse(self, status, reason, started):
        """Answer a request refused before it had a ``ProxyRequest`` (the parser's errors,
        a head too slow), close, and give it an access-log line as nginx does: the request
        line as far as it arrived, a new request id (also in the error log line)."""
        rid = self.runtime.new_request_id()
        log.info("{ip} rid={rid} {status} bad request: {reason}", ip=self.client_ip,
                 rid=rid.decode("ascii"), status=status, reason=reason)
        method, target, version = self._parser.partial_request_line()
        self._closing = True
        writer = self.reply_and_close(status, reason)
        access_log = self.runtime.access_log
        if access_log is not None:
            access_log.log(AccessRecord(
                self.client_ip, started, method, target, version, status, writer.bytes_sent,
                total_time=self._clock.seconds() - started, request_id=rid))

    def _rid(self):
        """The current request's id for log lines (``-`` before a request has one)."""
        request = self._request
        return request.request_id.decode("ascii", "replace") if request is not None else "-"

    def _close_when_idle(self):
        if self._request is None:
            self._close()

    # -- what a request calls --------------------------------------------------------------
    def write(self, data):
        self.bytes_out += len(data)
        self._outbox.write(self.transport, data)

    def _close(self):
        """Close once everything written so far has been sent.

        We stay registered as the transport's producer for the connection's whole life; it
        must be unregistered first: Twisted's TLS wrapper does not close while a producer is
        registered (plain TCP does, which hid this)."""
        self._closing = True
        transport = self.transport
        self._outbox.flush(transport)
        transport.unregisterProducer()
        transport.loseConnection()
        if unsent_bytes(transport):
            # loseConnection waits for the client to take the rest: bound that wait too
            self._watch_drain()

    def _abort(self):
        self._closing = True
        self._outbox.discard(self.transport)
        self.transport.abortConnection()

    def send_continue(self):
        """Answer ``Expect: 100-continue`` once the request has been accepted."""
        self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def reply_and_close(self, status, reason):
        """A complete error response for a request that never got a ProxyRequest."""
        writer = ResponseWriter(self, b"GET", b"1.1", False)
        self._writer = writer
        replies.send(writer, status, self.runtime.clock.seconds())
        return writer

    def response_done(self, keep_alive):
        """The current response is complete: close, or move on to the next request."""
        request, self._request = self._request, None
        self._writer = None
        self._producer = None
        if request is not None:
            request.response_done()
        if self._closing or not keep_alive or self.runtime.stats.shutting_down:
            self._close()
            return
        self._parser.start_next()
        if self._fell_behind():
            # The client has not taken this response yet: its next request waits until it
            # has (DrainWatch polls; or resumeProducing). Otherwise a pipelining slow reader
            # makes us fetch and send response after response that it will never read, into
            # a kernel socket buffer that grows to megabytes (measured: 1,000 slow readers
            # asking for ten 100 KiB responses each kept the proxy busy for seconds).
            self.held = True
            self._arm(self._limits.send_timeout, _SEND)
            self._watch_drain()
            return
        self._next_request()

    def _next_request(self):
        """Wait for, or start on, the next request of a keep-alive connection."""
        if self._parser.buffered_bytes():
            self._arm(self._limits.header_timeout, _HEADER)
        else:
            self._arm(self._limits.idle_timeout, _IDLE)
            self.runtime.stats.idle.add(self)
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()
        self._process()


    def abort_response(self, reason, hard=True):
        """A response could not be completed: close so the client sees a broken message.

        ``hard`` resets the connection at once (unsent bytes dropped); otherwise what was
        written is flushed before the close, for framings that show the truncation."""
        log.warn("{ip} rid={rid} response aborted: {reason}", ip=self.client_ip, rid=self._rid(),
                 reason=reason)
        request, self._request = self._request, None
        self._closing = True
        if request is not None:
            request.response_done()
        if hard:
            self._abort()
        else:
            self._close()

    def start_tunnel(self, upstream):
        """After a 101: bytes flow both ways untouched until either side closes, the tunnel
        stays idle for ``tunnel_idle_timeout`` or reaches ``tunnel_max_lifetime``."""
        self._cancel_timer()
        self._outbox.flush(self.transport)
        limits = self._limits
        tunnel = Tunnel(self._clock, self.runtime.deadlines, self.transport, upstream.transport,
                        limits.tunnel_idle_timeout, limits.tunnel_max_lifetime,
                        "%s rid=%s" % (self.client_ip, self._rid()))
        self._tunnel = tunnel.to_backend
        self.transport.unregisterProducer()
        upstream.start_tunnel(tunnel.to_client)
        remaining = self._parser.take_remaining()
        if remaining:
            tunnel.to_backend.write(remaining)
        # Back-pressure both ways: each transport pauses the other's reading.
        self.transport.registerProducer(upstream.transport, True)
        upstream.transport.registerProducer(self.transport, True)
        request, self._request = self._request, None
        if request is not None:
            request.response_done()


class ProxyFactory(Factory):
    """Builds a ``ClientConnection`` on the runtime current at accept time."""

    noisy = False

    def __init__(self, runtime_holder, scheme="http", listener=""):
        self._holder = runtime_holder
        self._scheme = scheme
        self._listener = listener

    def buildProtocol(self, addr):
        runtime = self._holder.current
        access = runtime.ip_access
        # The TCP peer decides; with the PROXY protocol this check moves to after its header.
        if access is not None and access.refuses(self._listener, getattr(addr, "host", "")):
            if self._scheme == "http":
                return None  # the port closes the socket at once: not a byte read or sent
            return _Refused()  # a TLS wrapper cannot take None: abort before any handshake
        conn = ClientConnection(runtime, self._scheme, self._listener)
        conn.address = addr
        return conn


class _Refused(Protocol):
    """A connection refused at accept on a wrapped (TLS) listener: aborted at once."""

    def makeConnection(self, transport):
        transport.abortConnection()
