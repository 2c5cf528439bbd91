"""Every built-in policy against the IBalancer contract; the registry of policies by name."""

from __future__ import annotations

from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.plugin import IPlugin
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from revproxy.balancing.registry import UnknownBalancerError, balancer_factories, build_balancer
from revproxy.interfaces import IBalancerFactory
from revproxy.testing import BalancerContractMixin, FakeMember, FakeRequest

BUILTIN_NAMES = ["consistent-hash", "least-connections", "peak-ewma", "round-robin",
                 "weighted-round-robin"]


class RoundRobinContractTests(BalancerContractMixin, unittest.TestCase):
    def make_balancer(self):
        return build_balancer("round-robin", {}, Random(1))


class WeightedRoundRobinContractTests(BalancerContractMixin, unittest.TestCase):
    def make_balancer(self):
        return build_balancer("weighted-round-robin", {}, Random(1))


class LeastConnectionsContractTests(BalancerContractMixin, unittest.TestCase):
    def make_balancer(self):
        return build_balancer("least-connections", {}, Random(1))


class PeakEwmaContractTests(BalancerContractMixin, unittest.TestCase):
    def make_balancer(self):
        return build_balancer("peak-ewma", {"default_rtt": 0.002}, Random(1))


class ConsistentHashContractTests(BalancerContractMixin, unittest.TestCase):
    def make_balancer(self):
        return build_balancer("consistent-hash", {}, Random(1))


class ConsistentHashByHeaderContractTests(BalancerContractMixin, unittest.TestCase):
    def make_balancer(self):
        return build_balancer("consistent-hash", {"key": "header:x-user", "vnodes": 20}, Random(1))


members_strategy = st.lists(
    st.builds(
        FakeMember,
        name=st.just(""),
        weight=st.floats(0.01, 20.0),
        in_flight=st.integers(0, 1000),
        ewma=st.one_of(st.just(0.0), st.floats(1e-6, 60.0)),
    ),
    min_size=1, max_size=12,
)


class AnyPolicyTests(unittest.TestCase):
    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from(BUILTIN_NAMES), members_strategy, st.data())
    def test_pick_is_always_a_candidate(self, name, members, data):
        """Any policy, any member stats, any non-empty subset: pick returns a candidate."""
        for i, member in enumerate(members):
            member.name = "10.1.0.%d:8080" % i
        balancer = build_balancer(name, {}, Random(data.draw(st.integers(0, 2 ** 32))))
        balancer.set_members(members)
        for _ in range(5):
            candidates = data.draw(st.lists(st.sampled_from(members), min_size=1, unique=True))
            request = FakeRequest(client_ip=data.draw(st.ip_addresses(v=4).map(str)))
            chosen = balancer.pick(candidates, request)
            self.assertTrue(any(chosen is c for c in candidates))


class RegistryTests(unittest.TestCase):
    def test_builtins_are_registered_plugins(self):
        """The five built-ins are found by name, each an IPlugin and a valid IBalancerFactory
        with a one-line description."""
        factories = balancer_factories()
        for name in BUILTIN_NAMES:
            factory = factories[name]
            self.assertTrue(verifyObject(IBalancerFactory, factory))
            self.assertTrue(IPlugin.providedBy(factory))
            self.assertEqual(factory.name, name)
            self.assertTrue(factory.description and "\n" not in factory.description)

    def test_built_policy_carries_the_configured_name(self):
        """build_balancer(name) gives a policy whose name is that name."""
        for name in BUILTIN_NAMES:
            self.assertEqual(build_balancer(name, {}, Random(0)).name, name)

    def test_unknown_name_lists_the_known_ones(self):
        """An unknown name is a KeyError and a ValueError whose message lists every name."""
        error = self.assertRaises(KeyError, build_balancer, "fastest", {}, Random(0))
        self.assertIsInstance(error, ValueError)
        message = str(error)
        self.assertIn("'fastest'", message)
        for name in BUILTIN_NAMES:
            self.assertIn(name, message)
        self.assertIsInstance(error, UnknownBalancerError)

    def test_options_reach_the_policy(self):
        """Options given as a dict or as the config's sorted pairs configure the policy;
        bad ones are the policy's ValueError."""
        self.assertEqual(build_balancer("consistent-hash", {"vnodes": 7}, Random(0)).vnodes, 7)
        built = build_balancer("consistent-hash", (("key", "path"), ("vnodes", 9)), Random(0))
        self.assertEqual((built.key_kind, built.vnodes), ("path", 9))
        self.assertRaises(ValueError, build_balancer, "round-robin", {"x": 1}, Random(0))

    def test_a_factory_building_a_non_balancer_is_refused(self):
        """A plugin whose build returns something without IBalancer: TypeError naming it."""

        class Broken:
            name = "broken"
            description = "returns a string"

            def build(self, options, random):
                return "not a balancer"

        error = self.assertRaises(TypeError, build_balancer, "broken", {}, Random(0),
                                  factories={"broken": Broken()})
        self.assertIn("broken", str(error))
