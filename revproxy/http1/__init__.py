"""Strict sans-IO HTTP/1.1 (RFC 9112): request/response parsers and serialisers.

No I/O and no Twisted here; ``revproxy.server`` and ``revproxy.upstream`` drive these
objects from their protocols.
"""

from __future__ import annotations

from .errors import ProtocolError
from .heads import (
    CHUNKED, CLOSED, END, LENGTH, NEED_DATA, NO_BODY, PAUSED, UNTIL_CLOSE, Limits,
    RequestHead, ResponseHead,
)
from .parser import RequestParser, ResponseParser
from .serialize import LAST_CHUNK, chunk, request_head, response_head

__all__ = [
    "CHUNKED", "CLOSED", "END", "LENGTH", "LAST_CHUNK", "Limits", "NEED_DATA", "NO_BODY",
    "PAUSED", "ProtocolError", "RequestHead", "RequestParser", "ResponseHead",
    "ResponseParser", "UNTIL_CLOSE", "chunk", "request_head", "response_head",
]
