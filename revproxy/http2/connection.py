"""The client-facing HTTP/2 connection: the h2 state machine between the transport and the
same request pipeline as HTTP/1.1.

Each stream's request becomes a ``RequestHead`` (``revproxy.http2.heads``) and a
``ProxyRequest`` answering through a ``StreamSink`` (``revproxy.http2.stream``): routing,
hooks, cache, balancing, spoon-feeding and the access log are the HTTP/1.1 ones. Request
bodies are spooled by the request as they arrive, so their flow-control window is given
back at once. The transport's back-pressure pauses every stream's producer.

Limits (``[http2]``): concurrent streams and header list size are SETTINGS that h2
enforces; the CONTINUATION flood and rapid reset are refused here (``guard``), with
GOAWAY(ENHANCE_YOUR_CALM) and the connection closed. A shutdown sends GOAWAY naming the
last stream accepted and lets the streams in flight finish.
"""

from __future__ import annotations

from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from revproxy.http1.errors import ProtocolError
from revproxy.http2 import machine
from revproxy.http2.guard import HeaderBlockGuard, ResetBudget
from revproxy.http2.heads import MalformedRequest, request_head
from revproxy.http2.stream import PROTOCOL_ERROR, REFUSED_STREAM, StreamSink
from revproxy.pipeline.hooks import run_phase
from revproxy.server import replies
from revproxy.server.accesslog import AccessRecord
from revproxy.server.admission import admit
from revproxy.timers import DeadlineMixin

log = Logger(namespace="revproxy.http2")

_IDLE, _SEND = "idle", "send"
_ENHANCE_YOUR_CALM = ErrorCodes.ENHANCE_YOUR_CALM


