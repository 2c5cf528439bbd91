"""The PROXY protocol header (HAProxy's, versions 1 and 2), parsed and written without I/O.

A load balancer in front of the proxy opens each connection with one header saying who the
client is. ``HeaderParser.feed(data)`` takes the connection's first bytes as they arrive and
returns None (more bytes needed) or ``(ProxyHeader, rest)``: ``rest`` is what followed the
header (the client's first HTTP or TLS bytes). A malformed, unknown or oversized header
raises ``ProxyHeaderError`` with a one-line reason; nothing is ever guessed.

What the header says:

* v1 ``PROXY TCP4|TCP6 src dst sport dport\\r\\n``: the client is ``src:sport``;
  ``PROXY UNKNOWN ...\\r\\n``: no address (``ProxyHeader.source`` None: the TCP peer stays).
* v2 (binary): the ``PROXY`` command with an INET / INET6 stream address gives the client;
  ``LOCAL`` (the balancer's own health check), ``UNSPEC``, UDP and Unix families give no
  address. TLVs are skipped unread (their length is covered by the header's own length).

Writing: ``encode_v1`` / ``encode_v2`` give the header a sender opens a connection with (the
proxy towards its members with ``send_proxy_protocol``); what they write parses back to the
same addresses (a hypothesis property).

Bounds: a v1 line is at most 107 bytes (the specification's maximum), a v2 header at most
``MAX_V2_LENGTH`` bytes beyond its 16-byte prefix.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Optional, Tuple

V1_PREFIX = b"PROXY "
V1_MAX = 107  # "PROXY TCP6 " + 2 * 39 + 2 * 5 + 3 spaces + CRLF, rounded as the spec says
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_PREFIX_LENGTH = 16
MAX_V2_LENGTH = 16 * 1024  # addresses + TLVs; real balancers send well under 1 KiB

LOCAL, PROXY = "local", "proxy"


class ProxyHeaderError(Exception):
    """The connection did not start with a valid PROXY header; ``str()`` says why."""


class ProxyHeader:
    """A parsed header: ``version`` (1 or 2), ``command`` (``"proxy"`` or ``"local"``),
    ``source`` / ``destination`` as ``(ip, port)`` or None when the header gives no address
    (then the TCP peer is the client), ``family`` (``"TCP4"``, ``"TCP6"``, ``"UNKNOWN"``...)."""

    __slots__ = ("version", "command", "family", "source", "destination")

    def __init__(self, version, command, family, source=None, destination=None):
        self.version = version
        self.command = command
        self.family = family
        self.source = source
        self.destination = destination

    def __repr__(self):
        return "<ProxyHeader v%d %s %s %r -> %r>" % (
            self.version, self.command, self.family, self.source, self.destination)


def _prefix_of(data: bytes, full: bytes) -> bool:
    """``data`` is a prefix of ``full`` or starts with it."""
    n = min(len(data), len(full))
    return data[:n] == full[:n]


class HeaderParser:
    """Feed the first bytes of a connection until a header comes out (see the module)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Optional[Tuple[ProxyHeader, bytes]]:
        buffer = self._buffer = self._buffer + data
        if _prefix_of(buffer, V2_SIGNATURE):
            if len(buffer) < V2_PREFIX_LENGTH:
                return None
            return self._v2(buffer)
        if _prefix_of(buffer, V1_PREFIX):
            return self._v1(buffer)
        raise ProxyHeaderError("no PROXY protocol header (the connection starts %r)"
                               % bytes(buffer[:16]))

    def _v1(self, buffer: bytes):
        end = buffer.find(b"\r\n", 0, V1_MAX)
        if end < 0:
            if len(buffer) >= V1_MAX or b"\n" in buffer:
                raise ProxyHeaderError("PROXY v1 line without CRLF in its first %d bytes"
                                       % V1_MAX)
            return None
        self._buffer = b""
        return parse_v1_line(buffer[:end]), buffer[end + 2:]

    def _v2(self, buffer: bytes):
        version_command, family, length = struct.unpack("!BBH", buffer[12:16])
        if version_command >> 4 != 2:
            raise ProxyHeaderError("PROXY v2: version %d, expected 2" % (version_command >> 4))
        command = version_command & 0x0F
        if command not in (0, 1):
            raise ProxyHeaderError("PROXY v2: unknown command %d" % command)
        if length > MAX_V2_LENGTH:
            raise ProxyHeaderError("PROXY v2: header of %d bytes, over %d" % (length,
                                                                             MAX_V2_LENGTH))
        end = V2_PREFIX_LENGTH + length
        if len(buffer) < end:
            return None
        self._buffer = b""
        body = buffer[V2_PREFIX_LENGTH:end]
        return parse_v2(command, family, body), buffer[end:]


def _v1_address(text: bytes, family: bytes) -> str:
    try:
        value = text.decode("ascii")
        address = ipaddress.IPv4Address(value) if family == b"TCP4" else \
            ipaddress.IPv6Address(value)
    except (UnicodeDecodeError, ValueError):
        raise ProxyHeaderError("PROXY v1: bad %s address %r" % (family.decode(), text)) from None
    if "%" in value:
        raise ProxyHeaderError("PROXY v1: bad %s address %r" % (family.decode(), text))
    return str(address)


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[:1] == b"0"):
        raise ProxyHeaderError("PROXY v1: bad port %r" % text)
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError("PROXY v1: bad port %r" % text)
    return port


