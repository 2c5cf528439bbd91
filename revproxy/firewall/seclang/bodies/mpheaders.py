"""The two header values a multipart body depends on, parsed as ModSecurity does
(msc_multipart.c / multipart.cc): the request's Content-Type (its boundary) and a part's
Content-Disposition (its name and filename). Pure functions on bytes, linear time."""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

_C_SPACE = b" \t\n\r\x0b\x0c"  # C isspace()
_TSPECIALS = frozenset(b'()<>@,;:\\"/[]?=')
_BOUNDARY_SPECIALS = frozenset(b'()<>@,;:\\"/[]?=')


class BoundaryResult(NamedTuple):
    """``boundary`` (None on error), ``flags`` raised while reading it
    (MULTIPART_BOUNDARY_QUOTED, MULTIPART_BOUNDARY_WHITESPACE, MULTIPART_MISSING_SEMICOLON)
    and ``error`` (b"" or ModSecurity's message)."""

    boundary: Optional[bytes]
    flags: Dict[str, int]
    error: bytes


def count_boundary_params(value: bytes) -> int:
    """How many times ``boundary`` (any case) occurs with an ``=`` somewhere after it."""
    lowered = value.lower()
    count = 0
    start = lowered.find(b"boundary")
    last_equals = lowered.rfind(b"=")
    while start >= 0:
        start += 8
        if last_equals >= start:
            count += 1
        start = lowered.find(b"boundary", start)
    return count


def _boundary_chars_valid(boundary: bytes) -> bool:
    return all(32 <= c <= 126 and c not in _BOUNDARY_SPECIALS for c in boundary)


def parse_boundary(content_type: bytes) -> BoundaryResult:
    """Extract the boundary from a multipart/form-data Content-Type, strictly: one
    ``boundary`` parameter, nothing but whitespace and one ``;`` before it (no ``;`` raises
    MULTIPART_MISSING_SEMICOLON), whitespace around ``=`` raises MULTIPART_BOUNDARY_WHITESPACE,
    a quoted value MULTIPART_BOUNDARY_QUOTED; the value runs to the end of the header and must
    be 1+ printable characters without tspecials (so a parameter after it is an error)."""
    flags: Dict[str, int] = {}

    def fail(message: str) -> BoundaryResult:
        return BoundaryResult(None, flags, b"Multipart: " + message.encode())

    if not content_type:
        return fail("Content-Type header not available.")
    if len(content_type) > 1024:
        return fail("Invalid boundary in C-T (length).")
    if content_type[:19].lower() != b"multipart/form-data":
        return fail("Invalid MIME type.")
    if count_boundary_params(content_type) > 1:
        return fail("Multiple boundary parameters in C-T.")
    at = content_type.find(b"boundary")
    if at < 0:
        if count_boundary_params(content_type) > 0:
            return fail("Invalid boundary in C-T (case sensitivity).")
        return fail("Boundary not found in C-T.")
    seen_semicolon = False
    for c in content_type[19:at]:
        if c in _C_SPACE:
            continue
        if c == 0x3B and not seen_semicolon:
            seen_semicolon = True
        else:
            return fail("Invalid boundary in C-T (malformed).")
    if not seen_semicolon:
        flags["MULTIPART_MISSING_SEMICOLON"] = 1
    equals = content_type.find(b"=", at + 8)
    if equals < 0:
        return fail("Invalid boundary in C-T (malformed).")
    for c in content_type[at + 8:equals]:
        if c in _C_SPACE:
            flags["MULTIPART_BOUNDARY_WHITESPACE"] = 1
        else:
            return fail("Invalid boundary in C-T (parameter name).")
    value = content_type[equals + 1:]
    if value[:1] and value[0] in _C_SPACE:
        flags["MULTIPART_BOUNDARY_WHITESPACE"] = 1
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        value = value[1:-1]
        flags["MULTIPART_BOUNDARY_QUOTED"] = 1
    elif value[:1] == b'"' or (len(value) >= 2 and value[-1:] == b'"'):
        return fail("Invalid boundary in C-T (quote).")
    if count_boundary_params(value) != 0:
        return fail("Invalid boundary in C-T (content).")
    if not _boundary_chars_valid(value):
        return fail("Invalid boundary in C-T (characters).")
    if not value:
        return fail("Invalid boundary in C-T (empty).")
    return BoundaryResult(value, flags, b"")


