"""The PROXY-header reader in front of a listener's factory: trust at accept, the header's
client handed to the wrapped factory and to the connection's peer, the header deadline."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from revproxy.server.proxylisten import (
    ProxyHeaderFactory, client_address, inner_description, is_proxied,
)
from revproxy.server.proxyproto import ProxyHeader, v1_header, v2_header
from revproxy.timers import Deadlines


class _Limits:
    header_timeout = 5.0


class _Server:
    def __init__(self, trusted):
        self.proxy_protocol_from = tuple(trusted)


class _Config:
    def __init__(self, trusted):
        self.server = _Server(trusted)
        self.limits = _Limits()


class _Runtime:
    def __init__(self, clock, trusted):
        self.clock = clock
        self.deadlines = Deadlines(clock)
        self.config = _Config(trusted)


class _Holder:
    def __init__(self, runtime):
        self.current = runtime


class _Inner(Protocol):
    def __init__(self, addr):
        self.addr = addr
        self.received = b""

    def dataReceived(self, data):
        self.received += data


class _Wrapped(Factory):
    def __init__(self, refuse=()):
        self.built = []
        self._refuse = refuse

    def buildProtocol(self, addr):
        if addr.host in self._refuse:
            return None
        proto = _Inner(addr)
        self.built.append(proto)
        return proto


def _setup(trusted=("10.0.0.0/8",), refuse=()):
    clock = Clock()
    holder = _Holder(_Runtime(clock, trusted))
    wrapped = _Wrapped(refuse)
    return clock, holder, wrapped, ProxyHeaderFactory(holder, wrapped, "haproxy:tcp:80")


def _connect(factory, peer="10.1.2.3"):
    proto = factory.buildProtocol(IPv4Address("TCP", peer, 5555))
    if proto is None:
        return None, None
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def test_prefix_helpers():
    assert is_proxied("haproxy:tcp:80") and is_proxied("HAPROXY:tls:443")
    assert not is_proxied("tcp:80")
    assert inner_description("haproxy:ssl:443:privateKey=k") == "ssl:443:privateKey=k"
    assert inner_description("tcp:80") == "tcp:80"


def test_untrusted_peer_gets_no_protocol():
    """Outside proxy_protocol_from: None, so the port closes the socket unread."""
    _, _, wrapped, factory = _setup()
    assert _connect(factory, "192.0.2.1") == (None, None)
    assert wrapped.built == []


def test_trust_follows_the_current_runtime():
    """A reload that changes proxy_protocol_from applies to the next accept."""
    clock, holder, wrapped, factory = _setup()
    assert _connect(factory, "192.0.2.1")[0] is None
    holder.current = _Runtime(clock, ("192.0.2.0/24",))
    assert _connect(factory, "192.0.2.1")[0] is not None
    assert _connect(factory, "10.1.2.3")[0] is None


def test_header_client_reaches_the_wrapped_factory_with_the_rest():
    """Split across reads; the client address goes to buildProtocol; bytes after the
    header reach the inner protocol, and later reads go straight to it."""
    _, _, wrapped, factory = _setup()
    proto, transport = _connect(factory)
    data = v1_header(("203.0.113.9", 1234), ("10.0.0.1", 80)) + b"GET"
    proto.dataReceived(data[:10])
    assert wrapped.built == []
    proto.dataReceived(data[10:])
    [inner] = wrapped.built
    assert (inner.addr.host, inner.addr.port) == ("203.0.113.9", 1234)
    assert inner.transport is transport
    assert inner.received == b"GET"
    proto.dataReceived(b" / HTTP/1.1")
    assert inner.received == b"GET / HTTP/1.1"


def test_local_header_keeps_the_tcp_peer():
    _, _, wrapped, factory = _setup()
    proto, _ = _connect(factory)
    proto.dataReceived(v2_header(None, None, local=True))
    assert wrapped.built[0].addr.host == "10.1.2.3"


def test_malformed_header_aborts():
    _, _, wrapped, factory = _setup()
    proto, transport = _connect(factory)
    proto.dataReceived(b"GET / HTTP/1.1\r\n")
    assert transport.disconnecting or transport.disconnected
    assert wrapped.built == []


def test_refused_by_the_wrapped_factory_aborts():
    """The wrapped factory (IP lists) refuses the header's client: closed."""
    _, _, wrapped, factory = _setup(refuse=("203.0.113.9",))
    proto, transport = _connect(factory)
    proto.dataReceived(v1_header(("203.0.113.9", 1), ("10.0.0.1", 80)))
    assert transport.disconnecting or transport.disconnected