class H2ServerConnection(DeadlineMixin, Protocol):
    """One HTTP/2 client connection. ``runtime`` is the config snapshot it was accepted
    under; each request runs on the newest one, as over HTTP/1.1. ``scheme`` and
    ``listener`` are the listener's, as for ``ClientConnection``.

    A ``connection_made`` hook that refuses the client gets GOAWAY(REFUSED_STREAM) and the
    connection closed (there is no stream to answer on yet)."""

    address = None  # the peer address its factory was asked for (server.admission.admit)

    def __init__(self, runtime, scheme="https", listener=""):
        self.runtime = runtime
        self.scheme = scheme
        self.listener = listener
        self.peer = None
        self.client_ip = ""
        self.client_port = 0
        self._clock = runtime.clock
        self.limits = runtime.config.limits
        settings = runtime.config.http2
        self._settings = settings
        self.h2 = machine.new_machine()
        self._guard = HeaderBlockGuard(settings.max_continuation_frames,
                                       settings.max_header_block_size)
        self._resets = ResetBudget(settings.max_resets_per_minute)
        self._streams = {}  # stream id -> StreamSink still sending (or receiving)
        self._outbox = runtime.outbox
        self.writing_paused = False
        self._reading_paused = False
        self._closing = False  # no more input is processed; the transport is closing
        self._draining = False  # GOAWAY sent for a shutdown: finish the streams, then close
        self._last_stream = None  # the last stream id the draining GOAWAY accepted
        self.counted = False
        self.deadline = None
        self._timer_kind = None

    @property
    def activity(self) -> str:
        """What the connection does now (the admin status): "http2" while streams are
        open, "http2_idle" without."""
        return "http2" if self._streams else "http2_idle"

    # -- Twisted ---------------------------------------------------------------------------
    def connectionMade(self):
        transport = self.transport
        if not admit(self):
            self._closing = True
            transport.abortConnection()
            return
        self.counted = True
        self.runtime.deadlines.watch(self)
        try:
            transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        transport.registerProducer(self, True)
        self._start_h2()
        self._arm(self.limits.header_timeout, _IDLE)
        hooks = self.runtime.hooks.connection_made
        if hooks:
            self._pause_reading()  # nothing is read before the hooks let the connection in
            run_phase(hooks, (self.peer,), self._admitted, self._refused, self._hook_failed)

    def _start_h2(self):
        machine.start(self.h2, self._settings)
        self.send_pending()

    def _admitted(self):
        if not self._closing and self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()

    def _refused(self, answer):
        if self._closing:
            return
        log.info("{ip} {status}: {reason}", ip=self.client_ip, status=answer.status,
                 reason=answer.reason or "refused by a hook")
        self._goaway(ErrorCodes.REFUSED_STREAM, "refused by a hook")

    def _hook_failed(self, failure):
        log.failure("{ip}: a connection_made hook failed; closing", failure, ip=self.client_ip)
        self._abort()

    def dataReceived(self, data):
        if self._closing:
            return
        problem = self._guard.feed(data)
        if problem is not None:
            log.warn("{ip} HTTP/2 GOAWAY: {problem}", ip=self.client_ip, problem=problem)
            self._goaway(_ENHANCE_YOUR_CALM, problem)
            return
        try:
            events = self.h2.receive_data(data)
        except H2Error as e:
            # h2 has queued a GOAWAY with the error's code: send it and close.
            log.info("{ip} HTTP/2 protocol error: {e}", ip=self.client_ip, e=e)
            self._close_now()
            return
        for event in events:
            if self._closing:
                return
            handler = _HANDLERS.get(event.__class__)
            if handler is not None:
                handler(self, event)
        self.send_pending()

    def connectionLost(self, reason=None):
        self._closing = True
        self._cancel_timer()
        self.runtime.deadlines.unwatch(self)
        if self.counted:
            self.counted = False
            self.runtime.stats.connection_closed(self)
        streams, self._streams = self._streams, {}
        for sink in streams.values():
            self.runtime.deadlines.unwatch(sink)
            sink.reset_by_client()

    # -- h2 events -------------------------------------------------------------------------
    def _request_received(self, event):
        sid = event.stream_id
        if self._draining and sid > self._last_stream:
            self.reset_stream(sid, REFUSED_STREAM)  # after our GOAWAY: the client retries
            return
        self._cancel_timer_kind(_IDLE)
        try:
            head = request_head(event.headers, self.limits, event.stream_ended is not None)
        except MalformedRequest as e:
            log.info("{ip} stream {sid} reset: malformed request: {reason}", ip=self.client_ip,
                     sid=sid, reason=e.reason)
            self.reset_stream(sid, PROTOCOL_ERROR)
            self._count_reset()
            return
        except ProtocolError as e:
            self._refuse(sid, event.headers, e)
            return
        self.runtime = runtime = self.runtime.holder.current  # each request: the newest config
        self.limits = runtime.config.limits
        sink = self._open(sid, head.method)
        request = runtime.new_request(self.peer, head, sink)
        sink.request = request
        if request is not None:
            if head.framing:
                sink.body_piece()  # the body deadline starts
            request.begin()

    def _refuse(self, sid, fields, error):
        """Answer a request refused before it had a ``ProxyRequest`` (431, 414...) on its
        stream, with an error-log and an access-log line as over HTTP/1.1."""
        rid = self.runtime.new_request_id()
        log.info("{ip} rid={rid} stream {sid} {status} bad request: {reason}", ip=self.client_ip,
                 rid=rid.decode("ascii"), sid=sid, status=error.status, reason=error.reason)
        now = self._clock.seconds()
        sink = self._open(sid, b"GET")
        replies.send(sink, error.status, now)
        access_log = self.runtime.access_log
        if access_log is not None:
            pseudo = {n: v for n, v in fields if n[:1] == b":"}
            target = pseudo.get(b":path", b"-")[: self.limits.max_request_line]
            access_log.log(AccessRecord(
                self.client_ip, now, pseudo.get(b":method", b"-"), target, b"2", error.status,
                sink.bytes_sent, total_time=0.0, request_id=rid))

    def _open(self, sid, method):
        sink = StreamSink(self, sid, method)
        self._streams[sid] = sink
        self.runtime.deadlines.watch(sink)
        if self.writing_paused:
            sink.pause_producer()
        return sink

    def _data_received(self, event):
        sid = event.stream_id
        size = event.flow_controlled_length
        sink = self._streams.get(sid)
        if sink is not None and sink.request is not None and not sink.remote_ended:
            sink.body_piece()
            sink.request.body_data(event.data)
        # The request spooled the piece (or it is dropped): give the window back at once.
        try:
            self.h2.acknowledge_received_data(size, sid)
        except H2Error:
            pass

    def _stream_ended(self, event):
        sink = self._streams.get(event.stream_id)
        if sink is None or sink.remote_ended:
            return
        sink.body_complete()
        request = sink.request
        if request is not None:
            request.body_end()

    def _stream_reset(self, event):
        sink = self._streams.get(event.stream_id)
        if sink is not None:
            sink.reset_by_client()
        self._count_reset()

    def _window_updated(self, event):
        if event.stream_id:
            sink = self._streams.get(event.stream_id)
            if sink is not None:
                sink.pump()
        else:
            self._pump_all()

    def _settings_changed(self, event):
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._pump_all()

    def _terminated(self, event):
        """The client sent GOAWAY: it is leaving. h2 forbids any frame after it, so the
        streams in flight are cancelled and the connection closed."""
        log.info("{ip} HTTP/2 GOAWAY from the client (code {code})", ip=self.client_ip,
                 code=event.error_code)
        self._close_now()

    def _pump_all(self):
        for sink in list(self._streams.values()):
            sink.pump()

    def _count_reset(self):
        if not self._resets.spend(self._clock.seconds()):
            limit = self._settings.max_resets_per_minute
            log.warn("{ip} HTTP/2 GOAWAY: more than {n} stream resets in a minute "
                     "(rapid reset)", ip=self.client_ip, n=limit)
            self._goaway(_ENHANCE_YOUR_CALM, "too many stream resets")

    # -- what streams call -----------------------------------------------------------------
    def send_pending(self):
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self._outbox.write(self.transport, data)

    def reset_stream(self, sid, code):
        try:
            self.h2.reset_stream(sid, code)
        except H2Error:
            return  # already closed on h2's side
        self.send_pending()

    def stream_closed(self, sink):
        """``sink`` will send nothing more: forget it; close when draining and idle."""
        if self._streams.get(sink.stream_id) is not sink:
            return
        del self._streams[sink.stream_id]
        self.runtime.deadlines.unwatch(sink)
        if self._streams or self._closing:
            return
        if self._draining:
            self._close_now()
        elif self.runtime.stats.shutting_down:
            self.close_if_idle()
        else:
            self._arm(self.limits.idle_timeout, _IDLE)

    # -- flow control ----------------------------------------------------------------------
    def pauseProducing(self):
        self.writing_paused = True
        if self.deadline is None or self._timer_kind == _IDLE:
            self._arm(self.limits.send_timeout, _SEND)
        for sink in list(self._streams.values()):
            sink.pause_producer()

    def resumeProducing(self):
        self.writing_paused = False
        if self._timer_kind == _SEND:
            self._cancel_timer()
            if not self._streams:
                self._arm(self.limits.idle_timeout, _IDLE)
        self._pump_all()

    def stopProducing(self):
        self._abort()

    def _pause_reading(self):
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()

    # -- deadlines and the end -------------------------------------------------------------
    def _cancel_timer_kind(self, kind):
        if self._timer_kind == kind:
            self._cancel_timer()

    def expired(self, now):
        kind, self._timer_kind = self._timer_kind, None
        if kind is None or self._closing:
            return
        if kind == _IDLE:
            self._goaway(ErrorCodes.NO_ERROR, "idle")
        else:
            log.info("{ip} HTTP/2 connection aborted: client did not read for {t}s",
                     ip=self.client_ip, t=self.limits.send_timeout)
            self._abort()

    def close_if_idle(self):
        """Shutdown: GOAWAY naming the last stream accepted; streams in flight finish (the
        service aborts what is left after ``shutdown_timeout``); close once none is left."""
        if self._closing:
            return
        if not self._streams:
            self._goaway(ErrorCodes.NO_ERROR, "shutting down")
            return
        if self._draining:
            return
        self._draining = True
        self._last_stream = self.h2.highest_inbound_stream_id
        self.send_pending()  # what h2 has queued goes first
        self._outbox.write(self.transport, machine.draining_goaway(self._last_stream))

    def _goaway(self, code, reason):
        """GOAWAY(``code``) and close: streams in flight are cancelled."""
        if self._closing:
            return
        try:
            self.h2.close_connection(error_code=code)
        except H2Error:
            pass
        self._close_now()

    def _close_now(self):
        self._closing = True
        self.send_pending()
        streams, self._streams = self._streams, {}
        for sink in streams.values():
            self.runtime.deadlines.unwatch(sink)
            sink.reset_by_client()
        transport = self.transport
        self._outbox.flush(transport)
        transport.unregisterProducer()  # TLS does not close while a producer is registered
        transport.loseConnection()

    def _abort(self):
        self._closing = True
        self._outbox.discard(self.transport)
        self.transport.abortConnection()


_HANDLERS = {
    RequestReceived: H2ServerConnection._request_received,
    DataReceived: H2ServerConnection._data_received,
    StreamEnded: H2ServerConnection._stream_ended,
    StreamReset: H2ServerConnection._stream_reset,
    WindowUpdated: H2ServerConnection._window_updated,
    RemoteSettingsChanged: H2ServerConnection._settings_changed,
    ConnectionTerminated: H2ServerConnection._terminated,
    TrailersReceived: None,  # trailers are dropped (the backend request is re-framed)
}
