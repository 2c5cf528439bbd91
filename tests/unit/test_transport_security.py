"""Per-route HTTPS redirect and HSTS: the config values, the Location built, and the hooks
on the fake reactor (308 before any backend, HSTS only over HTTPS)."""

from __future__ import annotations

import pytest

from revproxy.config.load import ConfigError, parse_config
from revproxy.config.transport import parse_hsts
from revproxy.pipeline.transport import redirect_location
from revproxy.server.protocol import ProxyFactory
from tests.unit.world import Transport, World, config_dict


@pytest.mark.parametrize("host, target, port, expected", [
    (b"site.test", b"/a?b=1", 0, b"https://site.test/a?b=1"),
    (b"site.test:8080", b"/", 0, b"https://site.test/"),
    (b"site.test:8080", b"/x", 8443, b"https://site.test:8443/x"),
    (b"site.test", b"/x", 443, b"https://site.test/x"),
    (b"[::1]:8080", b"/x", 8443, b"https://[::1]:8443/x"),
    (b"site.test", b"http://site.test/p?q", 0, b"https://site.test/p?q"),
    (b"site.test", b"http://site.test?q", 0, b"https://site.test/?q"),
    (b"site.test", b"http://site.test", 0, b"https://site.test/"),
    (b"site.test", b"*", 0, b"https://site.test/"),
])
def test_redirect_location(host, target, port, expected):
    """The Location keeps the host (not the plain listener's port) and the target."""
    assert redirect_location(host, target, port) == expected


def test_hsts_values():
    """hsts is a header value with max-age, or a table turned into one."""
    value = "max-age=63072000; includeSubDomains"
    assert parse_hsts(value) == value
    assert parse_hsts({"max_age": "730d", "include_subdomains": True, "preload": True}) == (
        "max-age=63072000; includeSubDomains; preload")
    assert parse_hsts({"max_age": 300}) == "max-age=300"
    assert parse_hsts("") == ""


@pytest.mark.parametrize("value", [
    "includeSubDomains", "max-age=abc", "max-age=1; max-age=2", "max-age=1\r\nx: y",
    {"include_subdomains": True}, {"max_age": 1, "preload": "yes"}, {"max_age": 1, "other": 1}, 5,
])
def test_bad_hsts_is_a_config_error_naming_the_route(value):
    data = config_dict(routes=[{"pool": "main", "hsts": value}])
    data["buffering"] = {"temp_dir": "/tmp/x"}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "conf/x.toml")
    assert "[[routes]] #1 hsts" in str(info.value)
    assert "max-age required" in str(info.value)


def test_https_port_range_is_checked():
    data = config_dict(routes=[{"pool": "main", "https_redirect": True, "https_port": 70000}])
    with pytest.raises(ConfigError) as info:
        parse_config(data, "conf/x.toml")
    assert "[[routes]] #1 https_port" in str(info.value)


def world(testcase_tmp, routes):
    class Case:
        def mktemp(self):
            return str(testcase_tmp)

    w = World(Case(), config_dict(routes=routes))
    return w


def request(w, scheme, target=b"/a?b=1"):
    client = ProxyFactory(w.service._holder, scheme, "x").buildProtocol(None)
    transport = Transport()
    client.makeConnection(transport)
    client.dataReceived(b"GET " + target + b" HTTP/1.1\r\nHost: site.test:8080\r\n\r\n")
    return client, transport


def test_redirect_on_plain_http_before_any_backend(tmp_path):
    """https_redirect: a plain-HTTP request is answered 308 with the https Location and no
    backend connection is attempted; the same request over HTTPS is forwarded."""
    w = world(tmp_path / "t", [{"pool": "main", "https_redirect": True}])
    _, transport = request(w, "http")
    response = transport.value()
    assert response.startswith(b"HTTP/1.1 308 ")
    assert b"\r\nlocation: https://site.test/a?b=1\r\n" in response.lower()
    assert w.pending_connects == 0
    request(w, "https")
    assert w.pending_connects == 1


def test_hsts_only_over_https(tmp_path):
    """hsts: set on a proxied response over HTTPS (replacing the backend's), never over
    plain HTTP."""
    w = world(tmp_path / "t", [{"pool": "main", "hsts": "max-age=600"}])
    backend = None
    for scheme, expected in (("https", [b"max-age=600"]), ("http", [])):
        _, transport = request(w, scheme)
        if backend is None:
            backend, _ = w.accept_backend()  # pooled: the second request reuses it
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\n"
                             b"Content-Length: 2\r\n\r\nok")
        w.reactor.advance(0)
        lines = transport.value().lower().split(b"\r\n")
        values = [line.split(b": ", 1)[1] for line in lines
                  if line.startswith(b"strict-transport-security:")]
        assert values == (expected or [b"max-age=1"]), (scheme, transport.value())
