"""One persistent HTTP/1.1 connection to a backend member, one exchange at a time.

The exchange's handler hears, in order: ``upstream_informational(head)`` for each 1xx (not 101),
``upstream_head(head)``, ``upstream_data(bytes)`` for each body piece, then exactly one of
``upstream_end()`` or ``upstream_failed(UpstreamError)``; ``upstream_waiting()`` whenever the
bytes received so far are used up (a moment to flush what was held back). Before ``upstream_end`` the connection
has already gone back to its pool (or been closed), so the next request can reuse it at once.
"""

from __future__ import annotations

from twisted.internet.protocol import Protocol

from revproxy.http1.errors import ProtocolError
from revproxy.http1.parser import END, NEED_DATA, ResponseParser
from revproxy.upstream import errors
from revproxy.timers import DeadlineMixin

_CHUNK = 65536
IDLE = "idle"


class _SpoolSender:
    """A pull producer writing a buffered request body from its spool to the backend.

    ``done`` turns True once the whole body has been handed to the transport; until then the
    connection carries a half-sent request and must never serve another one."""

    def __init__(self, transport, spool):
        self._transport = transport
        self._spool = spool
        self.done = False
        transport.registerProducer(self, False)

    def resumeProducing(self):
        if self.done:
            return
        data = self._spool.read(_CHUNK)
        if data:
            self._transport.write(data)
        else:
            self.done = True
            self._transport.unregisterProducer()

    def stopProducing(self):
        """The transport is going away: stop reading the spool (it may be closed next)."""
        self._spool = None
        self.done = True

    def pauseProducing(self):
        pass


class UpstreamConnection(DeadlineMixin, Protocol):
    """Client side of one backend connection; owned by a ``MemberPool``."""

    def __init__(self, clock, parser_limits, owner):
        self._clock = clock
        self._parser = ResponseParser(parser_limits)
        self._owner = owner
        self._handler = None
        self._head = None
        self.deadline = None  # absolute time; the pool's Deadlines calls expired() after it
        self._timer_kind = None
        self._read_timeout = 0.0
        self._received = False
        self._paused = False
        self._tunnel = None
        self._sender = None  # the _SpoolSender of a body streamed from a file, while it sends
        self.exchanges = 0  # how many exchanges started on it (> 1: a reused connection)
        self.connected = False

    # -- Twisted ---------------------------------------------------------------------------
    def connectionMade(self):
        self.connected = True
        self._owner.deadlines.watch(self)
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass

    def dataReceived(self, data):
        if self._tunnel is not None:
            self._tunnel.write(data)
            return
        if self._handler is None:
            # Bytes nobody asked for: the connection's framing can no longer be trusted.
            self.transport.abortConnection()
            return
        self._received = True
        if not self._paused:
            self._arm(self._read_timeout, errors.READ_TIMEOUT)
        self._parser.feed(data)
        try:
            self._drain()
        except ProtocolError as e:
            self._fail(errors.BAD_RESPONSE, e.reason)

    def connectionLost(self, reason=None):
        self.connected = False
        self._cancel_timer()
        self._owner.deadlines.unwatch(self)
        self._owner.lost(self)
        if self._tunnel is not None:
            tunnel, self._tunnel = self._tunnel, None
            tunnel.loseConnection()
            return
        if self._handler is None:
            return
        try:
            self._parser.feed_eof()
            self._drain()
        except ProtocolError as e:
            kind = errors.BAD_RESPONSE if self._received else errors.CLOSED
            self._fail(kind, e.reason if self._received else "backend closed the connection")
            return
        if self._handler is not None:
            self._fail(errors.CLOSED, "backend closed the connection")

    # -- exchange --------------------------------------------------------------------------
    def send(self, handler, method, head, body, first_byte_timeout, read_timeout):
        """Start one exchange: write ``head`` (bytes) and ``body`` (bytes, or a spool)."""
        self._handler = handler
        self._head = None
        self._received = False
        self._read_timeout = read_timeout
        self.exchanges += 1
        self._parser.expect(method)
        transport = self.transport
        outbox = self._owner.outbox
        if body is None or isinstance(body, bytes):
            outbox.write(transport, head + body if body else head)
        else:
            outbox.write(transport, head)
            outbox.flush(transport)
            self._sender = _SpoolSender(transport, body)
        self._arm(first_byte_timeout, errors.FIRST_BYTE_TIMEOUT)

    def _drain(self):
        parser = self._parser
        while self._handler is not None:
            event = parser.next_event()
            if event.__class__ is bytes:
                self._handler.upstream_data(event)
            elif event is NEED_DATA:
                self._handler.upstream_waiting()
                return
            elif event is END:
                self._complete()
                return
            elif event.status < 200 and event.status != 101:
                self._handler.upstream_informational(event)
            else:
                self._head = event
                self._handler.upstream_head(event)
                if self._tunnel is not None:
                    return
            # CLOSED and PAUSED cannot occur while an exchange is open.

    def _complete(self):
        self._cancel_timer()
        handler, self._handler = self._handler, None
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        head = self._head
        sender, self._sender = self._sender, None
        if sender is not None and not sender.done:
            # The backend answered before the request body was written whole: the rest of
            # the body would be read as the next request (desync). Never reuse it.
            sender.stopProducing()
            self.transport.unregisterProducer()
            self.transport.abortConnection()
        elif head.keep_alive and head.status != 101 and not self._parser.buffered_bytes():
            self._owner.release(self)
        else:
            self.transport.loseConnection()
        handler.upstream_end()

    def _stop_sender(self):
        sender, self._sender = self._sender, None
        if sender is not None and not sender.done:
            sender.stopProducing()
            if self.connected:
                self.transport.unregisterProducer()

    def _fail(self, kind, reason):
        handler, self._handler = self._handler, None
        self._cancel_timer()
        self._stop_sender()
        if self.connected:
            self._owner.outbox.discard(self.transport)
            self.transport.abortConnection()
        if handler is not None:
            handler.upstream_failed(errors.UpstreamError(kind, reason, self._received))

    def abort(self):
        """The client went away: drop the exchange and the connection."""
        self._handler = None
        self._cancel_timer()
        self._stop_sender()
        if self.connected:
            self._owner.outbox.discard(self.transport)
            self.transport.abortConnection()

    def close(self):
        """Close an idle connection (idle timeout, shutdown, pool overflow)."""
        if self.connected:
            self.transport.loseConnection()

    def start_tunnel(self, peer):
        """After a 101: relay every byte both ways between the backend and ``peer``."""
        self._cancel_timer()
        self._handler = None
        self._tunnel = peer
        remaining = self._parser.take_remaining()
        if remaining:
            peer.write(remaining)

    # -- flow control (the relay calls these while it spools or streams) -------------------
    def pauseProducing(self):
        if not self._paused and self.connected:
            self._paused = True
            self._cancel_timer()
            self.transport.pauseProducing()

    def resumeProducing(self):
        if self._paused and self.connected:
            self._paused = False
            if self._handler is not None:
                self._arm(self._read_timeout, errors.READ_TIMEOUT)
            self.transport.resumeProducing()

    def stopProducing(self):
        self.abort()

    # -- deadlines ------------------------------------------------------------------------
    def idle_for(self, seconds):
        """Pooled and idle: close after ``seconds`` unless reused."""
        self._arm(seconds, IDLE)

    def expired(self, now):
        kind, self._timer_kind = self._timer_kind, None
        if kind == IDLE:
            self.close()
        elif kind is not None and self._handler is not None:
            what = "no response head" if kind == errors.FIRST_BYTE_TIMEOUT else "backend silent"
            self._fail(kind, what)
