"""Rate-limit keys: what a request is counted under (pure; reads a ``RequestContext``).

A key spec is a sequence of parts: ``"ip"`` (the client address: the peer, or the address a
trusted proxy forwarded, see ``client_address``), ``"route"`` (the route's name),
``"header:<name>"`` (the header's first value) and ``"cookie:<name>"``. A request lacking
a part (no such header or cookie) has no key: the limit does not count it, as nginx does
for an empty ``limit_req_zone`` key. Keys are bounded in size: a key over ``MAX_KEY_BYTES``
is replaced by a 16-byte digest, so an attacker's long values cannot grow the tables.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Callable, Optional, Sequence

MAX_KEY_BYTES = 64
_XFF = b"x-forwarded-for"


def client_address(ctx, forwarding) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy
    (``forwarding.is_trusted``); then the right-most ``X-Forwarded-For`` entry that is not
    itself trusted (all trusted: the left-most). An entry that is not an IP address ends the
    walk at the peer's address: a trusted proxy's garbage is not a key to believe."""
    peer = ctx.peer.client_ip
    if not forwarding.is_trusted(peer):
        return peer  # a client's own X-Forwarded-For is never believed
    values = [value for name, value in ctx.head.headers if name == _XFF]
    if not values:
        return peer
    found = peer
    for entry in reversed(b",".join(values).split(b",")):
        text = entry.strip().decode("latin-1")
        try:
            text = str(ipaddress.ip_address(text))
        except ValueError:
            return peer
        found = text
        if not forwarding.is_trusted(text):
            return text
    return found


def _cookie(ctx, name: bytes):
    for key, value in ctx.head.headers:
        if key != b"cookie":
            continue
        for pair in value.split(b";"):
            cname, sep, cvalue = pair.strip().partition(b"=")
            if sep and cname == name:
                return cvalue
    return None


def _part(spec: str, forwarding, trust_forwarded: bool) -> Callable:
    if spec == "ip":
        if trust_forwarded:
            return lambda ctx: client_address(ctx, forwarding).encode("ascii")
        return lambda ctx: ctx.peer.client_ip.encode("ascii")
    if spec == "route":
        return lambda ctx: ctx.route.name.encode("utf-8") if ctx.route is not None else b"-"
    kind, _, name = spec.partition(":")
    raw = name.encode("ascii")
    if kind == "header":
        return lambda ctx: ctx.header(raw)
    return lambda ctx: _cookie(ctx, raw)


def key_function(parts: Sequence[str], forwarding, trust_forwarded: bool
                 ) -> Callable[[object], Optional[object]]:
    """A function ``ctx -> key`` (hashable; None when a part is missing) for ``parts``.
    ``trust_forwarded`` is False when no proxy is trusted: the peer's address is then the
    key as is (the common case, one attribute read)."""
    if tuple(parts) == ("ip",) and not trust_forwarded:
        return _peer_address
    readers = [_part(spec, forwarding, trust_forwarded) for spec in parts]

    def key(ctx):
        values = []
        for read in readers:
            value = read(ctx)
            if value is None:
                return None
            values.append(value)
        joined = b"\x00".join(values)
        if len(joined) > MAX_KEY_BYTES:
            return hashlib.blake2b(joined, digest_size=16).digest()
        return joined

    return key


def _peer_address(ctx):
    return ctx.peer.client_ip


_peer_address.peer_address = True  # callers may read ctx.peer.client_ip themselves


def key_bytes(key) -> bytes:
    """A key as bytes (memcached names, logs)."""
    return key.encode("ascii") if isinstance(key, str) else key