def parse_v1_line(line: bytes) -> ProxyHeader:
    """A v1 header line without its CRLF (``PROXY TCP4 1.2.3.4 5.6.7.8 1234 80``)."""
    parts = line.split(b" ")
    if parts[0] != b"PROXY" or len(parts) < 2:
        raise ProxyHeaderError("PROXY v1: malformed line %r" % line[:V1_MAX])
    family = parts[1]
    if family == b"UNKNOWN":  # the rest, whatever it is, is to be ignored
        return ProxyHeader(1, PROXY, "UNKNOWN")
    if family not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("PROXY v1: unknown protocol %r" % family)
    if len(parts) != 6:
        raise ProxyHeaderError("PROXY v1: expected 6 fields separated by single spaces, "
                               "got %r" % line)
    source = (_v1_address(parts[2], family), _v1_port(parts[4]))
    destination = (_v1_address(parts[3], family), _v1_port(parts[5]))
    return ProxyHeader(1, PROXY, family.decode("ascii"), source, destination)


_V2_FAMILIES = {0x00: "UNSPEC", 0x11: "TCP4", 0x12: "UDP4", 0x21: "TCP6", 0x22: "UDP6",
                0x31: "UNIX", 0x32: "UNIX-DGRAM"}


def parse_v2(command: int, family: int, body: bytes) -> ProxyHeader:
    """A v2 header from its command (0 LOCAL, 1 PROXY), family byte and the ``body``
    after the 16-byte prefix (addresses, then TLVs, which are not read)."""
    name = _V2_FAMILIES.get(family)
    if name is None:
        raise ProxyHeaderError("PROXY v2: unknown address family/protocol 0x%02x" % family)
    if command == 0:  # LOCAL: the balancer speaking for itself; addresses are ignored
        return ProxyHeader(2, LOCAL, name)
    if name == "TCP4":
        if len(body) < 12:
            raise ProxyHeaderError("PROXY v2: TCP4 addresses need 12 bytes, got %d"
                                   % len(body))
        src, dst = body[0:4], body[4:8]
        sport, dport = struct.unpack("!HH", body[8:12])
        return ProxyHeader(2, PROXY, name, (str(ipaddress.IPv4Address(src)), sport),
                           (str(ipaddress.IPv4Address(dst)), dport))
    if name == "TCP6":
        if len(body) < 36:
            raise ProxyHeaderError("PROXY v2: TCP6 addresses need 36 bytes, got %d"
                                   % len(body))
        src, dst = body[0:16], body[16:32]
        sport, dport = struct.unpack("!HH", body[32:36])
        return ProxyHeader(2, PROXY, name, (str(ipaddress.IPv6Address(src)), sport),
                           (str(ipaddress.IPv6Address(dst)), dport))
    # UNSPEC, datagrams, Unix sockets: nothing usable as a client address
    return ProxyHeader(2, PROXY, name)


def _ip(host: str):
    """``host`` as an ``ipaddress`` object (a zone index ``%eth0`` dropped: the header has
    no room for it); ValueError when it is not an IP address."""
    return ipaddress.ip_address(host.partition("%")[0])


def _port(port) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError("not a TCP port: %r" % (port,))
    return port


def _pair(source: Tuple[str, int], destination: Tuple[str, int]):
    """Both addresses as ipaddress objects of one family (an IPv4 one mapped into IPv6
    when the other is IPv6, as HAProxy does) and their ports."""
    src, dst = _ip(source[0]), _ip(destination[0])
    if src.version != dst.version:
        if src.version == 4:
            src = ipaddress.IPv6Address("::ffff:" + str(src))
        else:
            dst = ipaddress.IPv6Address("::ffff:" + str(dst))
    return src, dst, _port(source[1]), _port(destination[1])


def encode_v1(source: Optional[Tuple[str, int]],
              destination: Optional[Tuple[str, int]]) -> bytes:
    """The v1 line a sender writes for a TCP connection from ``source`` (the client) to
    ``destination`` (the address it connected to), each ``(ip, port)``.

    Without both addresses (a Unix-socket client, an unknown family) the line is
    ``PROXY UNKNOWN\\r\\n``: the receiver then keeps the connection's own endpoints.
    Raises ValueError for a host that is not an IP address or a port out of range."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    src, dst, sport, dport = _pair(source, destination)
    return ("PROXY %s %s %s %d %d\r\n" % ("TCP4" if src.version == 4 else "TCP6",
                                          src, dst, sport, dport)).encode("ascii")


def encode_v2(source: Optional[Tuple[str, int]], destination: Optional[Tuple[str, int]],
              local: bool = False, tlvs: bytes = b"") -> bytes:
    """The v2 header for a TCP connection from ``source`` to ``destination``.

    ``local`` (a connection the sender makes for itself: a health check), or a missing
    address (a Unix-socket client, an unknown family), gives the LOCAL command with the
    UNSPEC family and no address, as HAProxy sends it: the receiver keeps the connection's
    own endpoints. ``tlvs``: already encoded TLVs appended. Raises ValueError as
    ``encode_v1``."""
    if local or source is None or destination is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, len(tlvs)) + tlvs
    src, dst, sport, dport = _pair(source, destination)
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(body)) + body


def v1_header(source: Tuple[str, int], destination: Tuple[str, int]) -> bytes:
    """``encode_v1`` (the name the listener tests use)."""
    return encode_v1(source, destination)


def v2_header(source: Optional[Tuple[str, int]], destination: Optional[Tuple[str, int]],
              local: bool = False, tlvs: bytes = b"") -> bytes:
    """``encode_v2`` (the name the listener tests use)."""
    return encode_v2(source, destination, local, tlvs)
