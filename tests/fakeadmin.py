"""A fake admin API serving the documented JSON shapes (docs/admin.md), for the dashboard
and ctl tests: counters that the test moves, a log of the POSTs it received, an optional
bearer token. The real admin listener is tested by its own integration tests."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote

from twisted.web import resource, server

from revproxy.admin.dashboard import with_dashboard


class FakeAdmin(resource.Resource):
    isLeaf = True

    def __init__(self, token=None, pools=None):
        resource.Resource.__init__(self)
        self.token = token
        self.posts = []  # (path, query args, JSON body or None)
        self.reload_error = None  # a reload answers refused with this error
        self.pools = pools or {"main": ["127.0.0.1:8001", "127.0.0.1:8002"]}
        self.counts = {"total": 0, "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
        self.member_counts = {(p, m): [0, 0] for p, ms in self.pools.items() for m in ms}
        self.states = {(p, m): "healthy" for p, ms in self.pools.items() for m in ms}
        self.weights = {(p, m): 1.0 for p, ms in self.pools.items() for m in ms}
        self.cache = {"hits": 0, "misses": 0, "stale": 0}
        self.blocked = 0

    def traffic(self, count, status_class="2xx", hits=0):
        """``count`` requests answered with ``status_class``, spread over the members."""
        self.counts["total"] += count
        self.counts[status_class] += count
        members = sorted(self.member_counts)
        for i in range(count):
            entry = self.member_counts[members[i % len(members)]]
            entry[0] += 1
            if status_class == "5xx":
                entry[1] += 1
        self.cache["hits"] += hits
        self.cache["misses"] += count - hits

    # -- documents -------------------------------------------------------------------------
    def stats(self):
        lookups = self.cache["hits"] + self.cache["misses"]
        members = {}
        for (pool, member), (requests, errors) in sorted(self.member_counts.items()):
            members.setdefault(pool, {})[member] = {
                "state": self.states[(pool, member)], "requests": requests, "errors": errors,
                "inflight": 0}
        return {
            "time": time.time(), "requests": dict(self.counts),
            "latency_ms": {"p50": 1.5, "p90": 3.0, "p99": 9.0},
            "upstream_latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 8.0},
            "members": members,
            "cache": dict(self.cache, ratio=self.cache["hits"] / lookups if lookups else 0.0),
            "firewall": {"blocked": self.blocked, "detected": 0},
            "rate_limited": 0, "connections": 1,
        }

    def status(self):
        return {
            "source": "<fake>",
            "listeners": {"proxy": ["tcp:8080:interface=127.0.0.1"],
                          "admin": ["tcp:9901:interface=127.0.0.1"]},
            "routes": [{"name": "default", "pools": ["main"]}],
            "pools": {pool: {"policy": "round-robin", "queued": 0, "members": [
                {"name": m, "state": self.states[(pool, m)], "in_flight": 0, "ewma_ms": 1.25,
                 "weight": self.weights[(pool, m)], "ejections": 0} for m in members]}
                for pool, members in self.pools.items()},
            "cache": {"store": "memory", "entries": 0, "bytes": 0, "hit_ratio": 0.5},
            "connections": {"total": 3, "by_state": {"idle": 2, "reading_head": 0,
                                                     "in_request": 1}},
            "workers": {"count": 1, "pid": 4242},
        }

    # -- HTTP ------------------------------------------------------------------------------
    def render(self, request):
        request.setHeader(b"content-type", b"application/json")
        if self.token is not None and request.getHeader(b"authorization") != (
                b"Bearer " + self.token.encode()):
            return self._answer(request, 401, {"error": "unauthorized"})
        path = request.path.decode()
        if request.method == b"GET":
            if path == "/api/stats":
                return self._answer(request, 200, self.stats())
            if path == "/api/status":
                return self._answer(request, 200, self.status())
            return self._answer(request, 404, {"error": "not found: " + path})
        body = request.content.read()
        document = json.loads(body) if body else None
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        args.update(document or {})
        self.posts.append((path, args, document))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "members"] and len(parts) == 5:
            key = (parts[2], parts[3])
            if key not in self.states:
                return self._answer(request, 404, {"error": "no member %s/%s" % key})
            if parts[4] == "weight":
                self.weights[key] = args["weight"]
            else:
                self.states[key] = {"drain": "draining", "enable": "healthy",
                                    "disable": "disabled"}[parts[4]]
            return self._answer(request, 200, {"pool": key[0], "member": key[1],
                                               "state": self.states[key],
                                               "weight": self.weights[key]})
        if path == "/api/purge":
            return self._answer(request, 200, {"purged": 3})
        if path == "/api/reload":
            if self.reload_error:
                return self._answer(request, 409, {"reloaded": False, "generation": 0,
                                                   "error": self.reload_error})
            return self._answer(request, 200, {"reloaded": True, "generation": 1})
        return self._answer(request, 404, {"error": "not found: " + path})

    def _answer(self, request, code, document):
        request.setResponseCode(code)
        return json.dumps(document).encode() + b"\n"


def fake_admin_site(fake):
    site = server.Site(with_dashboard(fake))
    site.log = lambda request: None
    return site
