"""Framing kinds, event sentinels, limits and the parsed head objects.

Heads are plain ``__slots__`` classes rather than dataclasses: they are built once per
message on the hot path and must be cheap on both CPython and PyPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

Headers = List[Tuple[bytes, bytes]]

# How the body of a message is delimited (RFC 9112 section 6.3).
NO_BODY = 0
LENGTH = 1
CHUNKED = 2
UNTIL_CLOSE = 3


class _Sentinel:
    """A named singleton event; compare with ``is``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        # Pickling/copying hands back the module-level singleton.
        return self._name


END = _Sentinel("END")  # the current message is complete
NEED_DATA = _Sentinel("NEED_DATA")  # feed() more bytes, then call next_event() again
PAUSED = _Sentinel("PAUSED")  # waiting for start_next() / expect() before parsing more
CLOSED = _Sentinel("CLOSED")  # feed_eof() was called and no partial message was pending


@dataclass(frozen=True)
class Limits:
    """Size limits applied while parsing (any object with these attributes will do)."""

    max_request_line: int = 8192  # longest request target -> 414
    max_header_bytes: int = 32768  # whole head (or trailer section) -> 431
    max_header_count: int = 100  # field lines in a head (or trailer section) -> 431
    max_chunk_ext: int = 1024  # chunk extensions on one chunk-size line -> 400


class _Head:
    """Shared repr/equality for the head classes (compares every slot)."""

    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__)
        return "%s(%s)" % (type(self).__name__, fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass


class RequestHead(_Head):
    """A parsed, validated request head.

    ``host`` is the Host value, or the authority of an absolute-form (or CONNECT) target;
    ``b""`` for an HTTP/1.0 request without either. ``upgrade`` is the lower-cased Upgrade
    value when ``Connection`` names ``upgrade`` (HTTP/1.1 only), else None.
    """

    __slots__ = (
        "method", "target", "version", "headers", "framing", "content_length",
        "keep_alive", "expect_continue", "upgrade", "host",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: Headers,
        framing: int = NO_BODY,
        content_length: Optional[int] = None,
        keep_alive: bool = True,
        expect_continue: bool = False,
        upgrade: Optional[bytes] = None,
        host: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.framing = framing
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade
        self.host = host


class ResponseHead(_Head):
    """A parsed, validated response head.

    ``content_length`` is set only for LENGTH framing (and 0 for an explicit
    ``Content-Length: 0``); it is None when the framing ignores Content-Length.
    """

    __slots__ = (
        "status", "reason", "version", "headers", "framing", "content_length", "keep_alive",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        version: bytes,
        headers: Headers,
        framing: int = NO_BODY,
        content_length: Optional[int] = None,
        keep_alive: bool = True,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.framing = framing
        self.content_length = content_length
        self.keep_alive = keep_alive
