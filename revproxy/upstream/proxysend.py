"""The PROXY protocol towards members (``send_proxy_protocol = "v1" | "v2"`` on a pool).

Every connection to a member of such a pool opens with a PROXY header naming the client it
speaks for: the client's address and port (``PeerFacts``: the one a trusted incoming PROXY
header named, when there was one) and the address that client connected to
(``PeerFacts.local_address()``: the listener's, or that header's destination). Without both
(a Unix-socket listener) the header is ``PROXY UNKNOWN`` (v1) or LOCAL (v2), which tells
the member to keep the connection's own endpoints.

Such a connection belongs to its client: as in HAProxy, it is private. An idle one is
handed only to a request of the same client connection (``client_key``: the same (ip,
port, local ip, local port), or the same ``PeerFacts`` when there is no address);
otherwise a new one is opened. ``PrivateMemberPool`` keeps them so; pools without the
option use ``MemberPool`` untouched.

Over TLS (``https://`` members) the header is written in clear before the handshake
(``tlsconn.tls_client_factory``), as HAProxy does; on Unix-socket members it is sent as
on TCP (gunicorn and uvicorn read it with ``--proxy-protocol``). Health probes of such a
pool send ``probe_preface``: ``PROXY UNKNOWN`` / LOCAL, the balancer's own connection.
"""

from __future__ import annotations

from collections import OrderedDict

from revproxy.netio import QuietFactory
from revproxy.server.proxyproto import encode_v1, encode_v2
from revproxy.upstream.pool import MemberPool
from revproxy.upstream.protocol import UpstreamConnection
from revproxy.upstream.tlsconn import TLSUpstreamConnection, connect_tls

V1, V2 = "v1", "v2"
VERSIONS = (V1, V2)


def header_addresses(peer):
    """``(source, destination)`` for the header a connection sends for ``peer`` (a
    ``PeerFacts``), each ``(ip, port)``; ``(None, None)`` when either is unknown."""
    if peer is None or not peer.client_ip:
        return None, None
    local = peer.local_address()
    if local is None:
        return None, None
    return (peer.client_ip, peer.client_port), local


def client_key(peer):
    """What private connections of ``peer``'s client connection are filed under: its
    (ip, port, local ip, local port) when known, else the ``PeerFacts`` itself (one per
    client connection: a Unix-socket client's connections are its own alone)."""
    source, destination = header_addresses(peer)
    if source is None:
        return peer if peer is not None else object()
    return source + destination


def preface(version: str, peer) -> bytes:
    """The header (bytes) a connection of a ``version`` pool opens with for ``peer``."""
    source, destination = header_addresses(peer)
    encode = encode_v1 if version == V1 else encode_v2
    try:
        return encode(source, destination)
    except ValueError:  # not an IP address after all: say nothing rather than lie
        return encode(None, None)


def probe_preface(version: str) -> bytes:
    """The header of a health probe: the proxy's own connection, no client."""
    return encode_v1(None, None) if version == V1 else encode_v2(None, None, local=True)


class PrefacedConnection(UpstreamConnection):
    """A plain (TCP or Unix) member connection whose first bytes are ``preface``."""

    def __init__(self, clock, parser_limits, owner, preface_bytes, key):
        UpstreamConnection.__init__(self, clock, parser_limits, owner)
        self.preface = preface_bytes
        self.client_key = key

    def connectionMade(self):  # noqa: N802 (Twisted's name)
        UpstreamConnection.connectionMade(self)
        # through the outbox: the request head written next leaves in the same send
        self._owner.outbox.write(self.transport, self.preface)


class PrivateMemberPool(MemberPool):
    """A ``MemberPool`` whose connections each carry one client's PROXY header.

    ``take_private(peer)`` gives an idle connection of that client connection or None
    (``take_idle()`` always None: a private connection is never handed out blind);
    ``connect(peer)`` opens one for it. ``release`` keeps at most ``max_idle_per_member``
    idle connections over all clients, closing the least recently released when full (the
    most recent is the likeliest to be reused by its keep-alive client)."""

    private = True

    def __init__(self, reactor, host, port, pool_config, parser_limits, deadlines, outbox,
                 tls=None, tls_host=None):
        MemberPool.__init__(self, reactor, host, port, pool_config, parser_limits, deadlines,
                            outbox, tls, tls_host)
        self.version = pool_config.send_proxy_protocol
        self.probe_preface = probe_preface(self.version)
        self._by_client = {}  # client key -> [idle connection, ...], most recent last
        self._idle_order = OrderedDict()  # idle connection -> client key, oldest first

    @property
    def idle(self) -> int:
        return len(self._idle_order)

    def take_idle(self):
        return None

    def take_private(self, peer):
        """An idle connected connection opened for ``peer``'s client connection, or None."""
        key = client_key(peer)
        stack = self._by_client.get(key)
        while stack:
            conn = stack.pop()
            del self._idle_order[conn]
            if not stack:
                del self._by_client[key]
            conn.deadline = None
            if conn.connected:
                return conn
        return None

    def _dial(self, endpoint, client):
        key = client_key(client)
        header = preface(self.version, client)
        if self.tls is None:
            conn = PrefacedConnection(self._reactor, self._parser_limits, self, header, key)
            self.open += 1
            return conn, endpoint.connect(QuietFactory(conn))
        conn = TLSUpstreamConnection(self._reactor, self._parser_limits, self)
        conn.client_key = key
        self.open += 1
        return conn, connect_tls(endpoint, self.tls, conn, self._reactor, header)

    def release(self, conn):
        limit = self._config.max_idle_per_member
        if self.closing or not conn.connected or limit == 0:
            conn.close()
            return
        if len(self._idle_order) >= limit:
            self._forget(next(iter(self._idle_order))).close()
        key = conn.client_key
        conn.idle_for(self._config.idle_timeout)
        self._by_client.setdefault(key, []).append(conn)
        self._idle_order[conn] = key

    def _forget(self, conn):
        """Take ``conn`` out of the idle structures; returns it."""
        key = self._idle_order.pop(conn)
        stack = self._by_client[key]
        stack.remove(conn)
        if not stack:
            del self._by_client[key]
        return conn

    def lost(self, conn):
        if conn in self._idle_order:
            self._forget(conn)
        self.open -= 1

    def close_idle(self):
        self.closing = True
        idle = list(self._idle_order)
        self._idle_order.clear()
        self._by_client.clear()
        for conn in idle:
            conn.close()


def member_pool_class(pool_config):
    """``PrivateMemberPool`` for a pool with ``send_proxy_protocol``, else ``MemberPool``."""
    return PrivateMemberPool if getattr(pool_config, "send_proxy_protocol", "") else MemberPool
