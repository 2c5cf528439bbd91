"""Persistent connections to one backend member: reuse idle ones, open new ones, time them out."""

from __future__ import annotations

import hashlib
import socket

from twisted.internet import error as neterror
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint

from zope.interface import implementer

from revproxy.interfaces import IMember
from revproxy.netio import QuietFactory
from revproxy.upstream import errors
from revproxy.upstream.protocol import UpstreamConnection
from revproxy.upstream.tlsconn import TLSUpstreamConnection, connect_tls

_TIMEOUT_ERRORS = (neterror.TimeoutError, neterror.TCPTimedOutError)


def member_name(host: str, port: int) -> str:
    """How a member is named in logs, ``/status`` and the access log: ``10.0.0.5:8080``,
    ``[::1]:8080``, or ``unix:/run/app.sock`` for a Unix-domain socket (host ``/...``)."""
    if host.startswith("/"):
        return "unix:" + host
    return ("[%s]:%d" if _is_ipv6(host) else "%s:%d") % (host, port)


def client_endpoint(reactor, host: str, port: int, timeout: float):
    """The client endpoint of a member: a Unix-domain socket when ``host`` is a path
    (``/...``), else TCP (IPv6 when ``host`` is an IPv6 address)."""
    if host.startswith("/"):
        return UNIXClientEndpoint(reactor, host, timeout=timeout)
    kind = TCP6ClientEndpoint if _is_ipv6(host) else TCP4ClientEndpoint
    return kind(reactor, host, port, timeout=timeout)


def _is_ipv6(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):
        return False
    return True


@implementer(IMember)
class MemberPool:
    """Connections to one member (``host``: an IP address, ``port``; over TLS when ``tls``;
    or ``host`` the path of a Unix-domain socket, ``port`` 0).

    It is also the member as balancing policies see it (``IMember``): ``weight``,
    ``in_flight`` and ``ewma`` come from ``state``, the ``MemberState`` its pool gives it.

    ``take_idle()`` hands out the most recently used idle connection (warmest first);
    ``connect()`` opens a new one; ``release()`` takes a connection back after a complete
    exchange, keeping at most ``max_idle`` of them, each closed after ``idle_timeout``.
    """

    def __init__(self, reactor, host, port, pool_config, parser_limits, deadlines, outbox,
                 tls=None, tls_host=None):
        self.host = host
        self.port = port
        # tls: the IOpenSSLClientConnectionCreator of an https:// member (None: plain TCP);
        # tls_host: the host its URL names (part of its identity, with the scheme).
        self.tls = tls
        self.tls_host = tls_host
        self.unix = host.startswith("/")
        self.name = member_name(host, port)
        if tls is not None:
            self.name = "https://" + self.name
            if tls.server_name != host:
                self.name += " (%s)" % tls.server_name
        # Sticky-session cookie value: names the member without revealing its address.
        self.token = hashlib.blake2b(self.name.encode("utf-8"), digest_size=6).hexdigest().encode()
        self._reactor = reactor
        self.deadlines = deadlines
        self.outbox = outbox
        self._config = pool_config
        self._parser_limits = parser_limits
        self._idle = []
        self.open = 0  # connections open or opening, idle ones included
        self.closing = False
        self.connect_errors = 0  # connects that failed or timed out, ever (metrics)

    state = None  # revproxy.balancing.member.MemberState, set by the BalancedPool

    @property
    def weight(self) -> float:
        return self.state.weight(self._reactor.seconds())

    @property
    def in_flight(self) -> int:
        return self.state.stats.in_flight

    @property
    def ewma(self) -> float:
        return self.state.stats.ewma

    @property
    def idle(self) -> int:
        return len(self._idle)

    private = False  # True for PrivateMemberPool (send_proxy_protocol): see upstream/proxysend

    def take_idle(self):
        """An idle connected connection, or None."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.deadline = None
            if conn.connected:
                return conn
        return None

    def connect(self, client=None):
        """A Deferred firing with a new connection, or failing with an ``UpstreamError``.
        ``client``: the ``PeerFacts`` of the request's client connection (only a
        ``PrivateMemberPool`` uses it)."""
        config = self._config
        endpoint = client_endpoint(self._reactor, self.host, self.port,
                                   max(1, int(round(config.connect_timeout))))
        conn, d = self._dial(endpoint, client)
        timer = self._reactor.callLater(config.connect_timeout, d.cancel)

        def connected(result):
            if timer.active():
                timer.cancel()
            return result

        def failed(failure):
            self.connect_errors += 1
            if conn.transport is None:  # else connectionLost has counted it (TLS handshake)
                self.open -= 1
            if timer.active():
                timer.cancel()
                if failure.check(*_TIMEOUT_ERRORS):
                    raise errors.UpstreamError(errors.CONNECT_TIMEOUT, "connect timed out")
                reason = failure.getErrorMessage() or failure.type.__name__
                raise errors.UpstreamError(errors.CONNECT_FAILED, reason)
            raise errors.UpstreamError(
                errors.CONNECT_TIMEOUT, "connect timed out after %gs" % config.connect_timeout
            )

        d.addCallbacks(connected, failed)
        return d

    def _dial(self, endpoint, client):
        """(a new connection, the Deferred of its connect attempt), counted in ``open``."""
        if self.tls is None:
            conn = UpstreamConnection(self._reactor, self._parser_limits, self)
            self.open += 1
            return conn, endpoint.connect(QuietFactory(conn))
        conn = TLSUpstreamConnection(self._reactor, self._parser_limits, self)
        self.open += 1
        return conn, connect_tls(endpoint, self.tls, conn, self._reactor)

    def release(self, conn):
        """Take ``conn`` back after a complete exchange."""
        if self.closing or not conn.connected or len(self._idle) >= self._config.max_idle_per_member:
            conn.close()
            return
        conn.idle_for(self._config.idle_timeout)
        self._idle.append(conn)

    def lost(self, conn):
        """``conn`` has closed (called once, from its ``connectionLost``)."""
        if conn in self._idle:
            self._idle.remove(conn)
        self.open -= 1

    def close_idle(self):
        """Close every idle connection (shutdown, member removed)."""
        self.closing = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
