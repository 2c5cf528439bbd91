"""revproxy.config: TOML loading, validation messages, size/duration parsing, CLI overrides."""

from __future__ import annotations

import os
import re
from dataclasses import fields, replace
from operator import itemgetter

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
    check_balancers,
    load_config,
    parse_config,
    quick_config,
)
from revproxy.config.model import (
    Admin,
    Buffering,
    HealthCheck,
    Limits,
    Logging,
    Outlier,
    Pool,
    Server,
)
from revproxy.config.routemodel import HeaderMatch, Route
from revproxy.config.values import (
    format_duration,
    format_size,
    parse_duration,
    parse_size,
    parse_status_range,
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


def test_embedded_default_pool_and_admin_equal_the_model_defaults():
    """The demo pool sets no balancing key and [admin] is absent: both are model defaults."""
    config = load_config(None)
    pool = config.pools[0]
    assert pool == Pool(name="demo", members=pool.members)
    assert config.admin == Admin()


def _uncomment_documented_defaults(text: str) -> str:
    """Uncomment the ``# key = value`` lines and ``# [table]`` headers of the balancing,
    health, outlier and admin settings (the route examples stay commented)."""
    keys = set()
    for cls in (Pool, HealthCheck, Outlier, Admin):
        keys.update(field.name for field in fields(cls))
    tables = r"\[(?:admin|pools\.demo\.health|pools\.demo\.outlier)\]"
    line = r"(?m)^# (%s|(?:%s) = .*)$" % (tables, "|".join(sorted(keys)))
    return re.sub(line, r"\1", text)


def test_commented_settings_of_the_embedded_default_are_the_model_defaults():
    """Uncommented, every documented balancing/health/outlier/admin line states the default."""
    from revproxy.config.load import embedded_config_text

    text = _uncomment_documented_defaults(embedded_config_text())
    assert "\n[pools.demo.health]\n" in text and "\nretry_on = [" in text
    config = parse_config(tomllib.loads(text), SOURCE)
    pool = config.pools[0]
    assert pool == Pool(name="demo", members=pool.members, health=HealthCheck())
    assert config.admin == Admin()


def test_example_config_uses_the_load_balancing_features():
    """conf/example.toml: weighted peak-ewma pool, health checks, a sticky pool, admin."""
    config = load_config(os.path.join(ROOT, "conf", "example.toml"))
    app, api = config.pool("app"), config.pool("api")
    assert api.balance == "peak-ewma" and api.weights == (3, 3, 1)
    assert api.balance_options == (("default_rtt", 0.005),)
    assert api.health is not None and api.health.expect_status == ((200, 299), (304, 304))
    assert app.sticky_cookie == "srv" and app.health is not None
    assert config.admin.listen == ("tcp:9901:interface=127.0.0.1",)
    check_balancers(config, dict.fromkeys(BUILT_IN_POLICIES, ""))


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
    ("tunnel_idle_timeout zero", "[limits]\ntunnel_idle_timeout = 0",
     "[limits] tunnel_idle_timeout", "0", "greater than 0"),
    ("tunnel_idle_timeout not a duration", "[limits]\ntunnel_idle_timeout = \"forever\"",
     "[limits] tunnel_idle_timeout", '"forever"', "expected"),
    ("tunnel_max_lifetime negative", "[limits]\ntunnel_max_lifetime = -1",
     "[limits] tunnel_max_lifetime", "-1", "0 seconds or more (0 = off)"),
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
    ("member https with a path", "[pools.api]\nmembers = [\"https://a.example/x\"]",
     "[pools.api] members #1", '"https://a.example/x"', "no path"),
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
    # "$" matched before a trailing newline; these used to pass.
    ("token with trailing newline", "[server]\nproxy_name = \"edge\\n\"",
     "[server] proxy_name", '"edge\\n"', "HTTP token"),
    ("route name with trailing newline", ROUTE + "name = \"a\\n\"", "[[routes]] #1 name",
     '"a\\n"', "letters, digits"),
    ("member with trailing newline", "[pools.api]\nmembers = [\"http://a\\n\"]",
     "[pools.api] members #1", '"http://a\\n"', "expected an upstream URL"),
    ("port in non-ASCII digits", "[pools.api]\nmembers = [\"http://a:\u0668\u0660\"]",
     "[pools.api] members #1", '"http://a:\u0668\u0660"', "expected an upstream URL"),
]

