"""revproxy.config: TOML loading, validation messages, size/duration parsing, CLI overrides."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from revproxy.config.errors import ConfigError as ErrorsConfigError
from revproxy.config.load import (
    COMMAND_LINE_SOURCE,
    EMBEDDED_SOURCE,
    ConfigError,
    apply_overrides,
    load_config,
    parse_config,
    quick_config,
)
from revproxy.config.model import Buffering, HeaderMatch, Limits, Logging, Route, Server
from revproxy.config.values import (
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = "conf/x.toml"
POOL = '\n[pools.app]\nmembers = ["http://127.0.0.1:9000"]\n'


def parse(text: str, add_pool: bool = True):
    """Parse TOML text as file conf/x.toml, adding pool "app" unless the text has pools."""
    if add_pool and "[pools" not in text:
        text += POOL
    return parse_config(tomllib.loads(text), SOURCE)


def error_of(text: str, add_pool: bool = True) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, add_pool)
    return info.value


# --- shipped configs -------------------------------------------------------------------------


def test_embedded_default_loads_with_demo_pool_and_catch_all_route():
    """load_config(None) reads the packaged default: demo on, pool "demo", one catch-all."""
    config = load_config(None)
    assert config.source == EMBEDDED_SOURCE
    assert config.server.listen == ("tcp:8080:interface=127.0.0.1",)
    assert config.demo.enabled is True and config.demo.ports == (8001, 8002)
    assert [pool.name for pool in config.pools] == ["demo"]
    assert config.pools[0].members == ("http://127.0.0.1:8001", "http://127.0.0.1:8002")
    assert config.routes == (Route(name="default", pool="demo"),)


def test_embedded_default_sections_equal_the_model_defaults():
    """The annotated default file states exactly the model's defaults (they cannot drift)."""
    config = load_config(None)
    assert config.server == Server()
    assert config.limits == Limits()
    assert config.buffering == Buffering()
    assert config.logging == Logging()


def test_conf_revproxy_toml_is_a_relative_symlink_to_the_embedded_default():
    """conf/revproxy.toml points at the packaged file, so the two never differ."""
    link = os.path.join(ROOT, "conf", "revproxy.toml")
    assert os.readlink(link) == "../revproxy/conf/revproxy.toml"
    assert replace(load_config(link), source=EMBEDDED_SOURCE) == load_config(None)


def test_example_config_loads_with_every_routing_feature():
    """conf/example.toml: two pools, wildcard hosts, regex, methods+headers, streaming."""
    config = load_config(os.path.join(ROOT, "conf", "example.toml"))
    assert [pool.name for pool in config.pools] == ["app", "api"]
    routes = {route.name: route for route in config.routes}
    assert "*.example.com" in routes["tenants"].hosts
    assert routes["api-versioned"].path_regex == "^/v[0-9]+/"
    assert routes["api-canary-writes"].methods == ("POST", "PUT", "PATCH", "DELETE")
    assert routes["api-canary-writes"].headers == (HeaderMatch(name="x-canary", value="1"),)
    assert routes["events"].buffering is False
    assert "192.168.10.5/32" in config.server.trusted_proxies
    assert config.demo.enabled is False