def test_header_deadline():
    """No complete header within header_timeout: aborted; a complete one stops the clock."""
    clock, _, wrapped, factory = _setup()
    slow, slow_transport = _connect(factory)
    quick, quick_transport = _connect(factory)
    slow.dataReceived(b"PROXY TCP4 ")
    quick.dataReceived(v1_header(("203.0.113.9", 1), ("10.0.0.1", 80)))
    clock.advance(4.9)
    assert not slow_transport.disconnecting
    clock.advance(0.5)
    assert slow_transport.disconnecting or slow_transport.disconnected
    assert not (quick_transport.disconnecting or quick_transport.disconnected)


def test_client_address_families():
    peer = IPv4Address("TCP", "10.0.0.1", 1)
    assert client_address(ProxyHeader(2, "local", "UNSPEC"), peer) is peer
    six = client_address(ProxyHeader(1, "proxy", "TCP6", ("2001:db8::1", 7), ("::1", 80)), peer)
    assert (type(six).__name__, six.host, six.port) == ("IPv6Address", "2001:db8::1", 7)


def test_config_needs_trusted_networks_for_haproxy_listeners():
    """A haproxy: listener without proxy_protocol_from fails at load (file, key, why), on
    the command line too; with it, the listener and the CIDRs are kept."""
    import pytest

    from revproxy.config.errors import ConfigError
    from revproxy.config.load import apply_overrides, load_config, parse_config

    with pytest.raises(ConfigError) as info:
        parse_config({"server": {"listen": ["haproxy:tcp:8080"]}}, "f.toml")
    assert "f.toml" in str(info.value) and "proxy_protocol_from" in str(info.value)
    with pytest.raises(ConfigError) as info:
        apply_overrides(load_config(None), ["haproxy:tcp:8080"], (), None)
    assert "--listen" in str(info.value)
    pools = {"app": {"members": ["http://10.0.0.5:80"]}}
    config = parse_config({"server": {"listen": ["haproxy:tcp:8080", "haproxy:tls:8443"],
                                      "proxy_protocol_from": ["10.0.0.7", "10.1.0.0/16"]},
                           "pools": pools}, "f.toml")
    assert config.server.proxy_protocol_from == ("10.0.0.7/32", "10.1.0.0/16")
    for bad in ("haproxy:unix:/run/x.sock", "haproxy:haproxy:tcp:80", "haproxy:tcp:x"):
        with pytest.raises(ConfigError) as info:
            parse_config({"server": {"listen": [bad], "proxy_protocol_from": ["10.0.0.0/8"]},
                          "pools": pools}, "f.toml")
        assert "listen" in str(info.value)


def test_tls_descriptions_see_through_the_prefix():
    """haproxy:ssl:/tls: are TLS listeners listening on the plain tcp: below the header."""
    from revproxy.server.service import listener_scheme
    from revproxy.tls.endpoints import is_tls_description, parse_tls_listener

    assert is_tls_description("haproxy:tls:8443")
    assert listener_scheme("haproxy:ssl:443:privateKey=k.pem") == "https"
    assert listener_scheme("haproxy:tcp:80") == "http"
    assert parse_tls_listener("haproxy:tls:8443:interface=127.0.0.1").tcp == \
        "tcp:8443:interface=127.0.0.1"
