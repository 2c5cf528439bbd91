"""Strict sans-IO HTTP/1.1 parsers (RFC 9112): ``RequestParser`` and ``ResponseParser``.

Feed bytes in, pull events out::

    parser.feed(data)
    while True:
        event = parser.next_event()   # head, body bytes, END, NEED_DATA, PAUSED or CLOSED
        ...

Everything here is pure: no I/O, no clock, no Twisted.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .errors import ProtocolError
from .fields import (
    HEAD_CTL, check_transfer_coding, parse_content_length, parse_fields, split_list, valid_host,
)
from .heads import (
    CHUNKED, CLOSED, END, LENGTH, NEED_DATA, NO_BODY, PAUSED, UNTIL_CLOSE, Limits,
    RequestHead, ResponseHead,
)
from .reader import S_DONE, S_HEAD, Event, MessageReader
from .startline import (
    check_partial_request_line, check_partial_status_line, parse_request_line,
    parse_status_line, request_authority,
)

__all__ = [
    "CHUNKED", "CLOSED", "END", "LENGTH", "NEED_DATA", "NO_BODY", "PAUSED", "UNTIL_CLOSE",
    "Limits", "ProtocolError", "RequestHead", "RequestParser", "ResponseHead",
    "ResponseParser",
]

MAX_EMPTY_LINES = 8  # CRLFs tolerated before a request line (RFC 9112 section 2.2)
_REQUEST_FIELDS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade")
)
_RESPONSE_FIELDS = frozenset((b"content-length", b"transfer-encoding", b"connection"))


_HEADS: Dict[tuple, Any] = {}  # (kind, method, limits, head block) -> the parsed head
_HEADS_MAX = 1024  # entries
MEMO_HEAD_MAX = 2048  # bytes: a longer head is parsed every time, never remembered
MEMO_BYTES_MAX = 1 << 20  # estimated bytes held by all remembered heads
_HEAD_COST = 600  # estimated bytes of a head object, its key and the dict slot
_FIELD_COST = 150  # estimated bytes of one field's tuple and two bytes objects (besides data)
_memo_bytes = 0  # estimate of what _HEADS holds now


def _memo_head(parser: Any, block: bytes, method: bytes) -> Any:
    """``parser._build_head(block)``, remembered: clients and backends send the same heads
    over and over (a backend's differ by their Date, once a second), and a head is fully
    determined by its bytes, the request method (for responses) and the limits.

    The keys are attacker-chosen bytes, so the memo is bounded: only heads of at most
    ``MEMO_HEAD_MAX`` bytes are remembered (browsers' and backends' usual heads are well
    under it), and when the estimated total would pass ``MEMO_BYTES_MAX`` (or the count
    ``_HEADS_MAX``) the memo starts afresh. Heads are immutable (see ``heads``), so sharing
    one between requests is safe. Parse errors are not remembered: they raise before
    anything is stored."""
    global _memo_bytes
    if len(block) > MEMO_HEAD_MAX:
        return parser._build_head(block)
    key = (parser.__class__, method, parser._max_line, parser._max_count, block)
    head = _HEADS.get(key)
    if head is None:
        head = parser._build_head(block)
        # the block twice: in the key and (sliced) in the fields
        cost = _HEAD_COST + 2 * len(block) + _FIELD_COST * len(head.headers)
        if len(_HEADS) >= _HEADS_MAX or _memo_bytes + cost > MEMO_BYTES_MAX:
            _HEADS.clear()
            _memo_bytes = 0
        _HEADS[key] = head
        _memo_bytes += cost
    return head


def memo_stats() -> Tuple[int, int]:
    """``(heads remembered, estimated bytes they hold)``, for tests and the curious."""
    return len(_HEADS), _memo_bytes


def clear_memo() -> None:
    """Forget every remembered head."""
    global _memo_bytes
    _HEADS.clear()
    _memo_bytes = 0


def _collect(fields: List[Any], names: frozenset) -> Dict[bytes, List[bytes]]:
    """The values of the fields in ``names``, grouped by name, in order."""
    found: Dict[bytes, List[bytes]] = {}
    for name, value in fields:
        if name in names:
            values = found.get(name)
            if values is None:
                found[name] = [value]
            else:
                values.append(value)
    return found


def _start_line(block: bytes) -> Tuple[bytes, int]:
    """The first line of a head (line ends known good) and where its fields start.

    Control bytes anywhere in the head are refused here, in one regex scan.
    """
    eol = block.find(b"\r\n")
    m = HEAD_CTL.search(block)
    if m is not None:
        if m.start() < eol:
            raise ProtocolError(400, "control character in start line")
        raise ProtocolError(400, "control character in header field")
    return block[:eol], eol + 2


class RequestParser(MessageReader):
    """Parses requests from a client, one at a time (see the module docstring).

    After END it returns PAUSED until ``start_next()``; a pipelined request already
    buffered is then parsed. Once ``feed_eof()`` was called, CLOSED is returned where the
    next request would start; EOF inside a request raises ProtocolError(400).
    """

    def __init__(self, limits: Any = None) -> None:
        super().__init__(limits if limits is not None else Limits())
        self._empty_lines = 0

    def start_next(self) -> None:
        """Begin parsing the next request (only valid after END, i.e. while PAUSED)."""
        if self._state != S_DONE:
            raise RuntimeError("start_next() before the current request ended")
        self._state = S_HEAD
        self._empty_lines = 0
        self._begin_block()

    def _truncated(self) -> ProtocolError:
        return ProtocolError(400, "connection closed mid-request")

    def partial_request_line(self) -> Tuple[Optional[bytes], Optional[bytes], Optional[bytes]]:
        """``(method, target, version)`` as far as the current head's request line has
        arrived, for logging a request refused before it was parsed; each None when not
        (yet) there. Unvalidated bytes: the log escapes them. The version (without
        ``HTTP/``) only once the line is complete; at most ``max_line`` bytes are read."""
        buf = self._buf
        pos = self._pos
        end = min(len(buf), pos + self._max_line + 2)
        eol = buf.find(b"\r\n", pos, end)
        parts = buf[pos:eol if eol >= 0 else end].split(b" ", 2)
        method = parts[0] or None
        target = parts[1] or None if len(parts) > 1 else None
        version = None
        if len(parts) > 2 and eol >= 0:
            version = parts[2]
            if version.startswith(b"HTTP/"):
                version = version[5:]
            version = version or None
        return method, target, version

    def _step_head(self) -> Event:
        buf = self._buf
        pos = self._pos
        while buf.startswith(b"\r\n", pos):
            if self._empty_lines == MAX_EMPTY_LINES:
                raise ProtocolError(400, "too many empty lines before request line")
            self._empty_lines += 1
            pos += 2
        if pos != self._pos:
            self._take(pos - self._pos)
            buf = self._buf
            pos = self._pos
        avail = len(buf) - pos
        if avail == 0 and self._eof:
            return CLOSED
        if avail == 0 or (avail == 1 and buf[pos] == 13):
            return self._starved()
        size = self._scan_block("head")
        if size < 0:
            self._check_partial_head()
            return self._starved()
        head = _memo_head(self, buf[pos:pos + size - 2], b"")
        self._take(size)
        self._start_body(head.framing, head.content_length)
        return head

    def _check_partial_head(self) -> None:
        buf = self._buf
        pos = self._pos
        if not self._line_seen:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                check_partial_request_line(buf, pos, len(buf), self._max_line)
            else:
                self._line_seen = True
                parse_request_line(buf[pos:eol], self._max_line)  # fail early if bad
        self._check_block_size()

    def _build_head(self, block: bytes) -> RequestHead:
        """Interpret a head (``block`` ends with the last line's CRLF)."""
        line, start = _start_line(block)
        method, target, version = parse_request_line(line, self._max_line)
        fields = parse_fields(block, start, self._max_count)
        found = _collect(fields, _REQUEST_FIELDS)
        host = _request_host(method, target, version, found.get(b"host"))
        framing, length = _framing(version, found, NO_BODY, "request")
        tokens = split_list(found[b"connection"]) if b"connection" in found else ()
        expect_continue = False
        upgrade = None
        if version == b"1.1":
            expect = found.get(b"expect")
            expect_continue = expect is not None and any(
                v.lower() == b"100-continue" for v in expect
            )
            upgrades = found.get(b"upgrade")
            if upgrades is not None and b"upgrade" in tokens:
                upgrade = b", ".join(upgrades).lower()
        return RequestHead(method, target, version, tuple(fields), framing, length,
                           _keep_alive(version, tokens), expect_continue, upgrade, host)


def _request_host(
    method: bytes, target: bytes, version: bytes, hosts: Optional[List[bytes]]
) -> bytes:
    """The request's host: the target's authority if any, else the (single) Host value."""
    authority = request_authority(method, target)
    if hosts is None:
        if version == b"1.1":
            raise ProtocolError(400, "missing Host header")
        return authority if authority is not None else b""
    if len(hosts) > 1:
        raise ProtocolError(400, "repeated Host header")
    host = hosts[0]
    if not valid_host(host):
        raise ProtocolError(400, "invalid Host header")
    if authority is not None:
        if authority.lower() != host.lower():
            raise ProtocolError(400, "Host header disagrees with request target")
        return authority
    return host


class ResponseParser(MessageReader):
    """Parses responses from a backend; call ``expect(method)`` before each response.

    Every ProtocolError it raises has status 502. 1xx heads other than 101 are returned
    and parsing continues with the same request; after a 101 (or a 2xx to CONNECT) the
    head is followed by END and ``take_remaining()`` holds the tunnel's first bytes.
    While no response is expected, ``next_event()`` returns PAUSED (CLOSED after EOF).
    """

    def __init__(self, limits: Any = None) -> None:
        super().__init__(limits if limits is not None else Limits())
        self._state = S_DONE
        self._method = b""
        self._interim = False  # a 1xx head was already returned for this request

    def expect(self, method: bytes) -> None:
        """Prepare for the response to a request made with ``method``."""
        if self._state != S_DONE:
            raise RuntimeError("expect() while a response is being parsed")
        self._method = method
        self._interim = False
        self._state = S_HEAD
        self._begin_block()

    def _convert(self, exc: ProtocolError) -> ProtocolError:
        if exc.status == 502:
            return exc
        return ProtocolError(502, exc.reason)

    def _truncated(self) -> ProtocolError:
        if self._state != S_HEAD:
            return ProtocolError(502, "response truncated in body")
        if self.buffered_bytes() or self._interim:
            return ProtocolError(502, "response truncated in head")
        return ProtocolError(502, "connection closed before response")

    def _step_done(self) -> Event:
        return CLOSED if self._eof else PAUSED

    def _step_head(self) -> Event:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if not avail:
            return self._starved()
        size = self._scan_block("head")
        if size < 0:
            self._check_partial_head()
            return self._starved()
        head = _memo_head(self, buf[pos:pos + size - 2], self._method)
        self._take(size)
        if head.status < 200 and head.status != 101:
            self._interim = True
            self._begin_block()  # stay in S_HEAD for the final response
        else:
            self._start_body(head.framing, head.content_length)
        return head

    def _check_partial_head(self) -> None:
        buf = self._buf
        pos = self._pos
        if not self._line_seen:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                check_partial_status_line(buf, pos, len(buf))
            else:
                self._line_seen = True
                parse_status_line(buf[pos:eol])
        self._check_block_size()

    def _build_head(self, block: bytes) -> ResponseHead:
        """Interpret a head (``block`` ends with the last line's CRLF)."""
        line, start = _start_line(block)
        version, status, reason = parse_status_line(line)
        fields = parse_fields(block, start, self._max_count)
        found = _collect(fields, _RESPONSE_FIELDS)
        tunnel = status == 101 or (self._method == b"CONNECT" and 200 <= status < 300)
        framing, length = NO_BODY, None
        if not (status < 200 or status in (204, 304) or tunnel or self._method == b"HEAD"):
            framing, length = _framing(version, found, UNTIL_CLOSE, "response")
        if tunnel or framing == UNTIL_CLOSE:
            keep_alive = False
        else:
            tokens = split_list(found[b"connection"]) if b"connection" in found else ()
            keep_alive = _keep_alive(version, tokens)
        return ResponseHead(status, reason, version, tuple(fields), framing, length, keep_alive)


def _framing(
    version: bytes, found: Dict[bytes, List[bytes]], default: int, what: str
) -> Tuple[int, Optional[int]]:
    """``(framing, content_length)`` from Transfer-Encoding / Content-Length (RFC 9112 6.3,
    strict on TE); the length is None unless Content-Length was given.

    ``default`` applies when neither is present (NO_BODY for a request, UNTIL_CLOSE for a
    response). Request statuses are used; the response parser maps them to 502.
    """
    lengths = found.get(b"content-length")
    codings = found.get(b"transfer-encoding")
    if codings is not None:
        if lengths is not None:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        if version == b"1.0":
            raise ProtocolError(400, "Transfer-Encoding in HTTP/1.0 " + what)
        check_transfer_coding(codings)
        return CHUNKED, None
    if lengths is not None:
        length = parse_content_length(lengths)
        return (LENGTH if length else NO_BODY), length
    return default, None


def _keep_alive(version: bytes, tokens: Any) -> bool:
    """Persistence from the version and the Connection tokens (RFC 9112 9.3)."""
    if version == b"1.1":
        return b"close" not in tokens
    return b"keep-alive" in tokens and b"close" not in tokens