API = "[pools.api]\nmembers = [\"http://a\"]\n"
HEALTH = API + "[pools.api.health]\n"
OUTLIER = API + "[pools.api.outlier]\n"
BAD_BALANCING = [
    ("member weight zero", "[pools.api]\nmembers = [{url = \"http://a\", weight = 0}]",
     "[pools.api] members #1 weight", "0", "expected an integer from 1 to 1000"),
    ("member weight too big", "[pools.api]\nmembers = [{url = \"http://a\", weight = 1001}]",
     "[pools.api] members #1 weight", "1001", "integer from 1 to 1000"),
    ("member weight fraction", "[pools.api]\nmembers = [{url = \"http://a\", weight = 2.5}]",
     "[pools.api] members #1 weight", "2.5", "integer from 1 to 1000"),
    ("member table unknown key", "[pools.api]\nmembers = [{url = \"http://a\", w = 2}]",
     "[pools.api] members #1 w", "2", "unknown key; known keys: url, weight"),
    ("member table bad url", "[pools.api]\nmembers = [{url = \"ftp://a\"}]",
     "[pools.api] members #1 url", '"ftp://a"', 'expected an upstream URL "http://host[:port]"'),
    ("member of another type", "[pools.api]\nmembers = [\"http://a\", 5]",
     "[pools.api] members #2", "5", 'or an inline table {url = "http://host:port", weight = N}'),
    ("members not an array", "[pools.api]\nmembers = \"http://a\"", "[pools.api] members",
     '"http://a"', "expected an array of upstream URLs"),
    ("member twice", "[pools.api]\nmembers = [\"http://a\", \"HTTP://A:80/\"]",
     "[pools.api] members #2", '"HTTP://A:80/"',
     "expected each member once; members #1 is the same server (http://a:80)"),
    ("member twice in a table", "[pools.api]\nmembers = [\"http://a:81\", "
     "{url = \"http://a:81\", weight = 2}]", "[pools.api] members #2",
     '{url = "http://a:81", weight = 2}', "members #1 is the same server"),
    ("balance upper case", API + "balance = \"Round-Robin\"", "[pools.api] balance",
     '"Round-Robin"', 'expected a policy name of 1-64 lowercase letters, digits, "-" or "_"'),
    ("balance empty", API + "balance = \"\"", "[pools.api] balance", '""', "policy name"),
    ("balance_options not a table", API + "balance_options = \"x\"",
     "[pools.api] balance_options", '"x"', "expected an inline table of the policy's options"),
    ("balance option array", API + "balance_options = { decay = [1, 2] }",
     "[pools.api] balance_options.decay", "[1, 2]",
     "expected a string, an integer, a finite number or a boolean"),
    ("balance option table", API + "balance_options = { \"a b\" = { x = 1 } }",
     '[pools.api] balance_options."a b"', "{x = 1}", "a finite number or a boolean"),
    ("balance option nan", API + "balance_options = { decay = nan }",
     "[pools.api] balance_options.decay", "nan", "a finite number"),
    ("sticky_cookie not a token", API + "sticky_cookie = \"a;b\"", "[pools.api] sticky_cookie",
     '"a;b"', 'expected "" (off) or a cookie name (an HTTP token)'),
    ("load_header not a token", API + "load_header = \"x load\"", "[pools.api] load_header",
     '"x load"', 'expected "" (off) or a response header name'),
    ("agent_port range", API + "agent_port = 65536", "[pools.api] agent_port", "65536",
     "integer from 0 to 65535"),
    ("agent_interval zero", API + "agent_interval = 0", "[pools.api] agent_interval", "0",
     "greater than 0"),
    ("slow_start negative", API + "slow_start = -1", "[pools.api] slow_start", "-1",
     "expected a duration of 0 seconds or more (0 = off)"),
    ("slow_start word", API + "slow_start = \"soon\"", "[pools.api] slow_start", '"soon"',
     "expected a duration in seconds"),
    ("max_connections_per_member negative", API + "max_connections_per_member = -1",
     "[pools.api] max_connections_per_member", "-1", "integer >= 0"),
    ("queue_size negative", API + "queue_size = -1", "[pools.api] queue_size", "-1",
     "integer >= 0"),
    ("queue_timeout zero", API + "queue_timeout = \"0s\"", "[pools.api] queue_timeout",
     '"0s"', "greater than 0"),
    ("retries over 10", API + "retries = 11", "[pools.api] retries", "11",
     "integer from 0 to 10"),
    ("retry_on unknown word", API + "retry_on = [\"reset\"]", "[pools.api] retry_on #1",
     '"reset"', 'expected "connect-failure", "timeout" or a status code 500-599'),
    ("retry_on 4xx", API + "retry_on = [\"timeout\", 404]", "[pools.api] retry_on #2", "404",
     "status code 500-599"),
    ("retry_on status as text", API + "retry_on = [\"503\"]", "[pools.api] retry_on #1",
     '"503"', "written as an integer"),
    ("retry_on twice", API + "retry_on = [503, \"timeout\", 503]", "[pools.api] retry_on #3",
     "503", "expected each entry once; #1 is the same"),
    ("retry_on not an array", API + "retry_on = \"timeout\"", "[pools.api] retry_on",
     '"timeout"', "expected an array"),
    ("retry_budget above 1", API + "retry_budget = 1.5", "[pools.api] retry_budget", "1.5",
     "expected a number from 0.0 to 1.0"),
    ("retry_budget bool", API + "retry_budget = true", "[pools.api] retry_budget", "true",
     "number from 0.0 to 1.0"),
    ("panic_threshold negative", API + "panic_threshold = -0.1", "[pools.api] panic_threshold",
     "-0.1", "number from 0.0 to 1.0"),
    ("health not a table", API + "health = true", "[pools.api] health", "true",
     "expected a table [pools.api.health]"),
    ("unknown health key", HEALTH + "url = \"/\"", "[pools.api.health] url", '"/"',
     "known keys: path, method, host, expect_status"),
    ("health path relative", HEALTH + "path = \"healthz\"", "[pools.api.health] path",
     '"healthz"', 'expected a path starting with "/"'),
    ("health path space", HEALTH + "path = \"/a b\"", "[pools.api.health] path", '"/a b"',
     "no fragment, spaces or non-ASCII"),
    ("health path fragment", HEALTH + "path = \"/a#b\"", "[pools.api.health] path", '"/a#b"',
     "no fragment"),
    ("health path newline", HEALTH + "path = \"/a\\n\"", "[pools.api.health] path",
     '"/a\\n"', "no fragment, spaces"),
    ("health method token", HEALTH + "method = \"GE T\"", "[pools.api.health] method",
     '"GE T"', "HTTP token"),
    ("health host", HEALTH + "host = \"a b\"", "[pools.api.health] host", '"a b"',
     '"host[:port]"'),
    ("expect_status above 599", HEALTH + "expect_status = 600",
     "[pools.api.health] expect_status #1", "600", "expected a status code 100-599 (200)"),
    ("expect_status reversed", HEALTH + "expect_status = \"399-200\"",
     "[pools.api.health] expect_status #1", '"399-200"', 'with LOW <= HIGH ("200-399")'),
    ("expect_status word", HEALTH + "expect_status = [200, \"ok\"]",
     "[pools.api.health] expect_status #2", '"ok"', "status code 100-599"),
    ("expect_status empty", HEALTH + "expect_status = []", "[pools.api.health] expect_status",
     "[]", "non-empty array"),
    ("expect_body compiles", HEALTH + "expect_body = \"(\"", "[pools.api.health] expect_body",
     '"("', "expected a valid regular expression"),
    ("expect_body with HEAD", HEALTH + "method = \"head\"\nexpect_body = \"ok\"",
     "[pools.api.health] expect_body", '"ok"', 'no body check with method = "HEAD"'),
    ("health timeout not below interval", HEALTH + "interval = \"2s\"\ntimeout = 2",
     "[pools.api.health] timeout", "2", "expected less than interval (2s)"),
    ("health timeout over default interval", HEALTH + "timeout = 6",
     "[pools.api.health] timeout", "6", "expected less than interval (5s, the default)"),
    ("health interval under default timeout", HEALTH + "interval = \"1s\"",
     "[pools.api.health] interval", '"1s"', "expected more than timeout (2s, the default)"),
    ("health rise zero", HEALTH + "rise = 0", "[pools.api.health] rise", "0", "integer >= 1"),
    ("health fall zero", HEALTH + "fall = 0", "[pools.api.health] fall", "0", "integer >= 1"),
    ("outlier not a table", API + "outlier = 5", "[pools.api] outlier", "5",
     "expected a table [pools.api.outlier]"),
    ("unknown outlier key", OUTLIER + "failures = 3", "[pools.api.outlier] failures", "3",
     "known keys: consecutive_failures, base_ejection"),
    ("consecutive_failures negative", OUTLIER + "consecutive_failures = -1",
     "[pools.api.outlier] consecutive_failures", "-1", "integer >= 0"),
    ("base_ejection zero", OUTLIER + "base_ejection = 0", "[pools.api.outlier] base_ejection",
     "0", "greater than 0"),
    ("max_ejection below base", OUTLIER + "base_ejection = \"1m\"\nmax_ejection = \"30s\"",
     "[pools.api.outlier] max_ejection", '"30s"', "expected at least base_ejection (60s)"),
    ("max_ejection below default base", OUTLIER + "max_ejection = \"10s\"",
     "[pools.api.outlier] max_ejection", '"10s"', "at least base_ejection (30s, the default)"),
    ("base_ejection over default max", OUTLIER + "base_ejection = \"10m\"",
     "[pools.api.outlier] base_ejection", '"10m"', "at most max_ejection (300s, the default)"),
    ("max_ejected_percent over 100", OUTLIER + "max_ejected_percent = 101",
     "[pools.api.outlier] max_ejected_percent", "101", "integer from 0 to 100"),
    ("admin not a table", "admin = 1", "admin", "1", "expected a table [admin]"),
    ("unknown admin key", "[admin]\nport = 9901", "[admin] port", "9901",
     "known keys: listen, debug_clients, debug_header"),
    ("admin listen not an array", "[admin]\nlisten = \"tcp:9901\"", "[admin] listen",
     '"tcp:9901"', "expected an array"),
    ("admin listen endpoint", "[admin]\nlisten = [\"udp:9901\"]", "[admin] listen #1",
     '"udp:9901"', "one of tcp:, tcp6:, unix:, ssl:"),
    ("debug_clients CIDR", "[admin]\ndebug_clients = [\"localhost\"]",
     "[admin] debug_clients #1", '"localhost"', "CIDR"),
    ("debug_header token", "[admin]\ndebug_header = \"x debug\"", "[admin] debug_header",
     '"x debug"', "HTTP token"),
]


