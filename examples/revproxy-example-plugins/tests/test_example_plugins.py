"""The example plugins: each passes revproxy's contract mixin for its kind, behaves as its
docstring says, refuses bad options, and is discovered by name through twisted.plugin."""

from __future__ import annotations

from collections import Counter
from random import Random

from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.testing import BalancerContractMixin, FakeMember, FakeRequest
from revproxy.testing.hooks import RequestHookContractMixin, fake_context
from revproxy.testing.stores import CacheStoreContractMixin, sample_entry
from revproxy.testing.firewall import FirewallRuleContractMixin, fake_firewall_request
from revproxy_examples import balancer, firewall_rule, hook, store


class WeightedRandomContractTests(BalancerContractMixin, unittest.TestCase):
    def make_balancer(self):
        return balancer.build({}, Random(1))


class WeightedRandomTests(unittest.TestCase):
    def test_shares_follow_weights(self):
        """Weights 1 and 3: about a quarter and three quarters of 4 000 picks."""
        members = [FakeMember("a", weight=1), FakeMember("b", weight=3)]
        policy = balancer.build({}, Random(7))
        policy.set_members(members)
        counts = Counter(policy.pick(members, FakeRequest()).name for _ in range(4000))
        self.assertLess(abs(counts["b"] / 4000 - 0.75), 0.03, counts)  # seeded: reproducible

    def test_options_refused(self):
        with self.assertRaises(ValueError):
            balancer.build({"x": 1}, Random(1))


class TTLCapContractTests(CacheStoreContractMixin, unittest.TestCase):
    def make_store(self, max_bytes, max_object):
        return store.build({"max_bytes": max_bytes, "max_object": max_object,
                            "max_ttl": 10 ** 6}, self.clock)


class TTLCapTests(unittest.TestCase):
    def test_values_expire_at_max_ttl(self):
        """A value put for an hour is gone after max_ttl seconds."""
        clock = Clock()
        capped = store.build({"max_ttl": 30}, clock)
        self.assertTrue(self.successResultOf(capped.put(b"k", sample_entry(b"k"), 3600.0)))
        clock.advance(29)
        self.assertIsNotNone(self.successResultOf(capped.get(b"k")))
        clock.advance(2)
        self.assertIsNone(self.successResultOf(capped.get(b"k")))
        self.assertEqual(capped.stats()["max_ttl"], 30.0)

    def test_bad_options(self):
        for options in ({"max_ttl": 0}, {"max_ttl": "1h"}, {"max_ttl": True}, {"colour": 1}):
            with self.assertRaises(ValueError):
                store.build(options, Clock())


class MaintenanceContractTests(RequestHookContractMixin, unittest.TestCase):
    def make_hook(self):
        return hook.build({"paths": ["/shop/"], "retry_after": 60}, Clock())


class MaintenanceTests(unittest.TestCase):
    def test_answers_503_under_the_prefixes_only(self):
        maintenance = hook.build({"paths": ["/shop/"], "retry_after": 60}, Clock())
        answer = maintenance.request_head(fake_context(b"GET /shop/cart HTTP/1.1\r\nHost: a\r\n\r\n"))
        self.assertEqual(answer.status, 503)
        self.assertIn((b"retry-after", b"60"), answer.headers)
        self.assertIsNone(maintenance.request_head(fake_context(b"GET /blog HTTP/1.1\r\nHost: a\r\n\r\n")))

    def test_bad_options(self):
        for options in ({}, {"paths": "/shop/"}, {"paths": ["shop"]},
                        {"paths": ["/a"], "retry_after": -1}, {"paths": ["/a"], "x": 1}):
            with self.assertRaises(ValueError):
                hook.build(options, Clock())


class JSONDepthContractTests(FirewallRuleContractMixin, unittest.TestCase):
    def make_rule(self):
        return firewall_rule.build({"max_depth": 3}, Clock())


def json_request(body: bytes):
    return fake_firewall_request(
        b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body), body)


class JSONDepthTests(unittest.TestCase):
    def test_deep_json_denied_shallow_allowed(self):
        rule = firewall_rule.build({"max_depth": 3}, Clock())
        self.assertEqual(rule.evaluate(json_request(b'{"a": [{"b": 1}]}')).kind, "allow")
        verdict = rule.evaluate(json_request(b'{"a": [{"b": [1]}]}'))
        self.assertEqual((verdict.kind, verdict.status), ("deny", 400))
        self.assertEqual(rule.evaluate(json_request(b"[[[[")).kind, "allow")  # not JSON

    def test_depth_stops_early_and_needs_no_recursion(self):
        """100 000 nested arrays: no RecursionError, the count stops past the limit."""
        deep = []
        for _ in range(100000):
            deep = [deep]
        self.assertEqual(firewall_rule.depth(deep, 20), 21)
        self.assertEqual(firewall_rule.depth({"a": [1, {"b": []}]}, 20), 4)
        self.assertEqual(firewall_rule.depth("text", 20), 0)

    def test_bad_options(self):
        for options in ({"max_depth": 0}, {"max_depth": "9"}, {"status": 503}, {"x": 1}):
            with self.assertRaises(ValueError):
                firewall_rule.build(options, Clock())


class DiscoveryTests(unittest.TestCase):
    def test_revproxy_finds_each_by_name(self):
        """With the package installed, the registries know the three names."""
        from revproxy.balancing.registry import balancer_factories
        from revproxy.cache.registry import store_factories
        from revproxy.pipeline.registry import hook_factories

        self.assertIn("example-weighted-random", balancer_factories())
        self.assertIn("example-ttl-cap", store_factories())
        self.assertIn("example-maintenance", hook_factories())
        from revproxy.firewall.pyrules import firewall_rule_factories

        self.assertIn("example-json-depth", firewall_rule_factories())
