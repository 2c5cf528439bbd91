"""The admin API's pure parts with fakes: routing, auth, the recorder, the status and stats
documents, operator overrides on a pool, --admin, the token's secrecy."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial import unittest as trial_unittest

from revproxy.admin import auth
from revproxy.admin.control import AdminControl
from revproxy.admin.metrics import registry_for, render
from revproxy.admin.recorder import RequestRecorder, status_class
from revproxy.admin.routing import NOT_FOUND, WRONG_METHOD, Routes
from revproxy.admin.settings import with_admin_listen
from revproxy.admin.stats import stats_document
from revproxy.admin.status import status_document
from revproxy.balancing.pool import BalancedPool
from revproxy.balancing.roundrobin import RoundRobinBalancer
from revproxy.config.diff import describe_changes
from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.server.runtime import Stats
from revproxy.upstream.spool import SpoolBudget
from tests.unit.world import World, config_dict


POOLS = {"main": {"members": ["http://10.0.0.1:80", "http://10.0.0.2:80"]}}


def parse(admin=None):
    data = {"pools": POOLS}
    if admin is not None:
        data["admin"] = admin
    return parse_config(data, "x.toml")


# -- routing -----------------------------------------------------------------------------------
def test_routes_match_exact_and_parameterised_paths_with_decoded_segments():
    """{name} takes one percent-decoded segment; exact paths win; a trailing slash is ok."""
    routes = Routes()
    routes.add("/api/status", {"GET": "status"})
    routes.add("/api/members/{pool}/{member}/{action}", {"POST": "member"})
    assert routes.match("GET", "/api/status/") == ("status", {}, None)
    assert routes.match("HEAD", "/api/status") == ("status", {}, None)
    handler, params, _ = routes.match("POST", "/api/members/main/https%3A%2F%2F10.0.0.1%3A443/drain")
    assert handler == "member"
    assert params == {"pool": "main", "member": "https://10.0.0.1:443", "action": "drain"}


def test_routes_say_not_found_or_wrong_method_with_the_allowed_ones():
    """Unknown path: NOT_FOUND; known path, other method: WRONG_METHOD and the methods."""
    routes = Routes()
    routes.add("/api/reload", {"POST": "reload"})
    routes.add("/metrics", {"GET": "metrics"})
    assert routes.match("GET", "/api/members/a/b") == (None, None, NOT_FOUND)
    assert routes.match("GET", "/api/reload") == (None, ["POST"], WRONG_METHOD)
    assert routes.match("POST", "/metrics") == (None, ["GET", "HEAD"], WRONG_METHOD)


def test_routes_rest_parameter_takes_the_remaining_path():
    """{*rest} (for static files) takes what is left, possibly nothing."""
    routes = Routes()
    routes.add("/static/{*rest}", {"GET": "file"})
    assert routes.match("GET", "/static/js/app.js")[1] == {"rest": "js/app.js"}
    assert routes.match("GET", "/static/")[1] == {"rest": ""}


# -- auth --------------------------------------------------------------------------------------
def test_authorized_needs_the_exact_bearer_token():
    """With a token: only "Bearer <token>" (scheme case-insensitive) passes."""
    assert auth.authorized(None, None)
    assert auth.authorized(b"abc", b"Bearer abc")
    assert auth.authorized(b"abc", b"bearer  abc ")
    for bad in (None, b"", b"Bearer", b"Bearer ab", b"Bearer abcd", b"Basic abc", b"abc"):
        assert not auth.authorized(b"abc", bad), bad


def test_token_file_is_read_and_its_problems_named(tmp_path):
    """token_file: its first line; a missing file, a bad token, or both keys: ConfigError
    naming [admin] token_file."""
    path = tmp_path / "token"
    path.write_bytes(b"  s3cr3t-T0ken \nsecond line\n")
    config = parse({"token_file": str(path)})
    assert auth.configured_token(config) == b"s3cr3t-T0ken"
    assert auth.configured_token(parse({"token": "abc"})) == b"abc"
    assert auth.configured_token(parse()) is None
    path.write_bytes(b"has space\n")
    problems = [config,
                parse({"token_file": str(tmp_path / "missing")}),
                parse({"token": "a", "token_file": str(path)})]
    for bad in problems:
        with pytest.raises(ConfigError) as caught:
            auth.configured_token(bad)
        assert "x.toml: [admin] token_file" in str(caught.value)


def test_token_never_appears_in_a_repr_or_the_reload_log():
    """The token's repr is hidden, so the reload's change lines do not show it."""
    old = parse({"token": "old-secret"})
    new = parse({"token": "new-secret"})
    lines = describe_changes(old, new)
    assert lines and "secret" not in " ".join(lines) and "secret" not in repr(new)
    assert new.admin.token == "new-secret"
    with pytest.raises(ConfigError):
        parse({"token": "with space"})


def test_admin_option_replaces_the_admin_listeners():
    """--admin ENDPOINT (repeatable) replaces [admin] listen; a bad one names --admin."""
    config = parse({"listen": ["tcp:9901"]})
    assert with_admin_listen(config, []).admin.listen == ("tcp:9901",)
    changed = with_admin_listen(config, ["tcp:9902:interface=127.0.0.1", "unix:/tmp/a"])
    assert changed.admin.listen == ("tcp:9902:interface=127.0.0.1", "unix:/tmp/a")
    with pytest.raises(ConfigError) as caught:
        with_admin_listen(config, ["udp:1"])
    assert "--admin" in str(caught.value)


# -- fakes for the documents ------------------------------------------------------------------------
class FakeRoute:
    def __init__(self, name):
        self.name = name


class FakeCtx:
    def __init__(self, route, started_at, member=None):
        self.route = FakeRoute(route) if route else None
        self.started_at = started_at
        self.member = member


class FakeExchange:
    def __init__(self, pool, upstream_time, attempts=1):
        self.pool = FakeRoute(pool)
        self.upstream_time = upstream_time
        self.attempts = attempts


class FakeConn:
    def __init__(self, activity):
        self.activity = activity
        self.client_ip = "10.0.0.1"


class FakeFirewall:
    def stats(self):
        return {"evaluated": 10, "blocked": 3, "detected": 2, "rules": {}}


def pool_config():
    return parse()


def make_pool(clock):
    config = pool_config()
    pool = BalancedPool(clock, config.pool("main"), None, None, None,
                        RoundRobinBalancer())
    pool.set_addresses([("10.0.0.1", 80, 1), ("10.0.0.2", 80, 1)])
    return config, pool


class FakeRuntime:
    def __init__(self, clock, firewall=None):
        self.config, pool = make_pool(clock)
        self.clock = clock
        self.backends = {"main": pool}
        self.cache = None
        self.rate_limits = None
        self.budget = SpoolBudget(1000, 2000)
        self.stats = Stats(100)
        if firewall is not None:
            self.firewall = firewall


# -- the recorder ------------------------------------------------------------------------------
def test_status_class_of_every_status():
    """1xx..5xx by hundreds; anything else "other"."""
    assert [status_class(s) for s in (101, 200, 304, 499, 503, 0, 600)] == [
        "1xx", "2xx", "3xx", "4xx", "5xx", "other", "other"]


def test_recorder_counts_by_route_class_pool_member_and_keeps_latencies():
    """Counts per series, retries beyond the first attempt, histograms and the window."""
    recorder = RequestRecorder()
    recorder.record(FakeCtx("r", 10.0, "m1"), 200, FakeExchange("main", 0.02), 10.05)
    recorder.record(FakeCtx("r", 10.0, "m1"), 502, FakeExchange("main", 0.5, 3), 11.0)
    recorder.record(FakeCtx(None, 10.0), 404, None, 10.001)
    assert recorder.requests() == {("r", "2xx", "main", "m1"): 1, ("r", "5xx", "main", "m1"): 1,
                                   ("", "4xx", "", ""): 1}
    assert recorder.retries == {"main": 2}
    assert recorder.by_class() == {"total": 3, "1xx": 0, "2xx": 1, "3xx": 0, "4xx": 1, "5xx": 1}
    assert recorder.by_member() == {"main": {"m1": (2, 1)}}
    assert sum(recorder.total["r"].counts) == 2
    assert recorder.total["r"].sum == pytest.approx(1.05)
    assert sum(recorder.upstream["main"].counts) == 2
    assert recorder.latency.count(11.0) == 3


def test_recorder_folds_series_past_its_bound_into_other():
    """Past max_series combinations, new ones count under route "other": bounded labels."""
    recorder = RequestRecorder(max_series=2)
    for index in range(5):
        recorder.record(FakeCtx("r%d" % index, 0.0, "m"), 200, FakeExchange("p", 0.1), 0.1)
    assert len(recorder.series) == 3
    assert recorder.requests()[("other", "2xx", "", "")] == 3


# -- documents -----------------------------------------------------------------------------------
def test_status_document_with_fakes_counts_connections_and_shows_the_firewall():
    """Connections by activity, spool bytes, the firewall's stats when there is one."""
    clock = Clock()
    runtime = FakeRuntime(clock, FakeFirewall())
    for activity in ("idle", "idle", "request", "tunnel", "http2", "head"):
        runtime.stats.connections.add(FakeConn(activity))
    runtime.budget.reserve_memory(300)
    runtime.stats.slow_response_cuts = 4
    doc = status_document(runtime, 0.0)
    assert doc["connections"]["total"] == 6
    assert doc["connections"]["by_state"] == {
        "reading_head": 1, "in_request": 1, "idle_keepalive": 2, "tunnel": 1,
        "http2_active": 1, "http2_idle": 0}
    assert doc["connections"]["slow_response_cuts"] == 4
    assert doc["spool"] == {"memory_bytes": 300, "disk_bytes": 0, "memory_limit": 1000,
                            "disk_limit": 2000}
    assert doc["firewall"]["blocked"] == 3
    assert doc["workers"] == {"count": 1, "pid": os.getpid()}
    assert [m["name"] for m in doc["pools"]["main"]["members"]] == ["10.0.0.1:80", "10.0.0.2:80"]
    assert status_document(FakeRuntime(clock), 0.0)["firewall"] is None


