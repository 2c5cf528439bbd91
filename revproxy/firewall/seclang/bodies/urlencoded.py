"""application/x-www-form-urlencoded bodies and query strings (ARGS_POST, ARGS_GET).

Coraza / ModSecurity v3 semantics: split on ``&``; a piece splits on its first ``=`` (a piece
without ``=`` is a name with an empty value); empty pieces are skipped (Coraza; ModSecurity
adds an empty name for ``a&&b``); names and values are URL-decoded leniently: ``+`` is a
space, ``%XX`` with two hex digits is decoded, any other ``%`` is kept as it is and raises
URLENCODED_ERROR. Names keep their case. At most ``max_args`` pairs are kept (SecArgumentsLimit:
the rest are dropped and ``flags["ARGS_LIMIT_EXCEEDED"] = 1``, a revproxy marker so the caller
can apply its policy to a body it could not inspect whole).
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

from revproxy.firewall.seclang.api import BodyResult

_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_HEX = {b"%02x" % i: bytes((i,)) for i in range(256)}
_HEX.update({b"%02X" % i: bytes((i,)) for i in range(256)})


def _unhex(match: "re.Match[bytes]") -> bytes:
    return _HEX.get(match.group(0)) or bytes((int(match.group(1), 16),))


def url_decode(data: bytes) -> Tuple[bytes, bool]:
    """Decode ``data`` leniently (``+`` -> space, valid ``%XX`` decoded, invalid escapes
    kept); returns (decoded, whether an invalid escape was seen). Linear time."""
    if b"+" in data:
        data = data.replace(b"+", b" ")
    if b"%" not in data:
        return data, False
    decoded, valid = _ESCAPE.subn(_unhex, data)
    # Counted on the input: a "%" that starts no valid escape is an invalid one (a decoded
    # "%25" must not count).
    return decoded, data.count(b"%") > valid


def parse_urlencoded(data: bytes, *, max_args: int) -> BodyResult:
    """Parse a URL-encoded body into ``args`` (in order, repeats kept).

    ``flags``: REQBODY_ERROR / REQBODY_PROCESSOR_ERROR 0 (this processor never fails),
    URLENCODED_ERROR 1 when an invalid ``%`` escape was seen, ARGS_LIMIT_EXCEEDED 1 when more
    than ``max_args`` pairs were present. Never raises on bytes input."""
    args, flags = _split_pairs(data, max_args)
    flags["REQBODY_ERROR"] = 0
    flags["REQBODY_PROCESSOR_ERROR"] = 0
    return BodyResult(args=tuple(args), flags=flags, raw_length=len(data))


def parse_query(raw_query: bytes, max_args: int) -> BodyResult:
    """Parse a query string (the part of the request target after ``?``, without the
    fragment) for ARGS_GET: same rules as the body, ``flags`` holds URLENCODED_ERROR and
    ARGS_LIMIT_EXCEEDED only when set."""
    args, flags = _split_pairs(raw_query, max_args)
    return BodyResult(args=tuple(args), flags=flags, raw_length=len(raw_query))


def _split_pairs(data: bytes, max_args: int) -> Tuple[List[Tuple[bytes, bytes]], Dict[str, int]]:
    flags: Dict[str, int] = {}
    if b"%" not in data and b"+" not in data:  # nothing to decode (most forms): in C
        pieces = [piece for piece in data.split(b"&") if piece]
        if len(pieces) > max_args:
            flags["ARGS_LIMIT_EXCEEDED"] = 1
            del pieces[max_args:]
        return [piece.partition(b"=")[::2] for piece in pieces], flags
    args: List[Tuple[bytes, bytes]] = []
    invalid = False
    for piece in data.split(b"&"):
        if not piece:
            continue
        if len(args) >= max_args:
            flags["ARGS_LIMIT_EXCEEDED"] = 1
            break
        name, sep, value = piece.partition(b"=")
        if b"%" in piece or b"+" in piece:  # (most pieces have nothing to decode)
            name, bad_name = url_decode(name)
            value, bad_value = url_decode(value)
            invalid = invalid or bad_name or bad_value
        args.append((name, value))
    if invalid:
        flags["URLENCODED_ERROR"] = 1
    return args, flags
