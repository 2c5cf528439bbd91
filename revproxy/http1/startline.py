"""Request lines, status lines and request-target forms (RFC 9112 sections 3 and 4).

Errors carry request statuses (400, 414, 505); the response parser turns them into 502.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

from .errors import ProtocolError
from .fields import TOKEN, TOKEN_CHARS, valid_host

_REQUEST_LINE = re.compile(rb"([" + TOKEN_CHARS + rb"]+) ([\x21-\x7e]+) HTTP/1\.([01])\Z")
_TOKEN_RUN = re.compile(rb"[" + TOKEN_CHARS + rb"]*")
_VISIBLE = re.compile(rb"[\x21-\x7e]+\Z")
_ANY_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]\Z")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: (.*))?\Z", re.S)
_ANY_STATUS_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9] ")
_ABSOLUTE = re.compile(rb"[hH][tT][tT][pP][sS]?://([^/?]*)")
_VERSIONS = {b"0": b"1.0", b"1": b"1.1"}


def parse_request_line(line: bytes, max_target: int) -> Tuple[bytes, bytes, bytes]:
    """Split ``method SP target SP HTTP/1.x`` into (method, target, b"1.x")."""
    m = _REQUEST_LINE.match(line)
    if m is None:
        raise _request_line_error(line, max_target)
    method, target, minor = m.groups()
    if len(target) > max_target:
        raise ProtocolError(414, "request target too long")
    return method, target, _VERSIONS[minor]


def _request_line_error(line: bytes, max_target: int) -> ProtocolError:
    parts = line.split(b" ")
    if len(parts) != 3:
        if not line:
            return ProtocolError(400, "empty request line")
        if len(parts) > 3:
            return ProtocolError(400, "extra space in request line")
        return ProtocolError(400, "incomplete request line")
    method, target, version = parts
    if TOKEN.match(method) is None:
        return ProtocolError(400, "invalid method")
    if len(target) > max_target:
        return ProtocolError(414, "request target too long")
    if _VISIBLE.match(target) is None:
        return ProtocolError(400, "invalid character in request target")
    if _ANY_VERSION.match(version) is not None:
        return ProtocolError(505, "unsupported HTTP version")
    return ProtocolError(400, "malformed HTTP version")


def check_partial_request_line(buf: bytes, start: int, end: int, max_target: int) -> None:
    """Reject an incomplete request line as soon as it cannot become valid.

    Catches non-HTTP clients (a TLS hello) on the first bytes, and a target longer than
    ``max_target`` (414) before its end arrives, so such a line is never buffered whole.
    """
    stop = _TOKEN_RUN.match(buf, start, end).end()
    if stop == end:
        if end - start > max_target:
            raise ProtocolError(400, "method too long")
        return
    if stop == start or buf[stop] != 32:
        raise ProtocolError(400, "invalid method")
    if end - stop - 1 > max_target:
        space = buf.find(b" ", stop + 1, end)
        if (space if space >= 0 else end) - stop - 1 > max_target:
            raise ProtocolError(414, "request target too long")


def request_authority(method: bytes, target: bytes) -> Optional[bytes]:
    """Check the target's form; return its authority (absolute-form, CONNECT) or None."""
    if b"#" in target:
        raise ProtocolError(400, "fragment in request target")
    if method == b"CONNECT":
        if not valid_host(target, need_port=True):
            raise ProtocolError(400, "CONNECT target is not authority-form")
        return target
    first = target[0]
    if first == 47:  # "/": origin-form, by far the most common
        return None
    if first == 42 and len(target) == 1:  # "*"
        if method != b"OPTIONS":
            raise ProtocolError(400, "asterisk-form target without OPTIONS")
        return None
    m = _ABSOLUTE.match(target)
    if m is None:
        raise ProtocolError(400, "invalid request target form")
    authority = m.group(1)
    if b"@" in authority:
        raise ProtocolError(400, "userinfo in request target")
    if not valid_host(authority):
        raise ProtocolError(400, "invalid authority in request target")
    return authority


def parse_status_line(line: bytes) -> Tuple[bytes, int, bytes]:
    """Split ``HTTP/1.x SP 3DIGIT SP reason`` into (b"1.x", status, reason).

    A missing SP before an empty reason is tolerated; status must be 100-599.
    """
    m = _STATUS_LINE.match(line)
    if m is None:
        if _ANY_STATUS_VERSION.match(line) is not None and not line.startswith(b"HTTP/1."):
            raise ProtocolError(505, "unsupported HTTP version")
        raise ProtocolError(400, "malformed status line")
    minor, code, reason = m.groups()
    status = int(code)
    if status < 100 or status > 599:
        raise ProtocolError(400, "invalid status code")
    return _VERSIONS[minor], status, reason or b""


def check_partial_status_line(buf: bytes, start: int, end: int) -> None:
    """Reject a response whose first bytes are not ``HTTP/`` without waiting for more."""
    if not b"HTTP/".startswith(buf[start:min(end, start + 5)]):
        raise ProtocolError(400, "malformed status line")