ALL_BAD = BAD + BAD_BALANCING


@pytest.mark.parametrize(
    "rule,text,key,value,expected", ALL_BAD, ids=[case[0] for case in ALL_BAD]
)
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


# --- load balancing: pools, health, outlier, admin -------------------------------------------

BUILT_IN_POLICIES = (
    "round-robin", "weighted-round-robin", "least-connections", "peak-ewma", "consistent-hash",
)


def pool_of(text: str) -> Pool:
    """The single pool "api" of ``[pools.api]`` + ``text``."""
    return parse('[pools.api]\nmembers = ["http://a"]\n' + text).pool("api")


def test_members_may_carry_weights_parallel_to_members():
    """A member is a URL or {url, weight}; weights line up with members, 1 where omitted."""
    pool = parse('[pools.api]\nmembers = ["http://a", {url = "http://B:81/", weight = 3}, '
                 '{url = "http://c"}]').pool("api")
    assert pool.members == ("http://a:80", "http://b:81", "http://c:80")
    assert pool.weights == (1, 3, 1)
    assert pool.weight_of("http://b:81") == 3


def test_weights_are_empty_when_every_member_weighs_one():
    """No weight other than 1 (given or not) is stored as (), the model's "all 1"."""
    pool = parse('[pools.api]\nmembers = ["http://a", {url = "http://b", weight = 1}]').pools[0]
    assert pool.weights == ()
    assert pool.weight_of("http://b:80") == 1


