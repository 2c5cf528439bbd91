"""Frames one response onto the client connection (RFC 9112 §6): length, chunked or close."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.http1 import serialize
from revproxy.http1.parser import LENGTH as _LENGTH
from revproxy.http1.parser import NO_BODY as _NO_BODY_FRAMING
from revproxy.interfaces import IResponseSink

_NO_BODY_STATUSES = (204, 304)


@implementer(IResponseSink)
class ResponseWriter:
    """Writes one response for one request on a ``ClientConnection``: the client's
    ``IResponseSink`` (revproxy.interfaces).

    The framing follows the request and the status: no body for HEAD, 1xx, 204 and 304;
    ``Content-Length`` when the length is known; chunked for HTTP/1.1 clients otherwise;
    close-delimited for HTTP/1.0 clients.
    """

    __slots__ = (
        "_conn", "_method", "_version", "keep_alive", "status", "bytes_sent", "started",
        "finished", "_chunked", "_no_body", "_remaining", "_pending",
    )

    def __init__(self, conn, method: bytes, version: bytes, keep_alive: bool):
        self._conn = conn
        self._method = method
        self._version = version
        self.keep_alive = keep_alive
        self.status = 0
        self.bytes_sent = 0  # body bytes, as the access log counts them
        self.started = False
        self.finished = False
        self._chunked = False
        self._no_body = False
        self._remaining = None  # body bytes still due when Content-Length framed
        self._pending = None  # the head, held back to leave with the first body bytes

    def informational(self, status: int, reason: bytes, headers) -> None:
        """Relay a 1xx (not 101) to an HTTP/1.1 client; HTTP/1.0 clients never see one."""
        if self._version == b"1.1" and not self.started:
            self._conn.write(serialize.response_head(status, reason, headers))

    def start(self, status: int, reason: bytes, headers, content_length=None) -> None:
        """Send the head. ``headers`` carry no framing fields: they are added here."""
        self.started = True
        self.status = status
        if self._conn.runtime.stats.shutting_down:
            self.keep_alive = False
        no_body = self._method == b"HEAD" or status < 200 or status in _NO_BODY_STATUSES
        self._no_body = no_body
        headers = list(headers)
        if status == 101:
            pass
        elif no_body:
            if content_length is not None and status != 204 and status >= 200:
                headers.append((b"content-length", b"%d" % content_length))
        elif content_length is not None:
            headers.append((b"content-length", b"%d" % content_length))
            self._remaining = content_length
        elif self._version == b"1.1":
            headers.append((b"transfer-encoding", b"chunked"))
            self._chunked = True
        else:
            self.keep_alive = False
        if not self.keep_alive and status != 101:
            headers.append((b"connection", b"close"))
        elif self._version == b"1.0":
            headers.append((b"connection", b"keep-alive"))
        # The head waits for the first body bytes so that both leave in one send.
        self._pending = serialize.response_head(status, reason, headers)
        if no_body or status == 101:
            self.flush()

    def start_prepared(self, status: int, head: bytes, content_length: int) -> None:
        """Send a head serialised earlier by ``start`` for the same status, headers, length,
        request method, version and keep-alive (the cache's hits repeat them)."""
        self.started = True
        self.status = status
        self._no_body = self._method == b"HEAD"
        if not self._no_body:
            self._remaining = content_length
        self._pending = head
        if self._no_body:
            self.flush()

    @property
    def pending_head(self):
        """The serialised head ``start`` is holding back (None once sent)."""
        return self._pending

    def flush(self):
        """Send the held-back head now (the backend has nothing more for the moment)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._conn.write(pending)

    def write(self, data: bytes) -> None:
        if self._no_body or not data:
            return
        if self._remaining is not None:
            if len(data) > self._remaining:
                # The backend sent more than it announced: never forward the excess.
                data = data[: self._remaining]
            self._remaining -= len(data)
        self.bytes_sent += len(data)
        if self._chunked:
            data = serialize.chunk(data)
        pending = self._pending
        if pending is not None:
            self._pending = None
            if len(data) < 16384:
                data = pending + data
            else:  # a large body is not copied: both go out together (Outbox, sendmsg)
                self._conn.write(pending)
        self._conn.write(data)

    def finish(self) -> None:
        """The response is complete: close the framing and let the connection move on."""
        if self.finished:
            return
        self.finished = True
        if self._chunked:
            self._pending = (self._pending or b"") + serialize.LAST_CHUNK
        self.flush()
        if self._remaining:
            # Fewer bytes than announced: the client must see a broken message, not a clean end.
            self._conn.abort_response("response shorter than its Content-Length", hard=False)
            return
        self._conn.response_done(self.keep_alive)

    def abort(self, reason: str) -> None:
        """The response cannot be completed: end the connection so that the client sees a
        broken message, never a clean end. With length or chunked framing the bytes already
        relayed are flushed first (the framing itself shows the truncation); a close-delimited
        body can only be marked broken by a reset."""
        if not self.finished:
            self.finished = True
            self.flush()
            framed = self._chunked or self._remaining is not None
            self._conn.abort_response(reason, hard=not framed or not self.started)

    @property
    def writing_paused(self) -> bool:
        """The client is not reading fast enough: body pieces should be spooled."""
        return self._conn.writing_paused

    def send_continue(self) -> None:
        """``100 Continue`` for a request that sent ``Expect: 100-continue``."""
        self._conn.send_continue()

    def start_tunnel(self, upstream) -> None:
        """After a 101 (already started): relay bytes both ways with ``upstream``."""
        self._conn.start_tunnel(upstream)

    # The relay registers here; the connection forwards the transport's flow control to it.
    def registerProducer(self, producer, streaming) -> None:
        self._conn.set_producer(producer)

    def unregisterProducer(self) -> None:
        self._conn.set_producer(None)


def announced_length(head):
    """The body length to announce to the client for a backend response head, or None."""
    if head.framing == _LENGTH:
        return head.content_length
    if head.framing == _NO_BODY_FRAMING:
        return _declared_length(head.headers)  # HEAD / 304 keep the backend's figure
    return None


def _declared_length(headers):
    value = _header(headers, b"content-length")
    if value is not None and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _header(headers, name):
    for key, value in headers:
        if key == name:
            return value
    return None
