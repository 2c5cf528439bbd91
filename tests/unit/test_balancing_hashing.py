"""Consistent hashing: stable keys, minimal remapping, failover to the next member, key kinds."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.balancing.hashing import ConsistentHashBalancer, stable_hash
from revproxy.testing import FakeMember, FakeRequest

KEYS = 10000


def members_of(count, start=0):
    return [FakeMember("10.0.0.%d:80" % i) for i in range(start, start + count)]


def client(i):
    return FakeRequest(client_ip="10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255))


REQUESTS = [client(i) for i in range(KEYS)]


def mapping(members, candidates=None, requests=REQUESTS, **options):
    """The member name each request maps to."""
    balancer = ConsistentHashBalancer(options)
    balancer.set_members(members)
    return [balancer.pick(candidates or members, r).name for r in requests]


class StabilityTests(unittest.TestCase):
    def test_hash_is_fixed_across_processes(self):
        """stable_hash is blake2b-64, not the per-process salted hash(): a known value."""
        self.assertEqual(stable_hash(b"abc"), 15617099051652453721)

    def test_known_key_maps_to_known_member(self):
        """A fixed key and member set map to the same member on every machine."""
        balancer = ConsistentHashBalancer({})
        members = members_of(10)
        balancer.set_members(members)
        self.assertEqual(balancer.pick(members, FakeRequest("192.0.2.1")).name, "10.0.0.2:80")

    @settings(max_examples=100, deadline=None)
    @given(st.integers(1, 8), st.ip_addresses(v=4).map(str))
    def test_same_key_same_member(self, count, ip):
        """The same client address maps to the same member, again, and in a new balancer
        given the members in another order."""
        members = members_of(count)
        first = ConsistentHashBalancer({})
        first.set_members(members)
        chosen = first.pick(members, FakeRequest(ip))
        self.assertIs(first.pick(members, FakeRequest(ip)), chosen)
        second = ConsistentHashBalancer({})
        others = list(reversed(members_of(count)))
        second.set_members(others)
        self.assertEqual(second.pick(others, FakeRequest(ip)).name, chosen.name)


class RemappingTests(unittest.TestCase):
    def test_adding_one_of_n_moves_about_one_nth_to_it_only(self):
        """Adding a member to N-1 moves 0.5/N..1.5/N of 10 000 keys, all onto the new member
        (measured: 0.348 of keys for N=3, 0.200 for N=5, 0.097 for N=10, 0.037 for N=20)."""
        for count in (3, 5, 10, 20):
            members = members_of(count)
            before, after = mapping(members[:-1]), mapping(members)
            moved = [b for b, a in zip(before, after) if a != b]
            self.assertTrue(0.5 / count <= len(moved) / KEYS <= 1.5 / count, (count, len(moved)))
            self.assertEqual({a for b, a in zip(before, after) if a != b}, {members[-1].name})

    def test_removing_one_of_n_moves_only_its_keys(self):
        """Removing a member moves exactly the keys it had (about 1/N), and no other key."""
        for count in (3, 5, 10, 20):
            members = members_of(count)
            before, after = mapping(members), mapping(members[1:])
            moved = [i for i in range(KEYS) if before[i] != after[i]]
            self.assertEqual(moved, [i for i in range(KEYS) if before[i] == members[0].name])
            self.assertTrue(0.5 / count <= len(moved) / KEYS <= 1.5 / count, (count, len(moved)))

    @settings(max_examples=40, deadline=None)
    @given(st.integers(2, 8), st.data())
    def test_a_member_out_hands_only_its_keys_on(self, count, data):
        """A member that is not a candidate: only its keys move; back, they return."""
        members = members_of(count)
        out = data.draw(st.sampled_from(members))
        candidates = [m for m in members if m is not out]
        requests = REQUESTS[:500]
        balancer = ConsistentHashBalancer({})
        balancer.set_members(members)
        before = [balancer.pick(members, r).name for r in requests]
        during = [balancer.pick(candidates, r).name for r in requests]
        after = [balancer.pick(members, r).name for r in requests]
        for b, d in zip(before, during):
            if b == out.name:
                self.assertNotEqual(d, out.name)
            else:
                self.assertEqual(d, b)
        self.assertEqual(after, before)

    def test_weight_multiplies_the_share(self):
        """Weights 3, 1, 1 give about 60/20/20 % of keys."""
        members = [FakeMember("a", 3), FakeMember("b"), FakeMember("c")]
        counts = Counter(mapping(members))
        self.assertTrue(0.55 <= counts["a"] / KEYS <= 0.66, counts)
        self.assertTrue(0.15 <= counts["b"] / KEYS <= 0.25, counts)

    def test_small_weights_round_to_at_least_one(self):
        """A weight under 0.5 still gets one unit of vnodes: equal to weight 1."""
        light = [FakeMember("a", 0.2), FakeMember("b")]
        even = [FakeMember("a", 1.0), FakeMember("b")]
        requests = REQUESTS[:500]
        self.assertEqual(mapping(light, requests=requests), mapping(even, requests=requests))

    def test_more_vnodes_even_out_the_shares(self):
        """With 10 members, 160 vnodes keep every share within 25% of 1/10; 1 vnode does not."""
        members = members_of(10)
        spread = {}
        for vnodes in (1, 160):
            counts = Counter(mapping(members, vnodes=vnodes))
            spread[vnodes] = max(abs(counts[m.name] * 10 / KEYS - 1) for m in members)
        self.assertLess(spread[160], 0.25)
        self.assertGreater(spread[1], spread[160])


class KeyTests(unittest.TestCase):
    def pick_for(self, options, requests):
        balancer = ConsistentHashBalancer(options)
        members = members_of(20)
        balancer.set_members(members)
        return [balancer.pick(members, r).name for r in requests]

    def test_path_key_ignores_the_client(self):
        """key = "path": the same path from 50 clients goes to one member; paths spread."""
        same = [FakeRequest("10.0.1.%d" % i, path="/a") for i in range(50)]
        self.assertEqual(len(set(self.pick_for({"key": "path"}, same))), 1)
        paths = [FakeRequest(path="/p%d" % i) for i in range(50)]
        self.assertGreater(len(set(self.pick_for({"key": "path"}, paths))), 5)

    def test_header_key_and_fallback_to_client_ip(self):
        """key = "header:X-User": the header's value decides (any case of the name in the
        option); a request without it hashes like its client address."""
        users = [FakeRequest("10.0.1.%d" % i, headers={"x-user": "bob"}) for i in range(50)]
        self.assertEqual(len(set(self.pick_for({"key": "header:X-User"}, users))), 1)
        bare = [client(i) for i in range(50)]
        self.assertEqual(self.pick_for({"key": "header:X-User"}, bare), self.pick_for({}, bare))

    def test_cookie_key_and_fallback_to_client_ip(self):
        """key = "cookie:sid": the cookie's value decides; without it, the client address."""
        sessions = [FakeRequest("10.0.1.%d" % i, cookies={"sid": "s1"}) for i in range(50)]
        self.assertEqual(len(set(self.pick_for({"key": "cookie:sid"}, sessions))), 1)
        bare = [client(i) for i in range(50)]
        self.assertEqual(self.pick_for({"key": "cookie:sid"}, bare), self.pick_for({}, bare))

    def test_note_names_the_key_kind_not_its_value(self):
        """The note shows the key kind and hash, never the (maybe secret) cookie value."""
        request = FakeRequest(cookies={"sid": "secret-value"})
        balancer = ConsistentHashBalancer({"key": "cookie:sid"})
        members = members_of(3)
        balancer.set_members(members)
        chosen = balancer.pick(members, request)
        self.assertEqual(len(request.notes), 1)
        self.assertTrue(request.notes[0].startswith("cookie hash "))
        self.assertTrue(request.notes[0].endswith("-> " + chosen.name))
        self.assertNotIn("secret", request.notes[0])

    def test_bad_options_are_readable_value_errors(self):
        """Unknown key kinds, empty names, bad vnodes and unknown options are ValueErrors."""
        for options, word in (({"key": "host"}, "key"), ({"key": "header:"}, "key"),
                              ({"key": 3}, "key"), ({"vnodes": 0}, "vnodes"),
                              ({"vnodes": "160"}, "vnodes"), ({"vnodes": True}, "vnodes"),
                              ({"replicas": 3}, "replicas")):
            error = self.assertRaises(ValueError, ConsistentHashBalancer, options)
            self.assertIn(word, str(error))
