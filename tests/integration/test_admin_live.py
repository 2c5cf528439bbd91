"""The admin API on loopback: a real proxy, real backends, a plain HTTP client (Agent) on
the admin listener. Every action, every documented path, every metric family."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from revproxy.admin.openapi import openapi_document
from revproxy.admin.site import default_routes
from revproxy.config.load import load_config
from revproxy.tap import build, config_loader
from tests.integration.support import listen, proxy_config, start_proxy
from tests.integration.test_balancing_live import start_members

TOKEN = b"t0ken-for-tests"


class Tagged(resource.Resource):
    """Cacheable answers carrying a Cache-Tag; counts what it served."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.served = 0

    def render_GET(self, request):
        self.served += 1
        request.setHeader(b"cache-control", b"max-age=300")
        request.setHeader(b"cache-tag", b"t1")
        return b"body %d" % self.served


class Client:
    """A plain HTTP client for one admin port (and the proxy port)."""

    def __init__(self, admin_port, proxy_port, token=TOKEN, testcase=None):
        self.agent = Agent(reactor)
        # to the proxy: one keep-alive connection (the status counts it), closed at the end
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 1
        self.proxy_agent = Agent(reactor, pool=self.pool)
        if testcase is not None:
            testcase.addCleanup(self.pool.closeCachedConnections)
        self.admin_port = admin_port
        self.proxy_port = proxy_port
        self.token = token

    @defer.inlineCallbacks
    def call(self, method, path, body=None, token=None, raw=False):
        headers = Headers()
        token = self.token if token is None else token
        if token:
            headers.addRawHeader(b"authorization", b"Bearer " + token)
        producer = None
        if body is not None:
            from io import BytesIO

            headers.addRawHeader(b"content-type", b"application/json")
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode("utf-8")))
        response = yield self.agent.request(
            method, b"http://127.0.0.1:%d%s" % (self.admin_port, path), headers, producer)
        data = yield readBody(response)
        if raw:
            return response, data
        self_type = response.headers.getRawHeaders(b"content-type", [b""])[0]
        assert self_type == b"application/json", (path, self_type, data[:200])
        return response.code, json.loads(data)

    def get(self, path, **kw):
        return self.call(b"GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call(b"POST", path, body, **kw)

    @defer.inlineCallbacks
    def proxied(self, path=b"/x", times=1):
        """GET through the proxy ``times`` times; the bodies."""
        bodies = []
        for _ in range(times):
            response = yield self.proxy_agent.request(
                b"GET", b"http://127.0.0.1:%d%s" % (self.proxy_port, path))
            bodies.append((yield readBody(response)))
        return bodies


def admin_section(**more):
    return dict({"listen": ["tcp:0:interface=127.0.0.1"], "token": TOKEN.decode()}, **more)


def member_path(pool, member, action):
    return ("/api/members/%s/%s/%s" % (quote(pool, safe=""), quote(member, safe=""),
                                       action)).encode("ascii")


class AdminApiTests(unittest.TestCase):
    @defer.inlineCallbacks
    def start(self, count=2, pool=None, extra=None, **sections):
        self.members, _ = start_members(self, count=count)
        sections.setdefault("admin", admin_section())
        data = proxy_config([m.port for m in self.members], **sections)
        data["pools"]["main"].update(pool or {})
        data.update(extra or {})
        self.service, port = yield start_proxy(self, data)
        self.client = Client(self.service.ports[0].getHost().port, port, testcase=self)
        self.names = ["127.0.0.1:%d" % m.port for m in self.members]
        return self.client

    # -- auth, 404, 405 ------------------------------------------------------------------
    @defer.inlineCallbacks
    def test_token_is_required_when_configured(self):
        """No token or a wrong one: 401 JSON with WWW-Authenticate, on known and unknown
        paths alike; the right token: 200."""
        client = yield self.start()
        for token in (b"", b"wrong", TOKEN + b"x"):
            response, body = yield client.call(b"GET", b"/api/status", token=token, raw=True)
            self.assertEqual(response.code, 401)
            self.assertIn("error", json.loads(body))
            self.assertTrue(response.headers.hasHeader(b"www-authenticate"))
        status, _ = yield client.post(b"/api/reload", token=b"wrong")
        self.assertEqual(status, 401)
        self.assertEqual(self.service.reloader.generation, 0, "refused call did nothing")
        status, _ = yield client.get(b"/nothing-here", token=b"wrong")
        self.assertEqual(status, 401)
        status, _ = yield client.get(b"/api/status")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_without_a_token_everyone_is_let_in(self):
        """No [admin] token: calls without Authorization succeed."""
        client = yield self.start(admin={"listen": ["tcp:0:interface=127.0.0.1"]})
        status, _ = yield client.get(b"/api/status", token=b"")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_unknown_path_is_404_and_wrong_method_405_with_allow(self):
        """Unknown paths 404, GET on an action / POST on a document 405 with Allow; all JSON."""
        client = yield self.start()
        status, body = yield client.get(b"/api/nothing")
        self.assertEqual((status, list(body)), (404, ["error"]))
        status, _ = yield client.post(member_path("main", self.names[0], "explode"))
        self.assertEqual(status, 404)
        response, body = yield client.call(b"GET", b"/api/reload", raw=True)
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders(b"allow"), [b"POST"])
        self.assertIn("error", json.loads(body))
        response, _ = yield client.call(b"DELETE", b"/api/status", raw=True)
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders(b"allow"), [b"GET, HEAD"])

    # -- documents -----------------------------------------------------------------------
    @defer.inlineCallbacks
    def test_status_document_shows_the_running_proxy(self):
        """/api/status: listeners, routes, pools with members, spool, connections, workers;
        /status is the same document."""
        client = yield self.start()
        yield client.proxied(times=2)
        status, doc = yield client.get(b"/api/status")
        self.assertEqual(status, 200)
        self.assertEqual(doc["workers"], {"count": 1, "pid": os.getpid()})
        self.assertEqual(len(doc["listeners"]["proxy"]), 1)
        self.assertEqual(doc["routes"][0]["pools"], ["main"])
        members = doc["pools"]["main"]["members"]
        self.assertEqual(sorted(m["name"] for m in members), sorted(self.names))
        self.assertEqual(sum(m["requests"] for m in members), 2)
        for key in ("state", "in_flight", "ewma_ms", "weight", "ejections", "admin_state"):
            self.assertIn(key, members[0])
        self.assertEqual(set(doc["spool"]), {"memory_bytes", "disk_bytes", "memory_limit",
                                             "disk_limit"})
        self.assertIsNone(doc["firewall"])
        # Agent keeps its connection to the proxy alive: one idle keep-alive connection
        self.assertEqual(doc["connections"]["total"], 1)
        self.assertEqual(doc["connections"]["by_state"]["idle_keepalive"], 1)
        status, old = yield client.get(b"/status")
        self.assertEqual(set(old), set(doc))

    @defer.inlineCallbacks
    def test_stats_count_requests_by_class_and_member(self):
        """/api/stats: totals by status class, per-member counts and state, latency
        percentiles; counters only grow between polls."""
        client = yield self.start()
        yield client.proxied(times=4)
        status, first = yield client.get(b"/api/stats")
        self.assertEqual(status, 200)
        self.assertEqual(first["requests"]["total"], 4)
        self.assertEqual(first["requests"]["2xx"], 4)
        members = first["members"]["main"]
        self.assertEqual(sum(m["requests"] for m in members.values()), 4)
        self.assertEqual({m["state"] for m in members.values()}, {"healthy"})
        self.assertGreater(first["latency_ms"]["p50"], 0)
        self.assertGreaterEqual(first["latency_ms"]["p99"], first["latency_ms"]["p50"])
        self.assertGreater(first["upstream_latency_ms"]["p50"], 0)
        self.assertEqual(first["firewall"], {"blocked": 0, "detected": 0})
        yield client.proxied(times=2)
        _, second = yield client.get(b"/api/stats")
        self.assertEqual(second["requests"]["total"], 6)
        self.assertGreaterEqual(second["time"], first["time"])

    # -- member actions ------------------------------------------------------------------
    @defer.inlineCallbacks
    def test_drain_takes_a_member_out_and_enable_brings_it_back(self):
        """drain: no request reaches the member; enable: it serves again."""
        client = yield self.start()
        drained = self.members[0]
        status, body = yield client.post(member_path("main", self.names[0], "drain"))
        self.assertEqual((status, body["state"], body["admin_state"]),
                         (200, "draining", "draining"))
        before = drained.served
        yield client.proxied(times=6)
        self.assertEqual(drained.served, before)
        status, body = yield client.post(member_path("main", self.names[0], "enable"))
        self.assertEqual((status, body["state"]), (200, "healthy"))
        yield client.proxied(times=6)
        self.assertGreater(drained.served, before)

    @defer.inlineCallbacks
    def test_disable_takes_a_member_out_and_shows_in_the_stats(self):
        """disable: state "disabled" in /api/stats, no traffic."""
        client = yield self.start()
        status, body = yield client.post(member_path("main", self.names[1], "disable"))
        self.assertEqual((status, body["state"]), (200, "disabled"))
        before = self.members[1].served
        yield client.proxied(times=4)
        self.assertEqual(self.members[1].served, before)
        _, stats = yield client.get(b"/api/stats")
        self.assertEqual(stats["members"]["main"][self.names[1]]["state"], "disabled")

    @defer.inlineCallbacks
    def test_weight_by_json_body_and_query_string(self):
        """weight: JSON {"weight": N} or ?weight=N; null goes back to the configured one;
        bad values 400, unknown pool/member 404."""
        client = yield self.start(pool={"balance": "weighted-round-robin"})
        path = member_path("main", self.names[0], "weight")
        status, body = yield client.post(path, {"weight": 5})
        self.assertEqual((status, body["admin_weight"], body["weight"]), (200, 5, 5.0))
        yield client.proxied(times=6)
        self.assertEqual((self.members[0].served, self.members[1].served), (5, 1))
        status, body = yield client.post(path + b"?weight=2")
        self.assertEqual((status, body["admin_weight"]), (200, 2))
        status, body = yield client.post(path, {"weight": None})
        self.assertEqual((status, body["admin_weight"], body["weight"]), (200, None, 1.0))
        for bad in ({"weight": -1}, {"weight": "x"}, {"weight": 1001}, {}):
            status, body = yield client.post(path, bad)
            self.assertEqual(status, 400, bad)
            self.assertIn("weight", body["error"])
        status, _ = yield client.post(member_path("nope", self.names[0], "drain"))
        self.assertEqual(status, 404)
        status, body = yield client.post(member_path("main", "10.9.9.9:1", "drain"))
        self.assertEqual(status, 404)
        self.assertIn(self.names[0], body["error"])

    @defer.inlineCallbacks
    def test_overrides_survive_reloads_also_of_a_rebuilt_pool(self):
        """A drain and a weight stay through a reload of the unchanged pool and through one
        that rebuilds it (another connect_timeout)."""
        self.members, _ = start_members(self, count=2)
        path = os.path.abspath(self.mktemp())
        self.write_config(path, connect_timeout="5s")
        service = build(load_config(path), reactor, randbytes=lambda n: b"\x01" * n,
                        load=config_loader(path, [], [], None))
        service.startService()
        self.addCleanup(service.stopService)
        ports = yield service.listening
        client = Client(ports[0].getHost().port, ports[-1].getHost().port, testcase=self)
        names = ["127.0.0.1:%d" % m.port for m in self.members]
        yield client.post(member_path("main", names[0], "drain"))
        yield client.post(member_path("main", names[1], "weight"), {"weight": 7})
        old_pool = service.runtime.backends["main"]
        status, body = yield client.post(b"/api/reload")
        self.assertEqual((status, body["reloaded"]), (200, True))
        self.assertIs(service.runtime.backends["main"], old_pool)
        self.write_config(path, connect_timeout="6s")
        status, body = yield client.post(b"/api/reload")
        self.assertEqual((status, body["reloaded"], body["generation"]), (200, True, 2))
        self.assertIsNot(service.runtime.backends["main"], old_pool)
        yield client.proxied(times=3)  # the rebuilt pool gets its members from the resolver
        _, doc = yield client.get(b"/api/status")
        members = {m["name"]: m for m in doc["pools"]["main"]["members"]}
        self.assertEqual(members[names[0]]["state"], "draining")
        self.assertEqual(members[names[1]]["admin_weight"], 7)
        self.assertEqual(self.members[0].served, 0)

    def write_config(self, path, connect_timeout, extra=""):
        members = ", ".join('"http://127.0.0.1:%d"' % m.port for m in self.members)
        with open(path, "w") as f:
            f.write('[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                    '[logging]\naccess_log = ""\nerror_log = "-"\n'
                    '[buffering]\ntemp_dir = "%s"\n'
                    '[admin]\nlisten = ["tcp:0:interface=127.0.0.1"]\ntoken = "%s"\n'
                    '[pools.main]\nmembers = [%s]\nconnect_timeout = "%s"\n%s'
                    % (os.path.abspath("spool"), TOKEN.decode(), members, connect_timeout,
                       extra))

    # -- reload ----------------------------------------------------------------------------
    @defer.inlineCallbacks
    def test_reload_answers_whether_the_config_was_accepted(self):
        """A good file: reloaded, generation 1; a broken one: 409 with the file and key,
        the running config stays (the proxy still answers)."""
        self.members, _ = start_members(self, count=1)
        path = os.path.abspath(self.mktemp())
        self.write_config(path, "5s")
        service = build(load_config(path), reactor, randbytes=lambda n: b"\x01" * n,
                        load=config_loader(path, [], [], None))
        service.startService()
        self.addCleanup(service.stopService)
        ports = yield service.listening
        client = Client(ports[0].getHost().port, ports[-1].getHost().port, testcase=self)
        status, body = yield client.post(b"/api/reload")
        self.assertEqual((status, body), (200, {"reloaded": True, "generation": 1}))
        self.write_config(path, "five seconds")
        status, body = yield client.post(b"/api/reload")
        self.assertEqual((status, body["reloaded"], body["generation"]), (409, False, 1))
        self.assertIn(path, body["error"])
        self.assertIn("connect_timeout", body["error"])
        bodies = yield client.proxied()
        self.assertEqual(bodies, [b"%d" % self.members[0].port])

    # -- purge -----------------------------------------------------------------------------
    @defer.inlineCallbacks
    def test_purge_by_url_prefix_and_tag(self):
        """POST /api/purge with a JSON url, prefix or tag purges; the next GET misses;
        none or two selectors: 400; no cache: 409 (tested elsewhere for /purge)."""
        backend = Tagged()
        site = server.Site(backend)
        site.log = lambda request: None
        port = listen(site)
        self.addCleanup(port.stopListening)
        data = proxy_config([port.getHost().port], cache={"store": "memory"},
                            admin=admin_section())
        self.service, proxy_port = yield start_proxy(self, data)
        client = Client(self.service.ports[0].getHost().port, proxy_port, testcase=self)
        yield client.proxied(b"/a", times=2)
        self.assertEqual(backend.served, 1)
        host = "127.0.0.1:%d" % proxy_port
        status, body = yield client.post(b"/api/purge", {"url": "http://%s/a" % host})
        self.assertEqual((status, body["purged"]), (200, 1))
        yield client.proxied(b"/a")
        self.assertEqual(backend.served, 2)
        status, body = yield client.post(b"/api/purge", {"prefix": "http://%s/" % host})
        self.assertEqual((status, body["purged"]), (200, 1))
        yield client.proxied(b"/b")
        status, body = yield client.post(b"/api/purge?tag=t1")
        self.assertEqual((status, body["purged"]), (200, 1))
        for bad in ({}, {"url": "http://a/", "tag": "x"}, {"url": "ftp://a/"}):
            status, body = yield client.post(b"/api/purge", bad)
            self.assertEqual(status, 400, bad)
        _, stats = yield client.get(b"/api/stats")
        self.assertEqual(stats["cache"]["hits"], 1)

    @defer.inlineCallbacks
    def test_purge_without_a_cache_is_409(self):
        """No [cache] store: a purge is refused with 409."""
        client = yield self.start()
        status, body = yield client.post(b"/api/purge", {"tag": "x"})
        self.assertEqual(status, 409)
        self.assertIn("cache", body["error"])

    # -- OpenAPI ---------------------------------------------------------------------------
    @defer.inlineCallbacks
    def test_openapi_documents_every_route_and_every_documented_path_answers(self):
        """/openapi.json is OpenAPI 3.0; each documented path and method answers (not 404,
        not 405) with the parameters' examples; every route is documented."""
        client = yield self.start()
        status, doc = yield client.get(b"/openapi.json")
        self.assertEqual(status, 200)
        self.assertEqual(doc, json.loads(json.dumps(openapi_document())))
        self.assertTrue(doc["openapi"].startswith("3.0"))
        documented = set(doc["paths"])
        for pattern in default_routes().patterns():
            if "{action}" in pattern:
                for action in ("drain", "enable", "disable", "weight"):
                    self.assertIn(pattern.replace("{action}", action), documented)
            else:
                self.assertIn(pattern, documented)
        for path, operations in sorted(doc["paths"].items()):
            concrete = path.replace("{pool}", "main").replace(
                "{member}", quote(self.names[0], safe=""))
            for method in operations:
                body = {"weight": 3} if path.endswith("/weight") else None
                if path in ("/api/purge", "/purge"):
                    concrete += "?tag=x"
                response, data = yield client.call(method.upper().encode(),
                                                   concrete.encode("ascii"), body, raw=True)
                self.assertNotIn(response.code, (404, 405), (method, path, data[:200]))
                self.assertLess(response.code, 500, (method, path, data[:200]))

    # -- metrics ---------------------------------------------------------------------------
    @defer.inlineCallbacks
    def test_metrics_parse_and_every_family_is_there(self):
        """/metrics parses with prometheus_client's parser; every family is present with
        the counts the traffic made (requests, histograms, members, cache, spool,
        connections, cuts, rate limits, reloads)."""
        client = yield self.start(cache={"store": "memory"}, extra={"rate_limits": [
            {"name": "slow-down", "rate": "1000/s", "burst": 1000}]})
        yield client.proxied(times=3)
        yield client.post(b"/api/reload")
        response, text = yield client.call(b"GET", b"/metrics", raw=True)
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders(b"content-type")[0]
                        .startswith(b"text/plain"))
        families = {f.name: f for f in text_string_to_metric_families(text.decode("utf-8"))}

        def samples(name, suffix="", **labels):
            return [s for s in families[name].samples if s.name == name + suffix
                    and all(s.labels.get(k) == v for k, v in labels.items())]

        def total(name, suffix="", **labels):
            return sum(s.value for s in samples(name, suffix, **labels))

        self.assertEqual(total("revproxy_requests", "_total", code_class="2xx",
                               route="default", pool="main"), 3)
        self.assertEqual(total("revproxy_request_duration_seconds", "_count",
                               route="default"), 3)
        self.assertEqual(total("revproxy_request_duration_seconds", "_bucket", le="+Inf"), 3)
        self.assertEqual(total("revproxy_upstream_duration_seconds", "_count", pool="main"), 3)
        self.assertEqual(total("revproxy_upstream_retries", "_total"), 0)
        self.assertEqual(total("revproxy_member_up", pool="main"), 2)
        self.assertEqual(total("revproxy_member_state", state="healthy"), 2)
        self.assertEqual(total("revproxy_member_in_flight"), 0)
        self.assertEqual(total("revproxy_member_weight"), 2)
        self.assertGreater(total("revproxy_member_ewma_seconds"), 0)
        self.assertGreaterEqual(total("revproxy_member_connections", kind="open"), 1)
        self.assertEqual(total("revproxy_upstream_requests", "_total"), 3)
        self.assertEqual(total("revproxy_upstream_failures", "_total"), 0)
        self.assertEqual(total("revproxy_upstream_connect_errors", "_total"), 0)
        self.assertEqual(total("revproxy_member_ejections", "_total"), 0)
        self.assertEqual(total("revproxy_pool_members", pool="main"), 2)
        self.assertEqual(total("revproxy_pool_queue_size", pool="main"), 0)
        self.assertEqual(total("revproxy_pool_panic", pool="main"), 0)
        self.assertEqual(total("revproxy_cache_lookups", "_total", result="miss"), 3)
        self.assertEqual(total("revproxy_cache_lookups", "_total", result="hit"), 0)
        for name in ("revproxy_cache_stores", "revproxy_cache_stored_bytes",
                     "revproxy_cache_not_stored", "revproxy_cache_revalidations",
                     "revproxy_cache_collapsed", "revproxy_cache_invalidations",
                     "revproxy_cache_evictions", "revproxy_cache_expirations"):
            self.assertEqual(len(samples(name, "_total")), 1, name)
        self.assertEqual(total("revproxy_cache_entries"), 0)  # the members send no-store-ish
        self.assertEqual(len(samples("revproxy_spool_bytes")), 2)
        self.assertEqual(total("revproxy_connections", state="idle_keepalive"), 1)
        self.assertEqual(total("revproxy_connections_shed", "_total"), 0)
        self.assertEqual(len(samples("revproxy_slow_client_cuts", "_total")), 2)
        self.assertEqual(total("revproxy_rate_limit_requests", "_total", limit="slow-down",
                               outcome="admitted"), 3)
        self.assertEqual(total("revproxy_reloads", "_total"), 1)
        self.assertNotIn("revproxy_firewall_requests", families)

    @defer.inlineCallbacks
    def test_connect_errors_and_retries_are_counted(self):
        """A member that refuses connections: its connect errors and the retries on the
        other member show in /metrics and its failures in the status."""
        members, ports = start_members(self, count=1)
        dead = listen(server.Site(resource.Resource()))
        dead_port = dead.getHost().port
        yield dead.stopListening()
        data = proxy_config([members[0].port, dead_port], admin=admin_section())
        data["pools"]["main"]["outlier"] = {"consecutive_failures": 0}
        self.service, proxy_port = yield start_proxy(self, data)
        client = Client(self.service.ports[0].getHost().port, proxy_port, testcase=self)
        yield client.proxied(times=4)
        response, text = yield client.call(b"GET", b"/metrics", raw=True)
        families = {f.name: f for f in text_string_to_metric_families(text.decode("utf-8"))}
        dead_name = "127.0.0.1:%d" % dead_port
        errors = [s.value for s in families["revproxy_upstream_connect_errors"].samples
                  if s.labels["member"] == dead_name]
        self.assertEqual(errors, [2.0])
        retries = sum(s.value for s in families["revproxy_upstream_retries"].samples)
        self.assertEqual(retries, 2)
        _, doc = yield client.get(b"/api/status")
        members = {m["name"]: m for m in doc["pools"]["main"]["members"]}
        self.assertEqual(members[dead_name]["connect_errors"], 2)
        self.assertEqual(members[dead_name]["failures"], 2)


class AdminFirewallTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_firewall_blocks_show_in_stats_status_and_metrics(self):
        """A [firewall] with a deny_paths Python rule: a blocked request counts in
        /api/stats firewall.blocked, in the status and in revproxy_firewall_requests_total."""
        members, _ = start_members(self, count=1)
        data = proxy_config([members[0].port], admin=admin_section(), firewall={
            "mode": "on", "crs": "",
            "python": [{"plugin": "deny_paths", "options": {"prefixes": "/.git"}}]})
        service, port = yield start_proxy(self, data)
        client = Client(service.ports[0].getHost().port, port, testcase=self)
        yield client.proxied(b"/.git/config")
        yield client.proxied(b"/fine")
        _, stats = yield client.get(b"/api/stats")
        self.assertEqual(stats["firewall"], {"blocked": 1, "detected": 0})
        self.assertEqual(stats["requests"]["4xx"], 1)
        _, status = yield client.get(b"/api/status")
        self.assertEqual(status["firewall"]["blocked"], 1)
        response, text = yield client.call(b"GET", b"/metrics", raw=True)
        families = {f.name: f for f in text_string_to_metric_families(text.decode("utf-8"))}
        values = {s.labels["outcome"]: s.value
                  for s in families["revproxy_firewall_requests"].samples}
        self.assertEqual(values["blocked"], 1)
        self.assertGreaterEqual(values["evaluated"], 2)