def test_stats_document_with_fakes():
    """Counters from the recorder, member state live from the pool, firewall zeros when
    off and its counts when on, time from the wall clock given."""
    clock = Clock()
    runtime = FakeRuntime(clock)
    recorder = RequestRecorder()
    recorder.record(FakeCtx("r", 0.0, "10.0.0.1:80"), 503, FakeExchange("main", 0.004), 0.005)
    doc = stats_document(runtime, recorder, 0.5, 1234.5)
    assert doc["time"] == 1234.5
    assert doc["requests"]["5xx"] == 1
    assert doc["members"]["main"]["10.0.0.1:80"] == {"state": "healthy", "requests": 1,
                                                      "errors": 1, "inflight": 0}
    assert doc["members"]["main"]["10.0.0.2:80"]["requests"] == 0
    assert doc["latency_ms"]["p50"] == pytest.approx(5.0, rel=0.2)
    assert doc["upstream_latency_ms"]["p99"] == pytest.approx(4.0, rel=0.2)
    assert doc["firewall"] == {"blocked": 0, "detected": 0}
    assert doc["cache"] == {"hits": 0, "misses": 0, "stale": 0, "ratio": 0.0}
    assert stats_document(FakeRuntime(clock, FakeFirewall()), None, 0.0, 0.0)["firewall"] == {
        "blocked": 3, "detected": 2}


