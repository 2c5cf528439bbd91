"""Unix-domain-socket members: their config spellings, their address and name, their
endpoints (requests, probes), and that no DNS or agent query is made for them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.task import Clock

from revproxy.balancing import probe
from revproxy.config.errors import ConfigError
from revproxy.config.load import apply_overrides, load_config, parse_config
from revproxy.config.values import parse_member_url
from revproxy.upstream import pool as member_pool
from revproxy.upstream.resolve import MemberResolver, member_address


def test_unix_spellings_normalise_to_one_member_url():
    """``unix:/p`` and nginx's ``http://unix:/p:`` (with or without a trailing ``/``) are
    the same member, ``unix:/p``."""
    assert parse_member_url("unix:/run/app.sock") == "unix:/run/app.sock"
    assert parse_member_url("UNIX:/run/app.sock") == "unix:/run/app.sock"
    assert parse_member_url("http://unix:/run/app.sock:") == "unix:/run/app.sock"
    assert parse_member_url("http://unix:/run/app.sock:/") == "unix:/run/app.sock"


@pytest.mark.parametrize("bad", [
    "unix:run/app.sock",            # relative
    "unix:",                        # empty
    "unix:/run/a\nb",               # control character
    "http://unix:/run/app.sock",    # nginx form without its closing ':'
    "http://unix:/run/app.sock:/x",  # a URI after the path: not a member
    "unix:/" + "a" * 107,           # longer than sun_path
])
def test_bad_unix_members_are_refused(bad):
    """A Unix spelling that cannot name a socket fails with the expectation."""
    with pytest.raises(ValueError) as info:
        parse_member_url(bad)
    assert "unix" in str(info.value).lower()


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e,
                                      blacklist_characters="\x7f"), min_size=1, max_size=100))
def test_any_printable_absolute_path_round_trips(rest):
    """Every printable absolute path of a socket address size is accepted as written."""
    url = parse_member_url("unix:/" + rest)
    assert url == "unix:/" + rest
    assert parse_member_url(url) == url


def test_a_pool_and_the_command_line_take_unix_members():
    """``[[pools]] members`` and ``--upstream`` accept Unix members, mixed with TCP ones."""
    config = parse_config({"pools": {"app": {"members": [
        "unix:/run/app.sock", {"url": "http://unix:/run/b.sock:", "weight": 3},
        "http://10.0.0.5:8080"]}}}, "<t>")
    pool = config.pool("app")
    assert pool.members == ("unix:/run/app.sock", "unix:/run/b.sock", "http://10.0.0.5:8080")
    assert pool.weight_of("unix:/run/b.sock") == 3
    cli = apply_overrides(load_config(None), (), ["unix:/tmp/x.sock"], None)
    assert "unix:/tmp/x.sock" in cli.pool("cli").members


def test_a_bad_unix_member_names_file_and_key():
    with pytest.raises(ConfigError) as info:
        parse_config({"pools": {"app": {"members": ["unix:relative.sock"]}}}, "f.toml")
    text = str(info.value)
    assert "f.toml" in text and "members" in text and "absolute" in text


def test_address_and_name_of_a_unix_member():
    """The address is (path, 0); the name is ``unix:/path`` (logs, /status, access log)."""
    assert member_address("unix:/run/app.sock", 2) == ("/run/app.sock", 0, 2, None)
    assert member_pool.member_name("/run/app.sock", 0) == "unix:/run/app.sock"
    assert member_pool.member_name("10.0.0.5", 80) == "10.0.0.5:80"
    assert member_pool.member_name("::1", 80) == "[::1]:80"


def test_endpoints_are_unix_for_paths():
    """Requests and probes connect to the socket file of a Unix member."""
    clock = Clock()
    endpoint = member_pool.client_endpoint(clock, "/run/app.sock", 0, 3)
    assert isinstance(endpoint, UNIXClientEndpoint)
    assert endpoint._path == "/run/app.sock"
    assert isinstance(member_pool.client_endpoint(clock, "10.0.0.5", 80, 3), TCP4ClientEndpoint)
    assert isinstance(probe.client_endpoint(clock, "/run/app.sock", 0, 3), UNIXClientEndpoint)


def test_probe_host_header_of_a_unix_member_is_localhost():
    """As nginx does for ``unix:`` upstreams; a configured probe host still wins."""
    from revproxy.config.model import HealthCheck

    assert b"Host: localhost\r\n" in probe.probe_request("/run/app.sock", 0, HealthCheck())
    assert b"Host: app.test\r\n" in probe.probe_request("/run/app.sock", 0,
                                                        HealthCheck(host="app.test"))


class _Backend:
    name = "app"

    def __init__(self, config):
        self.config = config
        self.addresses = None

    def set_addresses(self, addresses):
        self.addresses = addresses


class _NoDNS:
    def resolveHostName(self, *args, **kwargs):
        raise AssertionError("a Unix member must not be resolved")


def test_unix_members_are_never_resolved():
    """A pool of Unix (and IP) members gets its addresses at once, no DNS involved."""
    config = parse_config({"pools": {"app": {"members": [
        "unix:/run/app.sock", "http://127.0.0.1:81"]}}}, "<t>").pool("app")
    backend = _Backend(config)
    resolver = MemberResolver(Clock(), _NoDNS(), backend)
    assert not resolver.needs_dns
    resolver.start()
    assert backend.addresses == [("/run/app.sock", 0, 1, None), ("127.0.0.1", 81, 1, None)]
