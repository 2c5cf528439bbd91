"""Upstream TLS without sockets: member URLs and pool keys, the client policy and its file
errors, member identity, and a TLS connect attempt on a fake reactor."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from revproxy.balancing.pool import BalancedPool
from revproxy.balancing.roundrobin import RoundRobinBalancer
from revproxy.config.load import ConfigError, parse_config
from revproxy.config.model import Pool
from revproxy.config.values import parse_member_url
from revproxy.http1.parser import Limits
from revproxy.netio import Outbox
from revproxy.tls.compose import client_tls as _client_tls
from revproxy.timers import Deadlines
from revproxy.upstream import errors
from revproxy.upstream.pool import MemberPool
from revproxy.upstream.tls import client_policy
from tests.tlscerts import ThrowawayCA
from tests.unit.world import Transport


@pytest.fixture
def ca(tmp_path):
    return ThrowawayCA(str(tmp_path))


def pool_data(**keys):
    pool = {"members": ["https://10.0.0.1"]}
    pool.update(keys)
    return {"pools": {"main": pool}, "buffering": {"temp_dir": "/tmp/x"}}


def config_error(**keys):
    with pytest.raises(ConfigError) as info:
        config = parse_config(pool_data(**keys), "conf/x.toml")
        _client_tls(config, config.pools[0])
    return str(info.value)


# -- member URLs and keys -------------------------------------------------------------------
def test_https_member_url_defaults_to_port_443_and_keeps_its_scheme():
    """https://host is normalised to port 443; http:// and https:// on one port differ."""
    assert parse_member_url("HTTPS://Backend.Test/") == "https://backend.test:443"
    assert parse_member_url("https://[::1]:8443") == "https://[::1]:8443"
    pool = parse_config({"pools": {"p": {"members": ["http://a:443", "https://a"]}}}, "x").pools[0]
    assert pool.members == ("http://a:443", "https://a:443")


def test_tls_keys_default_to_verified_tls_1_2():
    """Without tls_* keys a pool verifies with the system store, TLS 1.2 minimum."""
    pool = parse_config(pool_data(), "x").pools[0]
    assert (pool.tls_verify, pool.tls_ca, pool.tls_server_name, pool.tls_min_version) == (
        True, "", "", "1.2")


@pytest.mark.parametrize("keys, where, expected", [
    ({"tls_min_version": "1.1"}, "tls_min_version", 'expected one of: 1.2, 1.3'),
    ({"tls_server_name": "*.a.test"}, "tls_server_name", "no wildcard"),
    ({"tls_verify": "no"}, "tls_verify", "expected true or false"),
    ({"tls_client_cert": "c.pem"}, "tls_client_key", "missing; expected the PEM private key"),
    ({"tls_client_key": "k.pem"}, "tls_client_cert", "missing; expected the PEM certificate"),
])
def test_bad_tls_keys_name_the_pool_key(keys, where, expected):
    """Each bad tls_* value is refused naming [pools.main] and the key."""
    message = config_error(**keys)
    assert "conf/x.toml: [pools.main] %s" % where in message
    assert expected in message


def test_missing_ca_file_is_a_config_error():
    message = config_error(tls_ca="/nonexistent/ca.pem")
    assert message.startswith('conf/x.toml: [pools.main] tls_ca = "/nonexistent/ca.pem": '
                              "cannot read the file")