class Disposition(NamedTuple):
    """A parsed Content-Disposition: ``name`` / ``filename`` (None when absent), ``code``
    (0, or ModSecurity's negative error code), ``invalid_quoting`` (a ``'`` was used)."""

    name: Optional[bytes]
    filename: Optional[bytes]
    code: int
    invalid_quoting: bool


def _is_token(c: int) -> bool:
    return 32 < c < 127 and c not in _TSPECIALS


def _ext_value(value: bytes) -> Optional[bytes]:
    """RFC 5987 ``charset'lang'pct-encoded`` -> the decoded bytes (None if malformed)."""
    from revproxy.firewall.seclang.bodies.urlencoded import url_decode

    parts = value.split(b"'", 2)
    if len(parts) != 3:
        return None
    return url_decode(parts[2].replace(b"+", b"%2B"))[0]


def parse_disposition(value: bytes) -> Disposition:
    """Parse ``form-data; name="a"; filename="b"`` the way ModSecurity does: only
    ``form-data`` (case-sensitive), then ``;``-separated ``name`` / ``filename`` /
    ``filename*`` parameters, quoted with ``"`` (or ``'``, which raises invalid quoting) with
    backslash escaping only the quote and the backslash, or unquoted tokens. Anything else,
    a duplicate parameter or trailing junk gives a negative ``code``; what was read before the
    fault is still returned."""
    name: Optional[bytes] = None
    filename: Optional[bytes] = None
    bad_quote = False

    def done(code: int) -> Disposition:
        return Disposition(name, filename, code, bad_quote)

    if not value.startswith(b"form-data"):
        return done(-1)
    n = len(value)
    p = 9
    while p < n and value[p] in b" \t":
        p += 1
    if p == n:
        return done(0)
    if value[p] != 0x3B:
        return done(-2)
    p += 1
    while p < n:
        while p < n and value[p] in b" \t":
            p += 1
        if p == n:
            return done(-3)
        start = p
        while p < n and value[p] not in b"= \t":
            p += 1
        if p == n:
            return done(-4)
        param = value[start:p]
        while p < n and value[p] in b" \t":
            p += 1
        if p == n:
            return done(-5)
        if value[p] != 0x3D:
            return done(-13)
        p += 1
        while p < n and value[p] in b" \t":
            p += 1
        if p == n:
            return done(-6)
        if value[p] in b"\"'":
            quote = value[p]
            bad_quote = bad_quote or quote == 0x27
            p += 1
            if p == n:
                return done(-7)
            out = bytearray()
            while p < n and value[p] != quote:
                if value[p] == 0x5C:
                    if p + 1 == n:
                        return done(-8)
                    if value[p + 1] in (quote, 0x5C):
                        p += 1
                out.append(value[p])
                p += 1
            if p == n:
                return done(-10)
            p += 1
            text = bytes(out)
        else:
            start = p
            while p < n and _is_token(value[p]):
                p += 1
            text = value[start:p]
        if param in (b"name", b"filename") and b"'" in text:
            bad_quote = True  # ModSecurity's validate_quotes()
        if param == b"name":
            if name is not None:
                return done(-14)
            name = text
        elif param == b"filename":
            if filename is not None:
                return done(-15)
            filename = text
        elif param == b"filename*":
            decoded = _ext_value(text)
            if decoded is None or filename is not None:
                return done(-15)
            filename = decoded
        else:
            return done(-11)
        while p < n and value[p] in b" \t":
            p += 1
        if p == n:
            return done(0)
        if value[p] != 0x3B:
            if value[p - 1] in b"\"'":
                bad_quote = True
            return done(-12)
        p += 1
    return done(0)