def test_member_table_without_url_is_named():
    """{weight = 2} alone names the missing url and what it must be."""
    error = error_of('[pools.api]\nmembers = [{weight = 2}]')
    assert str(error).startswith(
        'conf/x.toml: [pools.api] members #1 url: missing; expected an upstream URL')


def test_pool_balancing_keys_are_parsed():
    """Every scalar balancing key reaches the Pool, durations in seconds."""
    pool = pool_of(
        'balance = "least-connections"\nagent_port = 5555\nagent_interval = "500ms"\n'
        'slow_start = "1m"\nmax_connections_per_member = 20\nqueue_size = 0\n'
        'queue_timeout = 2\nretries = 0\nretry_budget = 1\npanic_threshold = 0.5\n'
    )
    assert (pool.balance, pool.agent_port, pool.agent_interval, pool.slow_start) == (
        "least-connections", 5555, 0.5, 60.0)
    assert (pool.max_connections_per_member, pool.queue_size, pool.queue_timeout) == (20, 0, 2.0)
    assert (pool.retries, pool.retry_budget, pool.panic_threshold) == (0, 1.0, 0.5)
    assert isinstance(pool.retry_budget, float)


def test_slow_start_zero_turns_it_off_without_error():
    """slow_start is the one duration where 0 is allowed (it means off)."""
    assert pool_of('slow_start = "0s"').slow_start == 0.0


