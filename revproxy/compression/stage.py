"""The compression stage of one response: the head rewritten once, body pieces encoded as
they arrive.

``begin`` is called with the backend's response head before anything downstream sees it (the
cache stage, response hooks, the sink), so the cache stores exactly what clients are served:
the encoded variant, keyed by ``Accept-Encoding`` through the ``Vary`` added here. The stage
never holds the body: each piece is compressed and handed on at once (the encoder keeps only
its window), and ``flush`` is called when the backend has nothing more for the moment, so a
slow stream (server-sent events, a long poll) reaches the client without waiting for the
encoder's buffer to fill.
"""

from __future__ import annotations

from revproxy.compression import encoders
from revproxy.compression.policy import plan
from revproxy.http1.heads import CHUNKED, LENGTH, NO_BODY


class ResponseCompressor:
    """Encodes one response body (``data`` / ``flush`` / ``end``, each returning the bytes to
    send, possibly b"")."""

    __slots__ = ("coding", "_encoder", "_fed", "bytes_in", "bytes_out")

    def __init__(self, coding: bytes, encoder):
        self.coding = coding
        self._encoder = encoder
        self._fed = False  # data went in since the last flush
        self.bytes_in = 0
        self.bytes_out = 0

    def data(self, data: bytes) -> bytes:
        self.bytes_in += len(data)
        self._fed = True
        out = self._encoder.compress(data)
        self.bytes_out += len(out)
        return out

    def flush(self) -> bytes:
        """What the encoder holds, decodable now; b"" when nothing came in since the last
        flush (a sync flush of nothing would still cost an empty block on the wire)."""
        if not self._fed:
            return b""
        self._fed = False
        out = self._encoder.flush()
        self.bytes_out += len(out)
        return out

    def end(self) -> bytes:
        out = self._encoder.finish()
        self.bytes_out += len(out)
        return out


def _declared_length(head):
    if head.framing == LENGTH:
        return head.content_length
    for key, value in head.headers:
        if key == b"content-length":
            return int(value) if value.isdigit() and len(value) <= 18 else None
    return None


def begin(policy, request_head, response_head, validators=()):
    """(the head to pass on, a ``ResponseCompressor`` or None) for ``response_head``.

    The head is the backend's unchanged when nothing applies. A compressed head has no
    length: its framing becomes chunked (so the sink announces none: chunked to HTTP/1.1
    clients, close-delimited to HTTP/1.0). A HEAD request gets the GET's header fields and
    no encoder (there is no body).
    """
    length = _declared_length(response_head)
    decided = plan(policy, request_head.headers, response_head.status, response_head.headers,
                   length, validators)
    if decided is None:
        return response_head, None
    if decided.coding is None:
        return response_head.replace(headers=decided.headers), None
    if response_head.framing == NO_BODY:
        return response_head.replace(headers=decided.headers, content_length=None), None
    name = decided.coding.decode("ascii")
    encoder = encoders.available()[name](policy.levels[name])
    head = response_head.replace(headers=decided.headers, framing=CHUNKED, content_length=None)
    return head, ResponseCompressor(decided.coding, encoder)
