"""One HTTP/2 stream's response: the ``IResponseSink`` a ``ProxyRequest`` answers through.

The body is sent only as far as the client's flow-control windows allow (the stream's and
the connection's); what does not fit waits here, and the producer feeding the sink (the
request's ``Relay``) is paused meanwhile, so the rest of the response spools in the relay
exactly as for a slow HTTP/1.1 client and the backend connection is freed early. The
connection resumes the stream when a WINDOW_UPDATE (or a SETTINGS change) opens the window.

Each stream also has its own deadline (``revproxy.timers``): the request body must keep
arriving (``body_timeout`` between pieces), and a response blocked on the client's window
must move within ``send_timeout``.
"""

from __future__ import annotations

from collections import deque

from h2.exceptions import H2Error
from twisted.logger import Logger
from zope.interface import implementer

from revproxy.http2.heads import CONNECTION_SPECIFIC
from revproxy.interfaces import IResponseSink

log = Logger(namespace="revproxy.http2")

_NO_BODY_STATUSES = (204, 304)
_DROPPED = CONNECTION_SPECIFIC | frozenset([b"content-length"])
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL = 0x0, 0x1, 0x2, 0x7, 0x8

BODY, SEND = "body", "send"


@implementer(IResponseSink)
class StreamSink:
    """The response of stream ``stream_id`` on ``conn`` (an ``H2ServerConnection``).

    ``conn`` provides ``h2`` (the h2 ``H2Connection``), ``send_pending()``,
    ``reset_stream(id, code)``, ``stream_closed(sink)`` (called once nothing more goes out
    on the stream), ``writing_paused``, ``runtime``, ``limits`` and ``client_ip``.
    ``request`` is the stream's ``ProxyRequest`` (None for an answer given before one
    exists); it hears ``response_done()`` after ``finish``/``abort``, or
    ``connection_lost()`` when the stream is reset or times out.
    """

    pending_head = None  # heads are HPACK-encoded per connection: nothing to reuse

    def __init__(self, conn, stream_id: int, method: bytes):
        self._conn = conn
        self.stream_id = stream_id
        self._method = method
        self.request = None
        self.started = False
        self.finished = False  # finish() or abort() was called
        self.closed = False  # END_STREAM or RST_STREAM sent/received: nothing more to send
        self.status = 0
        self.bytes_sent = 0
        self.keep_alive = True  # HTTP/2 has no per-response close; ignored
        self.remote_ended = False  # the client finished sending the request
        self._head = None  # the header list held back until the first body bytes
        self._no_body = False
        self._remaining = None  # body bytes still due when Content-Length was announced
        self._out = deque()  # body bytes waiting for window
        self._out_bytes = 0
        self._end_after_out = False
        self._producer = None
        self._producer_paused = False
        self.deadline = None  # revproxy.timers: BODY or SEND, see expired()
        self._timer_kind = None

    # -- IResponseSink ---------------------------------------------------------------------
    def informational(self, status, reason, headers):
        if not self.started and not self.closed:
            self._send_headers([(b":status", b"%d" % status)] + _fields(headers), False)

    def start(self, status, reason, headers, content_length=None):
        self.started = True
        self.status = status
        no_body = self._method == b"HEAD" or status < 200 or status in _NO_BODY_STATUSES
        self._no_body = no_body
        fields = [(b":status", b"%d" % status)] + _fields(headers)
        if content_length is not None and status != 204 and status >= 200:
            fields.append((b"content-length", b"%d" % content_length))
            if not no_body:
                self._remaining = content_length
        self._head = fields
        if no_body:
            self.flush()

    def start_prepared(self, status, head, content_length):
        raise NotImplementedError("pending_head is always None for HTTP/2 streams")

    def flush(self):
        head, self._head = self._head, None
        if head is not None and not self.closed:
            self._send_headers(head, False)

    def write(self, data):
        if self._no_body or not data or self.closed:
            return
        if self._remaining is not None:
            if len(data) > self._remaining:
                data = data[: self._remaining]  # never forward more than announced
            self._remaining -= len(data)
        self.bytes_sent += len(data)
        self.flush()
        self._out.append(data)
        self._out_bytes += len(data)
        self.pump()

    def finish(self):
        if self.finished:
            return
        self.finished = True
        if self._remaining:
            self._reset(INTERNAL_ERROR, "response shorter than its Content-Length")
        elif self.closed:
            pass
        elif self._head is not None and not self._out:
            head, self._head = self._head, None
            self._send_headers(head, True)
            self._ended()
        else:
            self.flush()
            self._end_after_out = True
            self.pump()
        self._done()

    def abort(self, reason):
        if self.finished:
            return
        self.finished = True
        self._reset(INTERNAL_ERROR, reason)
        self._done()

    @property
    def writing_paused(self):
        return bool(self._out) or self._conn.writing_paused

    def send_continue(self):
        if not self.started and not self.closed:
            self._send_headers([(b":status", b"100")], False)

    def start_tunnel(self, upstream):
        # Never reached: an HTTP/2 head has no Upgrade; refuse rather than misbehave.
        upstream.abort()
        self.abort("no tunnels over HTTP/2")

    def registerProducer(self, producer, streaming):
        self._producer = producer
        self._producer_paused = False
        if self.writing_paused:
            self._pause_producer()

    def unregisterProducer(self):
        self._producer = None

    # -- what the connection calls ---------------------------------------------------------
    def pump(self):
        """Send what the windows allow; pause or resume the producer accordingly."""
        if self.closed:
            return
        conn = self._conn
        h2 = conn.h2
        out = self._out
        sid = self.stream_id
        try:
            while out and not conn.writing_paused:
                window = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size)
                if window <= 0:
                    break
                piece = out.popleft()
                if len(piece) > window:
                    out.appendleft(piece[window:])
                    piece = piece[:window]
                self._out_bytes -= len(piece)
                # The last piece of a known length carries END_STREAM (no empty frame after).
                last = not out and (self._end_after_out or self._remaining == 0)
                h2.send_data(sid, piece, end_stream=last)
                if last:
                    self._end_after_out = False
                    self._ended()
                    break
            if not out and self._end_after_out and not self.closed:
                self._end_after_out = False
                h2.end_stream(sid)
                self._ended()
        except H2Error as e:  # the stream or connection closed under us: stop its work
            log.info("{ip} stream {sid}: cannot send: {e}", ip=conn.client_ip, sid=sid, e=e)
            self._drop(None)
            return
        conn.send_pending()
        if self.closed:
            return
        if out:
            if self._timer_kind is None:
                self._arm(conn.limits.send_timeout, SEND)
            self._pause_producer()
        else:
            if self._timer_kind == SEND:
                self._disarm()
            if not conn.writing_paused and self._producer_paused:
                self._producer_paused = False
                if self._producer is not None:
                    self._producer.resumeProducing()

    def pause_producer(self):
        """The connection's transport is full: hold the producer."""
        self._pause_producer()

    def reset_by_client(self):
        """RST_STREAM from the client (or the connection went away): stop all work for
        the stream: its ``ProxyRequest`` is told the client left (the exchange is
        cancelled, so its backend connection is closed rather than pooled half-read)."""
        if not self.started:
            self.status = 499  # nginx's "client closed request", for the log only
        self._drop(None)

    def _drop(self, code):
        """Nothing more goes out on this stream: reset it with ``code`` (None: it is gone
        already) and cancel the request's work."""
        if not self.closed:
            self.closed = True
            self.remote_ended = True
            self._out.clear()
            self._disarm()
            self._stop_producer()
            if code is not None:
                self._conn.reset_stream(self.stream_id, code)
        self.finished = True
        request, self.request = self.request, None
        if request is not None:
            request.connection_lost()
        self._conn.stream_closed(self)

    def body_piece(self):
        """A piece of the request body arrived: its deadline starts again."""
        if self._timer_kind != SEND:
            self._arm(self._conn.limits.body_timeout, BODY)

    def body_complete(self):
        """The client ended the request (END_STREAM)."""
        self.remote_ended = True
        if self._timer_kind == BODY:
            self._disarm()

    def expired(self, now):
        kind, self._timer_kind = self._timer_kind, None
        if kind is None or self.closed:
            return
        conn = self._conn
        if kind == SEND:
            log.info("{ip} stream {sid}: client did not read for {t}s", ip=conn.client_ip,
                     sid=self.stream_id, t=conn.limits.send_timeout)
            self._drop(CANCEL)
        elif self.request is not None and not self.started:
            log.info("{ip} stream {sid} 408: request body too slow", ip=conn.client_ip,
                     sid=self.stream_id)
            self.request.fail_request(408, "request body not received in time")
        else:
            self._drop(CANCEL)

    # -- internals -------------------------------------------------------------------------
    def _send_headers(self, fields, end_stream):
        try:
            self._conn.h2.send_headers(self.stream_id, fields, end_stream=end_stream)
        except (H2Error, ValueError, TypeError) as e:  # h2 refused it: this stream only
            log.warn("{ip} stream {sid}: headers not sendable: {e}", ip=self._conn.client_ip,
                     sid=self.stream_id, e=e)
            self._reset(INTERNAL_ERROR, "headers not sendable")
            return
        self._conn.send_pending()

    def _ended(self):
        """END_STREAM sent: the response is complete on the wire."""
        self.closed = True
        self._disarm()
        if not self.remote_ended:
            # The answer came before the whole request (an early 413, say): stop the
            # client's upload without calling the response an error (RFC 9113 §8.1).
            self._conn.reset_stream(self.stream_id, NO_ERROR)
            self.remote_ended = True
        self._conn.stream_closed(self)

    def _reset(self, code, reason):
        if self.closed:
            return
        self.closed = True
        self._out.clear()
        self._disarm()
        self._stop_producer()
        self.remote_ended = True
        self._conn.reset_stream(self.stream_id, code)
        self._conn.stream_closed(self)

    def _done(self):
        request, self.request = self.request, None
        if request is not None:
            request.response_done()

    def _pause_producer(self):
        if not self._producer_paused:
            self._producer_paused = True
            if self._producer is not None:
                self._producer.pauseProducing()

    def _stop_producer(self):
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()

    def _arm(self, seconds, kind):
        self.deadline = self._conn.runtime.clock.seconds() + seconds
        self._timer_kind = kind

    def _disarm(self):
        self.deadline = None
        self._timer_kind = None


def _fields(headers):
    """Response fields for HTTP/2: lower-case names, no connection-specific fields and no
    framing (the stream frames the body; Content-Length is added from the known length)."""
    out = []
    for name, value in headers:
        name = name.lower()
        if name not in _DROPPED and name[:1] != b":":
            out.append((name, value))
    return out