def test_retry_on_statuses_are_stored_as_text_in_order():
    """Words stay; status integers become their text; order kept; [] retries on nothing."""
    assert pool_of('retry_on = [503, "connect-failure", 599, 500]').retry_on == (
        "503", "connect-failure", "599", "500")
    assert pool_of("retry_on = []").retry_on == ()


def test_sticky_cookie_keeps_case_and_load_header_is_lower_cased():
    """Cookie names are case-sensitive; header names are compared lower-case everywhere."""
    pool = pool_of('sticky_cookie = "SRV_id"\nload_header = "X-Backend-Load"')
    assert (pool.sticky_cookie, pool.load_header) == ("SRV_id", "x-backend-load")
    assert pool_of('sticky_cookie = ""\nload_header = ""').sticky_cookie == ""


def test_balance_options_are_sorted_pairs_of_plain_values():
    """The options table becomes (key, value) pairs sorted by key, values untouched."""
    pool = pool_of('balance = "consistent-hash"\n'
                   'balance_options = { vnodes = 200, key = "cookie:sid", exact = true }')
    assert pool.balance_options == (("exact", True), ("key", "cookie:sid"), ("vnodes", 200))
    hash(pool)  # the frozen Pool stays hashable


def test_pool_without_health_table_has_no_active_checks():
    """No [pools.NAME.health]: health is None; the outlier settings keep their defaults."""
    pool = pool_of("")
    assert pool.health is None and pool.outlier == Outlier()


def test_empty_health_table_turns_probes_on_with_defaults():
    """The table's presence alone turns active probes on (inline or as a section)."""
    assert parse(API + "[pools.api.health]\n").pool("api").health == HealthCheck()
    assert pool_of("health = {}").health == HealthCheck()


def test_health_values_are_normalised():
    """Method upper-cased; expect_status as inclusive ranges from a code, a range or a list."""
    health = parse(HEALTH + 'path = "/healthz?deep=1"\nmethod = "head"\n'
                   'host = "api.internal:8080"\nexpect_status = [200, "300-302", "204"]\n'
                   'interval = "10s"\ntimeout = "9.5s"\nrise = 1\nfall = 5\n').pool("api").health
    assert health == HealthCheck(
        path="/healthz?deep=1", method="HEAD", host="api.internal:8080",
        expect_status=((200, 200), (300, 302), (204, 204)), expect_body=None,
        interval=10.0, timeout=9.5, rise=1, fall=5)
    assert pool_of('health = { expect_status = "200-299", expect_body = "^ok" }').health == (
        HealthCheck(expect_status=((200, 299),), expect_body="^ok"))


def test_outlier_values_are_parsed():
    """[pools.NAME.outlier] keys reach Outlier; 0 failures (off) and max == base are allowed."""
    outlier = parse(OUTLIER + 'consecutive_failures = 0\nbase_ejection = "1m"\n'
                    'max_ejection = 60\nmax_ejected_percent = 100\n').pool("api").outlier
    assert outlier == Outlier(consecutive_failures=0, base_ejection=60.0, max_ejection=60.0,
                              max_ejected_percent=100)