# --- files -----------------------------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line(tmp_path):
    """A TOML syntax error is a ConfigError with the path and the line of the mistake."""
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlisten = [\n[pools.a]\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith("%s: line 3, column " % path)
    assert "invalid TOML" in str(info.value)


def test_duplicate_pool_table_is_an_error_with_its_line(tmp_path):
    """Pool names are unique: declaring [pools.a] twice is refused at its second line."""
    path = tmp_path / "dup.toml"
    path.write_text('[pools.a]\nmembers = ["http://a"]\n[pools.a]\nmembers = ["http://b"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith("%s: line 3" % path)


def test_missing_file_is_a_config_error_naming_it(tmp_path):
    """An unreadable file gives a ConfigError with the path and the OS reason."""
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "%s: cannot read the file: No such file or directory" % path


def test_non_utf8_file_is_a_config_error(tmp_path):
    """TOML is UTF-8; other bytes are refused with the offset of the first bad byte."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nproxy_name = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == "%s: byte 26: expected UTF-8 text (TOML files are UTF-8)" % path


# --- validation rules: file, key, value, expectation ------------------------------------------

ROUTE = "[[routes]]\npool = \"app\"\n"
# (rule, toml, key with table path, value as shown, expectation fragment)
BAD = [
    ("unknown top-level key", "serverx = 1", "serverx", "1", "known keys: server, limits"),
    ("unknown server key", "[server]\nlisen = [\"tcp:80\"]", "[server] lisen", '["tcp:80"]',
     "known keys: listen, proxy_name"),
    ("unknown limits key", "[limits]\nmax_body = 1", "[limits] max_body", "1",
     "max_body_size"),
    ("unknown buffering key", "[buffering]\nx = 1", "[buffering] x", "1", "request_memory"),
    ("unknown logging key", "[logging]\nx = 1", "[logging] x", "1", "access_format"),
    ("unknown demo key", "[demo]\nport = 1", "[demo] port", "1", "enabled, ports"),
    ("unknown pool key", "[pools.app]\nmembers = [\"http://a\"]\nname = \"x\"",
     "[pools.app] name", '"x"', "known keys: members, max_idle_per_member"),
    ("unknown route key", ROUTE + "path = \"/\"", "[[routes]] #1 path", '"/"', "path_prefix"),
    ("unknown header-match key", ROUTE + "headers = [{name = \"a\", val = \"b\"}]",
     "[[routes]] #1 headers #1 val", '"b"', "known keys: name, value, regex"),
    ("section not a table", "server = 3", "server", "3", "expected a table [server]"),
    ("listen not a list", "[server]\nlisten = \"tcp:80\"", "[server] listen", '"tcp:80"',
     "expected an array"),
    ("listen empty", "[server]\nlisten = []", "[server] listen", "[]", "non-empty array"),
    ("listen entry empty", "[server]\nlisten = [\"\"]", "[server] listen #1", '""',
     "one of tcp:, tcp6:, unix:, ssl:"),
    ("listen bad type", "[server]\nlisten = [\"tcp:80\", \"udp:53\"]", "[server] listen #2",
     '"udp:53"', "one of tcp:, tcp6:, unix:, ssl:"),
    ("listen bad port", "[server]\nlisten = [\"tcp:http\"]", "[server] listen #1",
     '"tcp:http"', "PORT 0-65535"),
    ("listen port too big", "[server]\nlisten = [\"tcp6:70000\"]", "[server] listen #1",
     '"tcp6:70000"', "PORT 0-65535"),
    ("listen unix no path", "[server]\nlisten = [\"unix:\"]", "[server] listen #1",
     '"unix:"', "socket path"),
    ("proxy_name not a token", "[server]\nproxy_name = \"my proxy\"", "[server] proxy_name",
     '"my proxy"', "expected an HTTP token"),
    ("trusted proxy not a CIDR", "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]",
     "[server] trusted_proxies #1", '"10.0.0.0/33"', "CIDR"),
    ("allow_upgrade h2c", "[server]\nallow_upgrade = [\"websocket\", \"H2C\"]",
     "[server] allow_upgrade #2", '"H2C"', "h2c is never tunnelled"),
    ("bool wrong type", "[server]\nallow_encoded_slash = \"yes\"",
     "[server] allow_encoded_slash", '"yes"', "expected true or false"),
    ("request_id_header not a token", "[server]\nrequest_id_header = \"x id\"",
     "[server] request_id_header", '"x id"', "HTTP token"),
    ("duration word", "[pools.api]\nmembers = [\"http://a\"]\nconnect_timeout = \"abc\"",
     "[pools.api] connect_timeout", '"abc"',
     'expected a duration in seconds (number) or a string like "500ms", "5s", "2m"'),
    ("duration zero", "[limits]\nheader_timeout = 0", "[limits] header_timeout", "0",
     "greater than 0"),
    ("duration negative", "[server]\nshutdown_timeout = \"-5s\"", "[server] shutdown_timeout",
     '"-5s"', "expected a duration"),
    ("duration bool", "[limits]\nidle_timeout = true", "[limits] idle_timeout", "true",
     "expected a duration"),
    ("duration nan", "[limits]\nsend_timeout = nan", "[limits] send_timeout", "nan",
     "expected a duration"),
    ("size unit", "[limits]\nmax_body_size = \"10q\"", "[limits] max_body_size", '"10q"',
     'expected a size in bytes (integer) or a string like "64k", "10m", "1g"'),
    ("size float", "[buffering]\ntotal_disk = 1.5", "[buffering] total_disk", "1.5",
     "expected a size"),
    ("size negative", "[buffering]\nrequest_memory = -1", "[buffering] request_memory", "-1",
     "at least 0 bytes"),
    ("size zero where >= 1", "[limits]\nmax_request_line = 0", "[limits] max_request_line",
     "0", "at least 1 bytes"),
    ("count as string", "[limits]\nmax_header_count = \"100\"", "[limits] max_header_count",
     '"100"', "expected an integer >= 1"),
    ("count zero", "[limits]\nmax_connections = 0", "[limits] max_connections", "0",
     "integer >= 1"),
    ("count negative where 0 ok", "[pools.app]\nmembers = [\"http://a\"]\n"
     "max_idle_per_member = -1", "[pools.app] max_idle_per_member", "-1",
     "integer >= 0"),
    ("temp_dir not a string", "[buffering]\ntemp_dir = 5", "[buffering] temp_dir", "5",
     "expected a string"),
    ("access_format", "[logging]\naccess_format = \"xml\"", "[logging] access_format",
     '"xml"', "expected one of: combined, json"),
    ("error_log empty", "[logging]\nerror_log = \"\"", "[logging] error_log", '""',
     "non-empty string"),
    ("demo port range", "[demo]\nports = [8001, 70000]", "[demo] ports #2", "70000",
     "integer from 1 to 65535"),
    ("member https", "[pools.api]\nmembers = [\"https://a.example\"]", "[pools.api] members #1",
     '"https://a.example"', "https upstreams arrive with the TLS issue"),
    ("member other scheme", "[pools.api]\nmembers = [\"ftp://a\"]", "[pools.api] members #1",
     '"ftp://a"', 'expected an upstream URL "http://host[:port]"'),
    ("member path", "[pools.api]\nmembers = [\"http://a/app\"]", "[pools.api] members #1",
     '"http://a/app"', "no path"),
    ("member port zero", "[pools.api]\nmembers = [\"http://a:0\"]", "[pools.api] members #1",
     '"http://a:0"', "port 1-65535"),
    ("member port big", "[pools.api]\nmembers = [\"http://a:65536\"]",
     "[pools.api] members #1", '"http://a:65536"', "port 1-65535"),
    ("member bad host", "[pools.api]\nmembers = [\"http://a_b c\"]", "[pools.api] members #1",
     '"http://a_b c"', "host name, IPv4 or [IPv6]"),
    ("member bad ipv4", "[pools.api]\nmembers = [\"http://10.0.0.300\"]",
     "[pools.api] members #1", '"http://10.0.0.300"', "host name, IPv4 or [IPv6]"),
    ("member bad ipv6", "[pools.api]\nmembers = [\"http://[::g]:80\"]",
     "[pools.api] members #1", '"http://[::g]:80"', "[IPv6]"),
    ("member user", "[pools.api]\nmembers = [\"http://u@a\"]", "[pools.api] members #1",
     '"http://u@a"', "no path, query or user"),
    ("members empty", "[pools.api]\nmembers = []", "[pools.api] members", "[]",
     "non-empty array"),
    ("pool not a table", "[pools]\napi = 3", "pools.api", "3", "expected a table"),
    ("route pool undefined", "[[routes]]\npool = \"nope\"", "[[routes]] #1 pool", '"nope"',
     "expected the name of a defined pool: app"),
    ("route names unique", ROUTE + "name = \"x\"\n" + ROUTE + "name = \"x\"",
     "[[routes]] #2 name", '"x"', "unique route name; [[routes]] #1 already uses it"),
    ("route name charset", ROUTE + "name = \"a b\"", "[[routes]] #1 name", '"a b"',
     "letters, digits"),
    ("path_regex compiles", ROUTE + "path_regex = \"(\"", "[[routes]] #1 path_regex", '"("',
     "valid regular expression: missing ), unterminated subpattern"),
    ("header regex compiles", ROUTE + "headers = [{name = \"a\", regex = \"[\"}]",
     "[[routes]] #1 headers #1 regex", '"["', "unterminated character set"),
    ("header value and regex", ROUTE + "headers = [{name = \"a\", value = \"1\", regex = \"1\"}]",
     "[[routes]] #1 headers #1 regex", '"1"', "either value or regex, not both"),
    ("header not a table", ROUTE + "headers = [\"x-a\"]", "[[routes]] #1 headers #1", '"x-a"',
     "array of inline tables"),
    ("headers not an array", ROUTE + "headers = {name = \"a\"}", "[[routes]] #1 headers",
     '{name = "a"}', "array of inline tables"),
    ("header name token", ROUTE + "headers = [{name = \"a b\"}]",
     "[[routes]] #1 headers #1 name", '"a b"', "HTTP token"),
    ("host invalid", ROUTE + "hosts = [\"ok.example\", \"bad host\"]", "[[routes]] #1 hosts #2",
     '"bad host"', 'expected a host name ("example.com"), a wildcard ("*.example.com")'),
    ("host with port", ROUTE + "hosts = \"example.com:80\"", "[[routes]] #1 hosts #1",
     '"example.com:80"', "without a port"),
    ("host bare star", ROUTE + "hosts = \"*\"", "[[routes]] #1 hosts #1", '"*"',
     "wildcard"),
    ("method token", ROUTE + "methods = [\"GE T\"]", "[[routes]] #1 methods #1", '"GE T"',
     "HTTP token"),
    ("path_prefix slash", ROUTE + "path_prefix = \"api\"", "[[routes]] #1 path_prefix",
     '"api"', 'starting with "/"'),
    ("host_header", ROUTE + "host_header = \"a b:1\"", "[[routes]] #1 host_header",
     '"a b:1"', '"host[:port]"'),
    ("route buffering bool", ROUTE + "buffering = 0", "[[routes]] #1 buffering", "0",
     "true or false"),
    ("routes as a table", "[routes]\npool = \"app\"", "routes", '{pool = "app"}',
     "array of tables [[routes]]"),
]


@pytest.mark.parametrize("rule,text,key,value,expected", BAD, ids=[case[0] for case in BAD])
def test_validation_error_names_file_key_value_and_expectation(rule, text, key, value, expected):
    """Each rule refuses its bad value with `file: key = value: expectation`."""
    error = error_of(text)
    prefix = "%s: %s = %s: " % (SOURCE, key, value)
    assert str(error).startswith(prefix), str(error)
    assert expected in str(error)[len(prefix):], str(error)
    assert (error.source, error.key) == (SOURCE, key)


def test_missing_pool_members_is_named():
    """A pool without members names the missing key and shows an example."""
    error = error_of("[pools.api]\nmax_idle_per_member = 1")
    assert str(error).startswith("conf/x.toml: [pools.api] members: missing; expected an array")


def test_missing_route_pool_is_named():
    """A route without `pool` names the key and what it must be."""
    error = error_of("[[routes]]\nname = \"x\"")
    assert str(error).startswith("conf/x.toml: [[routes]] #1 pool: missing; expected the name")


def test_no_pools_is_an_error():
    """A config without pools is refused: "at least one pool"."""
    error = error_of("[server]\nproxy_name = \"p\"", add_pool=False)
    assert str(error).startswith("conf/x.toml: [pools]: at least one pool is required")


def test_bad_pool_name_is_an_error():
    """Pool names are bare TOML keys (letters, digits, _ and -) shown quoted when bad."""
    error = error_of('[pools."a b"]\nmembers = ["http://a"]')
    assert str(error) == (
        "conf/x.toml: [pools.\"a b\"]: bad pool name: "
        "expected a name of 1-64 letters, digits, '_' or '-'"
    )


def test_several_pools_without_routes_is_an_error():
    """With two pools nothing says where requests go: at least one route is required."""
    error = error_of(POOL + '[pools.b]\nmembers = ["http://b"]\n', add_pool=False)
    assert "[[routes]]: at least one route is required" in str(error)
    assert "(app, b)" in str(error)


def test_long_values_are_truncated_in_messages():
    """The value shown is cut to 60 characters so a message stays one readable line."""
    error = error_of('[logging]\naccess_format = "%s"' % ("x" * 200))
    shown = str(error).split(" = ", 1)[1].split(": expected")[0]
    assert len(shown) == 60 and shown.endswith("...")


def test_config_error_is_the_one_from_errors_module():
    """load.ConfigError is errors.ConfigError (one class to catch)."""
    assert ConfigError is ErrorsConfigError


# --- accepted values and normalisation -------------------------------------------------------


def test_single_pool_without_routes_gets_a_catch_all_named_default():
    """No [[routes]] and one pool: one route "default" with no conditions to that pool."""
    assert parse("").routes == (Route(name="default", pool="app"),)


def test_unnamed_routes_are_named_route_n():
    """Routes without `name` are called route-1, route-2... by position."""
    config = parse(ROUTE + "path_prefix = \"/a\"\n" + ROUTE)
    assert [route.name for route in config.routes] == ["route-1", "route-2"]


def test_route_values_are_normalised():
    """Hosts lower-cased (a single string allowed), methods upper-cased, header names lower."""
    route = parse(
        ROUTE + 'hosts = "*.Example.COM"\nmethods = ["get", "Post"]\n'
        'headers = [{name = "X-Canary"}, {name = "UA", regex = "bot"}]\n'
    ).routes[0]
    assert route.hosts == ("*.example.com",)
    assert route.methods == ("GET", "POST")
    assert route.headers == (HeaderMatch("x-canary"), HeaderMatch("ua", regex="bot"))


def test_members_are_normalised_to_scheme_host_port():
    """Members become http://host:port: default port 80, trailing "/" dropped, host lower."""
    pool = parse('[pools.app]\nmembers = ["HTTP://Web.Example/", "http://[::1]:81", '
                 '"http://10.1.2.3:8080"]').pools[0]
    assert pool.members == ("http://web.example:80", "http://[::1]:81", "http://10.1.2.3:8080")


def test_trusted_proxies_are_normalised_to_networks():
    """Addresses become /32 or /128 networks; host bits are allowed (strict=False)."""
    config = parse('[server]\ntrusted_proxies = ["10.1.2.3", "10.1.2.3/8", "::1"]')
    assert config.server.trusted_proxies == ("10.1.2.3/32", "10.0.0.0/8", "::1/128")


def test_accepted_endpoint_forms():
    """tcp, tcp6 (escaped colons), unix and ssl descriptions pass the cheap syntax check."""
    listen = ["tcp:80", "tcp:port=8080:interface=127.0.0.1", "tcp6:0:interface=\\:\\:1",
              "unix:/run/revproxy.sock", "ssl:443:privateKey=key.pem"]
    # TOML literal strings ('...') take backslashes as they are.
    config = parse("[server]\nlisten = [%s]" % ", ".join("'%s'" % item for item in listen))
    assert config.server.listen == tuple(listen)


@pytest.mark.parametrize("text,expected", [
    (100, 100), ("100", 100), ("64k", 65536), ("64K", 65536), ("10m", 10485760),
    ("1g", 1073741824), ("1GB", 1073741824), ("2KiB", 2048), (" 3 m ", 3145728), (0, 0),
])
def test_size_forms(text, expected):
    """Sizes: integers are bytes; k/m/g are binary and case-insensitive."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [
    (5, 5.0), (0.25, 0.25), ("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0),
    ("1.5s", 1.5), ("5", 5.0), ("2M", 120.0), ("250 MS", 0.25),
])
def test_duration_forms(text, expected):
    """Durations: numbers are seconds; ms/s/m/h suffixes, case-insensitive."""
    assert parse_duration(text) == expected


@settings(max_examples=150)
@given(st.integers(min_value=0, max_value=2 ** 40), st.sampled_from(["", "k", "m", "g", "K"]))
def test_size_suffix_round_trip(number, unit):
    """"<n><unit>" parses to n times the binary factor of the unit."""
    factor = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[unit.lower()]
    assert parse_size("%d%s" % (number, unit)) == number * factor


@settings(max_examples=150)
@given(st.integers(min_value=0, max_value=2 ** 50))
def test_format_size_round_trip(size):
    """format_size gives a string that parses back to the same byte count."""
    assert parse_size(format_size(size)) == size


@settings(max_examples=150)
@given(st.integers(min_value=0, max_value=10 ** 9), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_suffix_round_trip(number, unit):
    """"<n><unit>" parses to n seconds scaled by the unit (ms divides by 1000)."""
    expected = number / 1000 if unit == "ms" else float(number * {"s": 1, "m": 60, "h": 3600}[unit])
    assert parse_duration("%d%s" % (number, unit)) == expected


@settings(max_examples=150)
@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_format_duration_round_trip(seconds):
    """format_duration gives a string that parses back to exactly the same float."""
    assert parse_duration(format_duration(seconds)) == seconds


# --- command-line overrides ------------------------------------------------------------------

TWO_ROUTES = (
    '[pools.web]\nmembers = ["http://w"]\n'
    '[[routes]]\nname = "first-catch-all"\npool = "web"\n'
    '[[routes]]\nname = "api"\npool = "web"\npath_prefix = "/api/"\n'
    '[[routes]]\nname = "last-catch-all"\npool = "web"\n'
    '[demo]\nenabled = true\n'
)


def test_listen_override_replaces_server_listen():
    """Non-empty --listen replaces server.listen; empty leaves it alone."""
    config = load_config(None)
    assert apply_overrides(config, ["tcp:9000"], []).server.listen == ("tcp:9000",)
    assert apply_overrides(config, [], []) == config


def test_upstreams_repoint_the_last_catch_all_route():
    """--upstream adds pool "cli" and points only the LAST route without conditions at it."""
    config = apply_overrides(parse(TWO_ROUTES), [], ["http://b1:81", "http://b2"])
    assert config.pool("cli").members == ("http://b1:81", "http://b2:80")
    assert [(route.name, route.pool) for route in config.routes] == [
        ("first-catch-all", "web"), ("api", "web"), ("last-catch-all", "cli")]
    assert config.demo.enabled is False


def test_path_prefix_slash_counts_as_catch_all():
    """A route whose only condition is path_prefix "/" is the default route."""
    text = '[[routes]]\npool = "app"\npath_prefix = "/"\n'
    config = apply_overrides(parse(text), [], ["http://b"])
    assert [(route.name, route.pool) for route in config.routes] == [("route-1", "cli")]


def test_cli_route_is_appended_when_there_is_no_catch_all():
    """Without a condition-less route, a catch-all "cli" route is appended at the end."""
    text = ROUTE + 'hosts = "a.example"\n' + ROUTE + 'headers = [{name = "x"}]\n'
    config = apply_overrides(parse(text), [], ["http://b"])
    assert [route.pool for route in config.routes] == ["app", "app", "cli"]
    assert config.routes[-1] == Route(name="cli", pool="cli")


def test_demo_untouched_without_upstreams():
    """Only --upstream turns the demo off; --listen alone keeps the embedded demo running."""
    assert apply_overrides(load_config(None), ["tcp:9000"], []).demo.enabled is True


def test_bad_upstream_is_a_command_line_error():
    """An invalid --upstream names "<command line>", the option, the value and why."""
    with pytest.raises(ConfigError) as info:
        apply_overrides(load_config(None), [], ["https://secure"])
    assert str(info.value).startswith(
        '<command line>: --upstream = "https://secure": https upstreams arrive with the TLS issue')


def test_bad_listen_is_a_command_line_error():
    """An invalid --listen names "<command line>", the option, the value and the prefixes."""
    with pytest.raises(ConfigError) as info:
        apply_overrides(load_config(None), ["8080"], [])
    assert str(info.value).startswith('<command line>: --listen = "8080": expected a Twisted')


def test_existing_cli_pool_conflicts_with_upstream():
    """A config that already has a pool "cli" cannot take --upstream (no silent override)."""
    config = parse('[pools.cli]\nmembers = ["http://a"]')
    with pytest.raises(ConfigError) as info:
        apply_overrides(config, [], ["http://b"])
    assert info.value.source == COMMAND_LINE_SOURCE and 'pool named "cli"' in str(info.value)


def test_quick_config_is_embedded_defaults_with_overrides_and_no_demo():
    """quick_config: embedded defaults, listen replaced, only pool "cli", demo off."""
    config = quick_config(["tcp:9000"], ["http://127.0.0.1:5000"])
    embedded = load_config(None)
    assert config.source == COMMAND_LINE_SOURCE
    assert config.server.listen == ("tcp:9000",)
    assert config.limits == embedded.limits and config.buffering == embedded.buffering
    assert [pool.name for pool in config.pools] == ["cli"]
    assert config.routes == (Route(name="default", pool="cli"),)
    assert config.demo.enabled is False
