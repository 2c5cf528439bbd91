"""Listeners behind a load balancer that speaks the PROXY protocol (``haproxy:`` prefix).

``haproxy:tcp:8080`` (or ``haproxy:tls:8443``, ``haproxy:ssl:...``) listens like the
description after the prefix, and every connection must open with a PROXY header (v1 or
v2, ``revproxy.server.proxyproto``) sent by a peer in ``[server] proxy_protocol_from``:

* a peer outside those networks is closed at accept, before a byte is read (logged, with a
  bound on the log lines): its header would be a lie nobody checks;
* a connection whose header is missing, malformed, or not complete within
  ``[limits] header_timeout`` is closed with the reason logged;
* otherwise the client address the header gives is the peer from then on: the wrapped
  factory's ``buildProtocol`` gets it (IP lists at accept judge the real client), and the
  connection's ``PeerFacts`` (logs, X-Forwarded-For, rate limits, per-IP connection limits,
  route rules) carry it. A LOCAL header (the balancer's own health check) or one without an
  address keeps the TCP peer.

The stack is TCP -> ``ProxyHeaderReader`` -> (TLS) -> the protocol choice -> HTTP/1.1 or
HTTP/2: the header precedes the TLS handshake, as balancers send it. Once the header is
read, the reader binds the inner protocol's ``dataReceived`` / ``connectionLost`` onto
itself (as ``ProtocolChoice`` does), so the rest of the connection costs no extra call.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from revproxy.protection.cidr import AddressMatcher, parse_entry
from revproxy.protection.logthrottle import LogThrottle
from revproxy.server.proxyproto import HeaderParser, ProxyHeaderError

log = Logger(namespace="revproxy.server")

PREFIX = "haproxy:"


def is_proxied(description: str) -> bool:
    """The listener description asks for a PROXY header on each connection."""
    return description[:len(PREFIX)].lower() == PREFIX


def inner_description(description: str) -> str:
    """The description without its ``haproxy:`` prefix (unchanged without one)."""
    return description[len(PREFIX):] if is_proxied(description) else description


def trusted_matcher(networks) -> AddressMatcher:
    """An ``AddressMatcher`` of ``[server] proxy_protocol_from`` (canonical CIDR texts)."""
    return AddressMatcher(parse_entry(text) for text in networks)


def client_address(header, tcp_peer):
    """The address the connection speaks for: the header's source when it gives one,
    else ``tcp_peer`` (LOCAL, UNKNOWN, UNSPEC...). A source address carries the header's
    destination as ``destination`` (``(ip, port)``: what the client connected to, sent on
    to members with ``send_proxy_protocol``)."""
    if header.source is None:
        return tcp_peer
    host, port = header.source
    kind = IPv6Address if ":" in host else IPv4Address
    address = kind("TCP", host, port)
    address.destination = header.destination
    return address


class ProxyHeaderFactory(Factory):
    """Wraps a listener's factory (``wrapped``: the proxy's, or its TLS wrapper). The
    trusted networks and the header timeout are read from the runtime current at accept,
    so a reload applies to new connections."""

    noisy = False

    def __init__(self, holder, wrapped, description):
        self._holder = holder
        self.wrapped = wrapped
        self.description = description
        self._matchers = {}  # networks tuple -> AddressMatcher (one per config seen)
        self.refusals = LogThrottle(holder.current.clock)

    def trusted(self, host: str) -> bool:
        networks = self._holder.current.config.server.proxy_protocol_from
        matcher = self._matchers.get(networks)
        if matcher is None:
            self._matchers.clear()
            matcher = self._matchers[networks] = trusted_matcher(networks)
        return matcher.matches(host)

    def buildProtocol(self, addr):
        host = getattr(addr, "host", "")
        if not self.trusted(host):
            if self.refusals.allow():
                log.warn("{ip} refused on {desc}: not in [server] proxy_protocol_from (a "
                         "PROXY header is only believed from there){more}", ip=host,
                         desc=self.description, more=_suppressed(self.refusals))
            return None  # the port closes the socket at once
        runtime = self._holder.current
        return ProxyHeaderReader(self, addr, runtime.deadlines,
                                 runtime.clock.seconds() + runtime.config.limits.header_timeout)

    def log_failure(self, host, reason):
        if self.refusals.allow():
            log.warn("{ip} closed on {desc}: {reason}{more}", ip=host, desc=self.description,
                     reason=reason, more=_suppressed(self.refusals))


def _suppressed(throttle) -> str:
    count = throttle.take_suppressed()
    return " (%d similar lines suppressed)" % count if count else ""


class ProxyHeaderReader(Protocol):
    """Reads the PROXY header of one connection, then hands the connection to the protocol
    the wrapped factory builds for the client it names (see the module)."""

    def __init__(self, factory, tcp_peer, deadlines, deadline):
        self._factory = factory
        self._tcp_peer = tcp_peer
        self._parser = HeaderParser()
        self._deadlines = deadlines
        self.deadline = deadline  # absolute; deadlines calls expired() after it
        self.inner = None
        self.header = None

    def connectionMade(self):
        self._deadlines.watch(self)

    def dataReceived(self, data):
        try:
            found = self._parser.feed(data)
        except ProxyHeaderError as e:
            self._fail(str(e))
            return
        if found is not None:
            self._hand_over(*found)

    def connectionLost(self, reason=None):
        self._unwatch()

    def expired(self, now):
        if self.inner is None:
            self._fail("no complete PROXY header within header_timeout")

    def _fail(self, reason):
        self._unwatch()
        self._factory.log_failure(getattr(self._tcp_peer, "host", ""), reason)
        self.transport.abortConnection()

    def _unwatch(self):
        self.deadline = None
        self._deadlines.unwatch(self)

    def _hand_over(self, header, rest):
        self._unwatch()
        self.header = header
        address = client_address(header, self._tcp_peer)
        inner = self._factory.wrapped.buildProtocol(address)
        if inner is None:  # refused by the wrapped factory (IP lists): close at once
            self.transport.abortConnection()
            return
        self.inner = inner
        self.dataReceived = inner.dataReceived
        self.connectionLost = inner.connectionLost
        inner.makeConnection(self.transport)
        if rest:
            inner.dataReceived(rest)