def test_admin_section_is_parsed_and_normalised():
    """[admin]: endpoints as written, CIDRs canonical, the debug header lower-cased."""
    admin = parse('[admin]\nlisten = ["tcp:9901:interface=127.0.0.1", "unix:/run/a.sock"]\n'
                  'debug_clients = ["127.0.0.1", "10.1.2.3/8"]\ndebug_header = "X-Debug"').admin
    assert admin == Admin(listen=("tcp:9901:interface=127.0.0.1", "unix:/run/a.sock"),
                          debug_clients=("127.0.0.1/32", "10.0.0.0/8"), debug_header="x-debug")


def test_admin_is_off_when_absent():
    """Without [admin] there is no admin listener and nobody gets the decision header."""
    assert parse("").admin == Admin() and Admin().listen == ()


def test_check_balancers_accepts_known_policies():
    """Every pool naming a registered policy passes; the registry maps name -> description."""
    config = parse('[pools.a]\nmembers = ["http://a"]\nbalance = "peak-ewma"\n'
                   '[pools.b]\nmembers = ["http://b"]\n' + ROUTE.replace("app", "a"),
                   add_pool=False)
    assert check_balancers(config, {"peak-ewma": "x", "round-robin": "y"}) is None


def test_check_balancers_names_the_pool_and_lists_the_policies():
    """An unknown policy: file, pool key, value, and the known names sorted."""
    config = parse('[pools.api]\nmembers = ["http://a"]\nbalance = "nope"\n')
    with pytest.raises(ConfigError) as info:
        check_balancers(config, dict.fromkeys(BUILT_IN_POLICIES, "built in"))
    assert str(info.value) == (
        'conf/x.toml: [pools.api] balance = "nope": expected one of: consistent-hash, '
        "least-connections, peak-ewma, round-robin, weighted-round-robin")
    assert info.value.key == "[pools.api] balance"


def test_check_balancers_with_an_empty_registry_says_so():
    """Even the default policy is refused when nothing is registered, with a clear reason."""
    with pytest.raises(ConfigError) as info:
        check_balancers(parse(""), {})
    assert str(info.value).endswith("expected one of: (no policy is registered)")


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(1, 65535), st.none() | st.integers(1, 1000)),
                min_size=1, max_size=8, unique_by=itemgetter(0)))
def test_weights_parallel_members_or_empty(entries):
    """Any mix of plain and weighted members: weights parallel, or () when all are 1."""
    members = [
        "http://10.0.0.1:%d" % port if weight is None
        else {"url": "http://10.0.0.1:%d" % port, "weight": weight}
        for port, weight in entries
    ]
    pool = parse_config({"pools": {"p": {"members": members}}}, SOURCE).pools[0]
    weights = tuple(1 if weight is None else weight for _, weight in entries)
    assert pool.members == tuple("http://10.0.0.1:%d" % port for port, _ in entries)
    assert pool.weights == (() if set(weights) == {1} else weights)
    assert [pool.weight_of(url) for url in pool.members] == list(weights)


PLAIN_VALUES = (st.booleans() | st.integers() | st.text(max_size=8)
                | st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=100)
@given(st.dictionaries(st.text(min_size=1, max_size=8), PLAIN_VALUES, max_size=6))
def test_balance_options_round_trip_sorted(options):
    """Any table of plain values comes back as its items sorted by key, values unchanged."""
    pool = parse_config({"pools": {"p": {"members": ["http://a"], "balance_options": options}}},
                        SOURCE).pools[0]
    assert pool.balance_options == tuple(sorted(options.items(), key=itemgetter(0)))


@settings(max_examples=150)
@given(st.integers(100, 599), st.integers(100, 599))
def test_status_range_forms(first, second):
    """"A-B" is (A, B) exactly when A <= B; a lone code, as text or integer, is (A, A)."""
    assert parse_status_range(first) == parse_status_range(str(first)) == (first, first)
    text = "%d-%d" % (first, second)
    if first <= second:
        assert parse_status_range(text) == (first, second)
    else:
        with pytest.raises(ValueError):
            parse_status_range(text)


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
        apply_overrides(load_config(None), [], ["ftp://secure"])
    assert str(info.value).startswith(
        '<command line>: --upstream = "ftp://secure": expected an upstream URL')


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


def test_cli_pool_keeps_the_pool_defaults():
    """--upstream's pool "cli" has only its members set: every balancing key is default."""
    config = apply_overrides(load_config(None), [], ["http://b1:81", "http://b2"])
    assert config.pool("cli") == Pool(name="cli", members=("http://b1:81", "http://b2:80"))