def test_metrics_show_the_firewall_family_only_when_there_is_a_firewall():
    """revproxy_firewall_requests_total{outcome} from runtime.firewall.stats()."""
    clock = Clock()

    class Holder:
        current = FakeRuntime(clock, FakeFirewall())

    text = render(registry_for(AdminControl(Holder, RequestRecorder()))).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    values = {s.labels["outcome"]: s.value for s in families["revproxy_firewall_requests"].samples}
    assert values == {"evaluated": 10, "blocked": 3, "detected": 2}


# -- operator overrides on the pool -------------------------------------------------------------
def test_drain_and_disable_take_a_member_out_even_in_panic():
    """A drained member is no candidate; in panic mode (every member unhealthy) the
    operator's choice still holds."""
    clock = Clock()
    _, pool = make_pool(clock)
    first, second = pool.members
    pool.set_admin_state(first, "draining")
    assert pool.candidates(0.0)[0] == [second]
    assert first.state.status(0.0) == "draining"
    pool.set_admin_state(second, "disabled")
    assert pool.candidates(0.0)[0] == []
    pool.set_admin_state(first, None)
    assert pool.candidates(0.0)[0] == [first]
    assert pool.overrides == {second.name: {"state": "disabled"}}
    with pytest.raises(ValueError):
        pool.set_admin_state(first, "asleep")


