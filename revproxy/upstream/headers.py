"""Header rewriting between client and backend (pure; header lists as in ``revproxy.http1``).

Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection and never cross the proxy:
``Connection`` and every field it names, plus ``Proxy-Connection``, ``Keep-Alive``, ``TE``,
``Transfer-Encoding`` and ``Upgrade`` (listed by §7.6.1). Also stripped:

* ``Trailer`` — the proxy re-frames bodies and does not forward trailers, so announcing
  them would be false;
* ``Proxy-Authorization`` — credentials addressed to a proxy, i.e. to us, never to a backend;
* ``HTTP2-Settings`` — connection-specific (RFC 7540 §3.2.1); h2c upgrades are never tunnelled.

``Proxy-Authenticate`` is kept (end-to-end in RFC 9110 §11.7.1, and nginx forwards it).
``Content-Length`` is dropped too by default (``drop_framing``): the proxy frames every body
itself and the caller adds the framing header it chose.

Forwarding fields (``X-Forwarded-*``, ``Forwarded``, the request id) are believed only from
peers inside ``trusted_proxies``; from anyone else they are replaced, since a client can write
whatever it likes in them.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

Headers = List[Tuple[bytes, bytes]]

HOP_BY_HOP = frozenset([
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-authorization", b"http2-settings",
])
_HOP_AND_FRAMING = HOP_BY_HOP | frozenset([b"content-length"])

_XFF = b"x-forwarded-for"
_XFP = b"x-forwarded-proto"
_XFH = b"x-forwarded-host"
_FORWARDED = b"forwarded"
_VIA = b"via"
_HOST = b"host"

_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}\Z")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VIA_COMMENT = re.compile(rb"\([^()]*\)")
_TRUST_CACHE_SIZE = 1024


def strip_hop_by_hop(headers: Sequence[Tuple[bytes, bytes]], drop_framing: bool = True) -> Headers:
    """Return ``headers`` without hop-by-hop fields, fields named in ``Connection`` and,
    when ``drop_framing``, ``Content-Length``; everything else keeps its order."""
    drop = _HOP_AND_FRAMING if drop_framing else HOP_BY_HOP
    kept = [field for field in headers if field[0] not in drop]
    if len(kept) == len(headers):
        return kept  # no Connection field at all: nothing it could name
    named = None
    for name, value in headers:
        if name == b"connection":
            tokens = [t.strip().lower() for t in value.split(b",")]
            named = (named or set()).union(t for t in tokens if t)
    if named:
        kept = [field for field in kept if field[0] not in named]
    return kept


_VIA_ENTRIES: Dict[Tuple[bytes, str], bytes] = {}


def via_entry(version: bytes, proxy_name: str) -> bytes:
    """Our own Via entry: ``1.0 name`` for an HTTP/1.0 message, ``2 name`` for an HTTP/2
    request, else ``1.1 name``."""
    entry = _VIA_ENTRIES.get((version, proxy_name))
    if entry is None:
        protocol = version if version in (b"1.0", b"2") else b"1.1"
        entry = protocol + b" " + proxy_name.encode("ascii")
        if len(_VIA_ENTRIES) < 64:  # a handful of (version, name) pairs in practice
            _VIA_ENTRIES[(version, proxy_name)] = entry
    return entry


def _append_via(headers: Headers, entry: bytes) -> Headers:
    """Fold every Via field line into one, in order, with ``entry`` last."""
    previous = [value for name, value in headers if name == _VIA and value]
    if not previous:
        headers.append((_VIA, entry))
        return headers
    kept = [(name, value) for name, value in headers if name != _VIA]
    kept.append((_VIA, b", ".join(previous + [entry])))
    return kept


def client_response_headers(headers: Sequence[Tuple[bytes, bytes]], *, proxy_name: str,
                            version: bytes, upgrade: Optional[bytes] = None) -> Headers:
    """Backend response headers as sent to the client: hop-by-hop and framing removed,
    our Via entry appended (``version`` is the backend response's). Repeated fields such
    as ``set-cookie`` keep every value, in order. For a 101 pass ``upgrade`` (the protocol
    switched to): ``Connection: upgrade`` and ``Upgrade`` are stripped, then added back."""
    out = strip_hop_by_hop(headers)
    entry = via_entry(version, proxy_name)
    for name, _ in out:
        if name == _VIA:
            out = _append_via(out, entry)
            break
    else:
        out.append((_VIA, entry))
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    return out


def new_request_id_factory(randbytes: Callable[[int], bytes]) -> Callable[[], bytes]:
    """Return a function making request ids: 16 bytes of ``randbytes`` as 32 hex digits.

    Ids need to be unique, not secret: the composition root passes a ``random.Random``
    seeded from ``os.urandom`` (one ``getrandom`` syscall per id cost 8% of the CPU of
    the 1 KiB benchmark)."""

    def generate() -> bytes:
        return binascii.hexlify(randbytes(16))

    return generate


def _quote(value: bytes) -> bytes:
    """A ``Forwarded`` parameter value: as is when a token, else a quoted-string."""
    if _TOKEN.match(value) is not None:
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def forwarded_element(client_ip: str, scheme: str, host: bytes) -> bytes:
    """One RFC 7239 element ``for=...;proto=...;host=...`` (IPv6 as ``"[::1]"``)."""
    node = client_ip.encode("ascii")
    node = b'"[' + node + b']"' if b":" in node else _quote(node)
    element = b"for=" + node + b";proto=" + scheme.encode("ascii")
    if host:
        element += b";host=" + _quote(host)
    return element


class ForwardingPolicy:
    """What the proxy tells a backend about the client, and which peers it believes."""

    def __init__(self, proxy_name: str, trusted: Sequence[str], request_id_header: bytes) -> None:
        self.proxy_name = proxy_name
        self._proxy_name_key = proxy_name.lower().encode("ascii")
        self._networks = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted]
        if isinstance(request_id_header, str):  # Server.request_id_header is text
            request_id_header = request_id_header.encode("ascii")
        self.request_id_header = request_id_header.lower()
        self._trust_cache: Dict[str, bool] = {}
        self._forwarding_cache: Dict[tuple, tuple] = {}
        self._managed = frozenset(
            (_HOST, _XFF, _XFP, _XFH, _FORWARDED, _VIA, self.request_id_header)
        )

    def is_trusted(self, ip: str) -> bool:
        """True when ``ip`` lies in a trusted network (IPv4-mapped IPv6 counts as IPv4)."""
        if not self._networks:
            return False
        answer = self._trust_cache.get(ip)
        if answer is None:
            answer = self._lookup(ip)
            if len(self._trust_cache) >= _TRUST_CACHE_SIZE:
                self._trust_cache.clear()
            self._trust_cache[ip] = answer
        return answer

    def _lookup(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        return any(address in network for network in self._networks)

    def request_id(self, headers: Sequence[Tuple[bytes, bytes]], client_ip: str,
                   generate: Callable[[], bytes]) -> bytes:
        """The incoming request id when a trusted peer sent exactly one sane value
        (1-200 visible ASCII characters), else ``generate()``."""
        if self.is_trusted(client_ip):
            values = [v for n, v in headers if n == self.request_id_header]
            if len(values) == 1 and _REQUEST_ID.match(values[0]) is not None:
                return values[0]
        return generate()

    def via_names_us(self, headers: Sequence[Tuple[bytes, bytes]]) -> bool:
        """True when a Via entry's received-by equals our proxy name (a forwarding loop)."""
        for name, value in headers:
            if name != _VIA:
                continue
            while b"(" in value:  # comments may hold commas; innermost first for nesting
                stripped = _VIA_COMMENT.sub(b"", value)
                if stripped == value:
                    break
                value = stripped
            for entry in value.split(b","):
                parts = entry.split()
                if len(parts) >= 2 and parts[1].lower() == self._proxy_name_key:
                    return True
        return False

    def backend_request_headers(
        self, headers: Sequence[Tuple[bytes, bytes]], *, client_ip: str, client_port: int,
        scheme: str, host: bytes, version: bytes, request_id: bytes,
        host_override: Optional[bytes], upgrade: Optional[bytes],
    ) -> Headers:
        """Client request headers as sent to a backend (framing headers left to the caller).

        ``host`` is the client's validated Host; ``version`` its HTTP version; ``upgrade``
        the protocol to tunnel, re-announced after hop-by-hop stripping. ``client_port`` is
        accepted for symmetry with the access log but not sent: no standard field carries it.
        """
        trusted = self.is_trusted(client_ip)
        managed = self._managed
        incoming: Dict[bytes, List[bytes]] = {}
        out: Headers = [(_HOST, host if host_override is None else host_override)]
        for field in strip_hop_by_hop(headers):
            name = field[0]
            if name in managed:
                incoming.setdefault(name, []).append(field[1])
            else:
                out.append(field)
        if len(incoming) <= 1 and (not incoming or _HOST in incoming):
            # The common case: nothing to merge, so the forwarding fields depend only on
            # who asked, for which host: computed once per (client, host, version).
            out.extend(self._plain_forwarding(client_ip, scheme, host, version))
            out.append((self.request_id_header, request_id))
            if upgrade is not None:
                out.append((b"connection", b"upgrade"))
                out.append((b"upgrade", upgrade))
            return out
        get = incoming.get
        ip = client_ip.encode("ascii")
        out.append((_XFF, _extend(get(_XFF, ()), ip, trusted)))
        out.append((_XFP, _keep(get(_XFP, ()), trusted) or scheme.encode("ascii")))
        forwarded_host = _keep(get(_XFH, ()), trusted) or host
        if forwarded_host:
            out.append((_XFH, forwarded_host))
        element = forwarded_element(client_ip, scheme, host)
        out.append((_FORWARDED, _extend(get(_FORWARDED, ()), element, trusted)))
        out.append((_VIA, _extend(get(_VIA, ()), via_entry(version, self.proxy_name), True)))
        out.append((self.request_id_header, request_id))
        if upgrade is not None:
            out.append((b"connection", b"upgrade"))
            out.append((b"upgrade", upgrade))
        return out


    def _plain_forwarding(self, client_ip: str, scheme: str, host: bytes, version: bytes):
        key = (client_ip, scheme, host, version)
        fields = self._forwarding_cache.get(key)
        if fields is None:
            fields = [(_XFF, client_ip.encode("ascii")), (_XFP, scheme.encode("ascii"))]
            if host:
                fields.append((_XFH, host))
            fields.append((_FORWARDED, forwarded_element(client_ip, scheme, host)))
            fields.append((_VIA, via_entry(version, self.proxy_name)))
            fields = tuple(fields)
            if len(self._forwarding_cache) >= _TRUST_CACHE_SIZE:
                self._forwarding_cache.clear()
            self._forwarding_cache[key] = fields
        return fields


def _extend(previous: Sequence[bytes], entry: bytes, keep: bool) -> bytes:
    """A list-valued field: the previous lines (when ``keep``) then ``entry``."""
    if not previous:
        return entry
    previous = [value for value in previous if value] if keep else []
    return b", ".join(previous + [entry]) if previous else entry


def _keep(previous: Sequence[bytes], keep: bool) -> bytes:
    """The incoming value of a single-valued field when believed, else empty."""
    if not previous:
        return b""
    return b", ".join(value for value in previous if value) if keep else b""