def test_unknown_policy_fails_start_up_naming_file_key_and_known_policies(tmp_path):
    """`twistd revproxy --config` with an unknown `balance` exits with the file, the key and
    the list of known policies (built-ins and plugins)."""
    import pytest
    from revproxy.tap import Options

    path = tmp_path / "bad.toml"
    path.write_text('[pools.main]\nmembers = ["http://127.0.0.1:1"]\nbalance = "fastest"\n')
    with pytest.raises(SystemExit) as exit_info:
        Options().parseOptions(["--config", str(path)])
    message = str(exit_info.value)
    assert str(path) in message
    assert "[pools.main] balance" in message
    assert "fastest" in message
    assert "peak-ewma" in message and "consistent-hash" in message


def test_cache_section_and_flag():
    """[cache] parses with its defaults; --cache picks the store, keeping the other settings;
    a bad --cache names the option and what was expected."""
    import pytest
    from revproxy.config.errors import ConfigError
    from revproxy.config.load import apply_overrides, parse_config, parse_cache_flag

    config = parse_config({"pools": {"p": {"members": ["http://127.0.0.1:1"]}},
                           "cache": {"store": "memory", "max_object": "1m", "key_query": "sorted",
                                     "store_options": {"max_bytes": "64m"}}}, "c.toml")
    assert config.cache.store == "memory"
    assert config.cache.max_object == 1024 * 1024
    assert config.cache.store_options == (("max_bytes", "64m"),)
    disk = apply_overrides(config, [], [], "disk:/var/cache/rp")
    assert (disk.cache.store, disk.cache.store_options) == ("disk", (("path", "/var/cache/rp"),))
    assert disk.cache.key_query == "sorted"
    assert parse_cache_flag("memcached:10.0.0.1:11211,10.0.0.2:11211").store_options == (
        ("servers", "10.0.0.1:11211,10.0.0.2:11211"),)
    with pytest.raises(ConfigError) as error:
        parse_cache_flag("redis:1")
    assert str(error.value).startswith('<command line>: --cache = "redis:1": expected "memory"')


def test_cache_route_overrides_and_bad_values():
    """Routes take cache = false and cache_ttl; a bad [cache] key_query is refused."""
    import pytest
    from revproxy.config.errors import ConfigError
    from revproxy.config.load import parse_config

    config = parse_config({"pools": {"p": {"members": ["http://127.0.0.1:1"]}},
                           "routes": [{"pool": "p", "cache": False},
                                      {"pool": "p", "cache_ttl": "10m"}]}, "c.toml")
    assert [r.cache for r in config.routes] == [False, True]
    assert config.routes[1].cache_ttl == 600.0
    with pytest.raises(ConfigError) as error:
        parse_config({"pools": {"p": {"members": ["http://127.0.0.1:1"]}},
                      "cache": {"key_query": "shuffle"}}, "c.toml")
    assert str(error.value).startswith('c.toml: [cache] key_query = "shuffle": expected one of')


def test_embedded_default_enables_the_memory_cache():
    """The embedded default turns the memory store on; its other [cache] keys are defaults."""
    from dataclasses import replace as _replace
    from revproxy.config.model import Cache

    config = load_config(None)
    assert config.cache.store == "memory"
    assert _replace(config.cache, store="") == Cache()


def test_every_package_is_listed_in_pyproject():
    """pyproject's explicit package list names every revproxy package, so a wheel (and
    `pip install .`) ships them all."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = set()
    for directory, _, files in os.walk(os.path.join(ROOT, "revproxy")):
        if "__init__.py" in files and "__pycache__" not in directory:
            found.add(os.path.relpath(directory, ROOT).replace(os.sep, "."))
    assert found <= listed, sorted(found - listed)


def test_tunnel_limits_parse_durations_and_off():
    """tunnel_idle_timeout takes a duration; tunnel_max_lifetime a duration or 0 (off)."""
    limits = parse('[limits]\ntunnel_idle_timeout = "90s"\ntunnel_max_lifetime = "2h"').limits
    assert (limits.tunnel_idle_timeout, limits.tunnel_max_lifetime) == (90.0, 7200.0)
    limits = parse("[limits]\ntunnel_max_lifetime = 0").limits
    assert (limits.tunnel_idle_timeout, limits.tunnel_max_lifetime) == (3600.0, 0.0)
