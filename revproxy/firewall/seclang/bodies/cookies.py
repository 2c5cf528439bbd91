"""The Cookie request header(s) -> REQUEST_COOKIES (ModSecurity v3 semantics).

Each header value splits on ``;`` only (not ``,``); trailing whitespace after the last pair is
dropped; a pair splits on its first ``=`` (no ``=``: a name with an empty value); leading
whitespace of the name is trimmed (the value is kept as sent, not URL-decoded); pairs whose
name is empty (``; =x``) are skipped. Names keep their case; repeats are kept in order.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

from revproxy.firewall.seclang.api import Pairs

_SPACE = b" \t\n\r\x0b\x0c"


def parse_cookies(header_values: Sequence[bytes]) -> Pairs:
    """Return the (name, value) pairs of every Cookie header value in order. Never raises
    on bytes input; linear time."""
    cookies: List[Tuple[bytes, bytes]] = []
    for header in header_values:
        pieces = header.split(b";")
        pieces[-1] = pieces[-1].rstrip(_SPACE)
        for piece in pieces:
            name, _, value = piece.partition(b"=")
            name = name.lstrip(_SPACE)
            if name:
                cookies.append((name, value))
    return tuple(cookies)
