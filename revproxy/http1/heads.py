"""Framing kinds, event sentinels, limits and the parsed head objects.

Heads are plain ``__slots__`` classes rather than dataclasses: they are built once per
message on the hot path and must be cheap on both CPython and PyPy.

Heads are immutable: the parser shares one head object between every message that sent the
same bytes (``parser._memo_head``), so a change made for one request would leak into others.
Attribute assignment raises ``AttributeError``, ``headers`` is a tuple, and ``replace()``
gives a changed copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

Headers = List[Tuple[bytes, bytes]]
HeadFields = Tuple[Tuple[bytes, bytes], ...]  # a head's header fields (immutable)

_set = object.__setattr__

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
    """Shared repr/equality, immutability and ``replace`` for the head classes."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            "%s is immutable (one head may be shared by several messages): use replace()"
            % type(self).__name__)

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    def replace(self, **changes: Any) -> Any:
        """A copy with the given attributes changed (``headers`` made a tuple)."""
        new = object.__new__(type(self))
        for name in self.__slots__:
            value = changes.pop(name) if name in changes else getattr(self, name)
            _set(new, name, tuple(value) if name == "headers" else value)
        if changes:
            raise TypeError("%s has no attribute %s" % (type(self).__name__, ", ".join(changes)))
        return new

    def __copy__(self) -> Any:
        return self  # immutable: a copy would be equal in every way

    def __deepcopy__(self, memo: Any) -> Any:
        return self

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), tuple(getattr(self, n) for n in self.__slots__)))

    def __repr__(self) -> str:
        fields = ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__)
        return "%s(%s)" % (type(self).__name__, fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # headers may hold equal but distinct values


def _rebuild(cls: Any, values: Tuple[Any, ...]) -> Any:
    """Unpickling: a head from its slot values, in ``__slots__`` order."""
    head = object.__new__(cls)
    for name, value in zip(cls.__slots__, values):
        _set(head, name, value)
    return head


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
        headers: Sequence[Tuple[bytes, bytes]],
        framing: int = NO_BODY,
        content_length: Optional[int] = None,
        keep_alive: bool = True,
        expect_continue: bool = False,
        upgrade: Optional[bytes] = None,
        host: bytes = b"",
    ) -> None:
        _set(self, "method", method)
        _set(self, "target", target)
        _set(self, "version", version)
        _set(self, "headers", tuple(headers))  # no copy when already a tuple
        _set(self, "framing", framing)
        _set(self, "content_length", content_length)
        _set(self, "keep_alive", keep_alive)
        _set(self, "expect_continue", expect_continue)
        _set(self, "upgrade", upgrade)
        _set(self, "host", host)


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
        headers: Sequence[Tuple[bytes, bytes]],
        framing: int = NO_BODY,
        content_length: Optional[int] = None,
        keep_alive: bool = True,
    ) -> None:
        _set(self, "status", status)
        _set(self, "reason", reason)
        _set(self, "version", version)
        _set(self, "headers", tuple(headers))  # no copy when already a tuple
        _set(self, "framing", framing)
        _set(self, "content_length", content_length)
        _set(self, "keep_alive", keep_alive)