def test_overrides_follow_a_member_that_leaves_and_comes_back():
    """A member removed and added again by the resolver takes its override back; a new
    pool given the overrides applies them to its members."""
    clock = Clock()
    config, pool = make_pool(clock)
    pool.set_admin_weight(pool.members[1], 9)
    pool.set_admin_state(pool.members[1], "draining")
    pool.set_addresses([("10.0.0.1", 80, 1)])
    pool.set_addresses([("10.0.0.1", 80, 1), ("10.0.0.2", 80, 1)])
    member = pool.members[1]
    assert (member.state.admin_state, member.state.admin_weight) == ("draining", 9)
    assert member.weight == 9.0
    rebuilt = BalancedPool(clock, config.pool("main"), None, None, None, RoundRobinBalancer())
    rebuilt.overrides = dict(pool.overrides)
    rebuilt.set_addresses([("10.0.0.1", 80, 1), ("10.0.0.2", 80, 1)])
    assert rebuilt.members[1].state.status(0.0) == "draining"
    pool.set_admin_weight(member, None)
    assert member.weight == 1.0 and pool.overrides == {member.name: {"state": "draining"}}


# -- process-wide cut counts (Stats), and --admin through the twistd options ----------------
class CutCountTests(trial_unittest.TestCase):
    def test_slow_request_body_and_slow_reader_are_counted(self):
        """A 408 for a body under min_request_rate counts one request cut; a connection
        whose reader is too slow counts one response cut."""
        world = World(self, config_dict(limits={"min_request_rate": 100, "min_rate_grace": 5,
                                                "body_timeout": 60}))
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        world.reactor.advance(5.5)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 408 "))
        stats = world.runtime.stats
        self.assertEqual((stats.slow_request_cuts, stats.slow_response_cuts), (1, 0))
        other, _ = world.client()
        other.reader_too_slow(10.0, 5.0)
        self.assertEqual((stats.slow_request_cuts, stats.slow_response_cuts), (1, 1))


def test_admin_command_line_option_replaces_the_config_listeners():
    """twistd revproxy --admin E --admin F: [admin] listen is (E, F)."""
    from revproxy.tap import Options

    options = Options()
    options.parseOptions(["--upstream", "http://127.0.0.1:9", "--admin", "tcp:0",
                          "--admin", "unix:/tmp/revproxy-admin.sock"])
    assert options.config.admin.listen == ("tcp:0", "unix:/tmp/revproxy-admin.sock")
    assert options.load().admin.listen == ("tcp:0", "unix:/tmp/revproxy-admin.sock")