def test_ca_file_without_certificates_is_a_config_error(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate\n")
    assert "expected PEM certificates" in config_error(tls_ca=str(path))


def test_client_key_of_another_certificate_is_a_config_error(ca):
    cert = ca.issue("one", client=True)[0]
    other_key = ca.issue("two", client=True)[1]
    message = config_error(tls_client_cert=cert, tls_client_key=other_key)
    assert "[pools.main] tls_client_key" in message
    assert "expected the private key of %s" % cert in message


def test_encrypted_client_key_is_a_config_error(ca, tmp_path):
    from cryptography.hazmat.primitives import serialization

    cert, _, _, key = ca.issue("one", client=True)
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    assert "needs a passphrase" in config_error(tls_client_cert=cert, tls_client_key=str(locked))


def test_pool_without_https_members_has_no_policy():
    assert client_policy(Pool(name="p", members=("http://a:80",))) is None


def test_creators_by_server_name(ca):
    """One creator per server name; tls_server_name overrides every member's host."""
    policy = client_policy(Pool(name="p", members=("https://a:443",), tls_ca=ca.cert_path))
    assert policy.creator_for("a.test") is policy.creator_for("a.test")
    assert policy.creator_for("a.test").server_name == "a.test"
    named = client_policy(Pool(name="p", members=("https://a:443",), tls_ca=ca.cert_path,
                               tls_server_name="api.test"))
    assert named.creator_for("10.0.0.1").server_name == "api.test"


# -- members --------------------------------------------------------------------------------
def balanced_pool(reactor, pool_config):
    return BalancedPool(reactor, pool_config, Limits(), Deadlines(reactor), Outbox(reactor, False),
                        RoundRobinBalancer(), client_policy(pool_config))


def test_http_and_https_on_one_address_are_two_members():
    """Member identity includes the scheme (and the TLS host): names tell them apart."""
    reactor = MemoryReactorClock()
    pool = balanced_pool(reactor, Pool(name="p", members=("http://10.0.0.1:443",
                                                           "https://10.0.0.1:443")))
    pool.set_addresses([("10.0.0.1", 443, 1, None), ("10.0.0.1", 443, 1, "10.0.0.1")])
    assert [m.name for m in pool.members] == ["10.0.0.1:443", "https://10.0.0.1:443"]
    assert pool.members[0].tls is None and pool.members[1].tls is not None
    kept = list(pool.members)
    pool.set_addresses([("10.0.0.1", 443, 1, None), ("10.0.0.1", 443, 1, "10.0.0.1")])
    assert pool.members == kept


def tls_member(reactor, **keys):
    config = Pool(name="p", members=("https://10.0.0.1:443",), **keys)
    return MemberPool(reactor, "10.0.0.1", 443, config, Limits(), Deadlines(reactor),
                      Outbox(reactor, False), client_policy(config).creator_for("10.0.0.1"),
                      "10.0.0.1")


def accept(reactor, index=0):
    host, port, factory, _, _ = reactor.tcpClients[index]
    proto = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = Transport((host, port))
    proto.makeConnection(transport)
    return proto, transport


def outcome(d):
    results = []
    d.addBoth(results.append)
    return results


def test_tls_connect_waits_for_the_handshake_and_a_close_fails_it_once():
    """The connect Deferred does not fire at TCP connect (the ClientHello is sent); a close
    during the handshake fails it as connect-failed with a TLS reason, and the member's open
    count goes back to 0, not below."""
    reactor = MemoryReactorClock()
    member = tls_member(reactor)
    result = outcome(member.connect())
    proto, transport = accept(reactor)
    assert transport.value()[:1] == b"\x16"  # a TLS handshake record: the ClientHello
    assert result == [] and member.open == 1
    proto.connectionLost(Failure(ConnectionDone()))
    [failure] = result
    assert failure.value.kind == errors.CONNECT_FAILED
    assert "TLS: the member closed the connection during the handshake" in failure.value.reason
    assert member.open == 0


def test_tls_handshake_past_connect_timeout_is_a_connect_timeout():
    """A handshake still running at connect_timeout: connect-timeout, the connection
    aborted, counted once when it closes."""
    reactor = MemoryReactorClock()
    member = tls_member(reactor, connect_timeout=2.0)
    result = outcome(member.connect())
    proto, transport = accept(reactor)
    reactor.advance(2.0)
    [failure] = result
    assert failure.value.kind == errors.CONNECT_TIMEOUT
    assert transport.aborted
    proto.connectionLost(Failure(ConnectionDone()))
    assert member.open == 0


# -- start-up checks and reload -------------------------------------------------------------
def test_check_option_names_a_bad_ca_file(tmp_path):
    """twistd revproxy --check reads the pools' TLS files: a missing CA is one line naming
    the config file, the pool key and the path, exit non-zero, no traceback."""
    from revproxy.tap import Options

    config = tmp_path / "x.toml"
    config.write_text('[pools.api]\nmembers = ["https://10.0.0.1"]\ntls_ca = "/nonexistent.pem"\n')
    with pytest.raises(SystemExit) as info:
        Options().parseOptions(["--config", str(config), "--check"])
    assert str(info.value) == (
        'revproxy: bad configuration: %s: [pools.api] tls_ca = "/nonexistent.pem": cannot read '
        "the file: No such file or directory" % config)


def test_reload_turning_a_member_https_rebuilds_the_pool(tmp_path):
    """A reload that only changes members, but from http:// to https://, rebuilds the pool
    with a TLS policy (a kept pool would have none and connect in plain TCP)."""
    from tests.unit.world import World, config_dict

    class Case:
        def mktemp(self):
            return str(tmp_path / "t")

    world = World(Case(), config_dict(members=("http://10.0.0.1:443",)))
    world.start()
    before = world.service.runtime.backends["main"]
    assert before.tls is None
    assert world.reload(config_dict(members=("https://10.0.0.1:443",)))
    after = world.service.runtime.backends["main"]
    assert after is not before and after.tls is not None
    assert [m.name for m in after.members] == ["https://10.0.0.1:443"]


# -- the [tls] provider's client_policy ------------------------------------------------------
class _Policy:
    verify = True

    def creator_for(self, host):
        return ("creator", host)


class _Provider:
    def __init__(self, policy):
        self.policy = policy
        self.asked = []

    def client_policy(self, pool):
        self.asked.append(pool.name)
        return self.policy


def test_a_provider_policy_is_used_for_the_pool():
    """A [tls] provider that answers client_policy(pool) decides the pool's TLS."""
    config = parse_config(pool_data(), "conf/x.toml")
    provider = _Provider(_Policy())
    assert _client_tls(config, config.pools[0], provider) is provider.policy
    assert provider.asked == [config.pools[0].name]


def test_a_provider_answering_none_leaves_the_pool_its_own_keys(ca):
    """None from the provider: the pool's tls_* keys, as without a provider."""
    config = parse_config(pool_data(tls_ca=ca.cert_path), "conf/x.toml")
    policy = _client_tls(config, config.pools[0], _Provider(None))
    assert policy is not None and policy.verify
    assert policy.creator_for("backend.test") is not None


def test_the_built_in_provider_gives_the_pool_its_own_policy(ca):
    """PemTLSProvider.client_policy: the pool's keys for https:// members, None for plain."""
    from revproxy.tls.contexts import TLSOptions
    from revproxy.tls.pem import load_bundle
    from revproxy.tls.provider import PemTLSProvider

    cert_path, key_path, _, _ = ca.issue("site", names=("site.test",))
    provider = PemTLSProvider([load_bundle(cert_path, key_path)], TLSOptions())
    config = parse_config(pool_data(tls_ca=ca.cert_path), "conf/x.toml")
    assert provider.client_policy(config.pools[0]).verify is True
    plain = parse_config({"pools": {"p": {"members": ["http://127.0.0.1:1"]}}}, "x").pools[0]
    assert provider.client_policy(plain) is None
