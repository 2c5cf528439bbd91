"""Fakes and the contract-test mixin for ``IBalancer`` plugins."""

from __future__ import annotations

from random import Random

from zope.interface import implementer
from zope.interface.verify import verifyObject

from revproxy.interfaces import IBalancer, IMember, IRequestFacts


def _as_bytes(value):
    return value.encode("latin-1") if isinstance(value, str) else value


@implementer(IMember)
class FakeMember:
    """An ``IMember`` whose statistics a test sets directly."""

    def __init__(self, name, weight=1.0, in_flight=0, ewma=0.0):
        self.name = name
        self.weight = weight
        self.in_flight = in_flight
        self.ewma = ewma

    def __repr__(self):
        return "<FakeMember %s w=%g in_flight=%d ewma=%g>" % (
            self.name, self.weight, self.in_flight, self.ewma)


@implementer(IRequestFacts)
class FakeRequest:
    """An ``IRequestFacts``. ``headers`` and ``cookies`` map names to values (str or bytes;
    header names are matched case-insensitively). Notes are formatted at once into
    ``notes``, so a bad format string fails the test that made it."""

    def __init__(self, client_ip="192.0.2.1", host=b"example.test", path="/", headers=None,
                 cookies=None):
        self.client_ip = client_ip
        self.host = host
        self.path = path
        self.headers = {_as_bytes(k).lower(): _as_bytes(v) for k, v in (headers or {}).items()}
        self.cookies = {_as_bytes(k): _as_bytes(v) for k, v in (cookies or {}).items()}
        self.notes = []

    def header(self, name):
        return self.headers.get(name)

    def cookie(self, name):
        return self.cookies.get(name)

    def note(self, fmt, *args):
        self.notes.append(fmt % args)


def fake_members(count, prefix="10.0.0."):
    """``count`` equal members named ``<prefix><n>:80``, n from 1."""
    return [FakeMember("%s%d:80" % (prefix, i + 1)) for i in range(count)]


def varied_request(i):
    """The ``i``-th of a series of requests differing in client address and path, so
    key-hashing policies spread them too."""
    return FakeRequest(
        client_ip="10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255),
        path="/item/%d" % i,
    )


class BalancerContractMixin:
    """The ``IBalancer`` contract, as tests. Mix into a ``twisted.trial.unittest.TestCase``
    and define ``make_balancer(self)`` returning a fresh, seeded policy."""

    def make_balancer(self):
        raise NotImplementedError("define make_balancer() returning a fresh IBalancer")

    def assert_picks_a_candidate(self, balancer, candidates, request):
        chosen = balancer.pick(candidates, request)
        self.assertTrue(
            any(chosen is c for c in candidates),
            "%r picked %r, not one of %r" % (balancer, chosen, candidates),
        )
        return chosen

    def test_provides_ibalancer(self):
        """The policy provides IBalancer (verifyObject) and has a non-empty str name."""
        balancer = self.make_balancer()
        self.assertTrue(verifyObject(IBalancer, balancer))
        self.assertIsInstance(balancer.name, str)
        self.assertTrue(balancer.name)

    def test_picks_a_candidate_of_one_two_or_five(self):
        """With 1, 2 and 5 members, 200 picks each return one of the candidates."""
        for count in (1, 2, 5):
            balancer = self.make_balancer()
            members = fake_members(count)
            balancer.set_members(members)
            for i in range(200):
                self.assert_picks_a_candidate(balancer, members, varied_request(i))

    def test_never_picks_outside_a_strict_subset(self):
        """When the candidates are some of the members, picks stay among them."""
        balancer = self.make_balancer()
        members = fake_members(6)
        balancer.set_members(members)
        subsets = [members[1:2], members[::2], members[1:], members[:5], [members[5], members[0]]]
        for i in range(500):
            self.assert_picks_a_candidate(balancer, subsets[i % len(subsets)], varied_request(i))

    def test_survives_members_added_and_removed(self):
        """set_members between picks (growing, shrinking, replacing) keeps picks valid."""
        balancer = self.make_balancer()
        old = fake_members(4)
        new = fake_members(3, prefix="10.0.1.")
        for step, members in enumerate([old, old + new, new, old[:1], old[1:] + new[:1], old]):
            balancer.set_members(members)
            for i in range(50):
                request = varied_request(step * 50 + i)
                self.assert_picks_a_candidate(balancer, members, request)
                self.assert_picks_a_candidate(balancer, members[-1:], request)

    def test_no_candidate_starves_with_equal_stats(self):
        """Over 1 000 picks with equal weights and stats, every candidate is chosen."""
        for ewma in (0.0, 0.01):
            balancer = self.make_balancer()
            members = [FakeMember(m.name, ewma=ewma) for m in fake_members(5)]
            balancer.set_members(members)
            for candidates in (members, members[1:4]):
                chosen = {balancer.pick(candidates, varied_request(i)).name for i in range(1000)}
                self.assertEqual(chosen, {c.name for c in candidates})

    def test_started_and_finished_in_any_order(self):
        """Overlapping requests ending in a shuffled order, ok or not, never raise."""
        rng = Random(7)
        balancer = self.make_balancer()
        members = fake_members(4)
        balancer.set_members(members)
        open_requests = []
        for i in range(300):
            member = self.assert_picks_a_candidate(balancer, members, varied_request(i))
            balancer.started(member)
            member.in_flight += 1
            open_requests.append(member)
            if rng.random() < 0.5:
                done = open_requests.pop(rng.randrange(len(open_requests)))
                done.in_flight -= 1
                balancer.finished(done, rng.random() < 0.8, rng.uniform(0.0, 2.0))
        rng.shuffle(open_requests)
        for member in open_requests:
            member.in_flight -= 1
            balancer.finished(member, False, 0.0)

    def test_varied_stats_keep_picks_in_candidates(self):
        """With random weights, loads and EWMAs and random subsets, picks stay valid."""
        rng = Random(11)
        balancer = self.make_balancer()
        members = [
            FakeMember("10.0.2.%d:80" % i, weight=rng.choice([0.1, 0.5, 1.0, 3.0, 100.0]),
                       in_flight=rng.randrange(50), ewma=rng.choice([0.0, 0.001, 0.2, 5.0]))
            for i in range(8)
        ]
        balancer.set_members(members)
        for i in range(300):
            candidates = rng.sample(members, rng.randrange(1, len(members) + 1))
            self.assert_picks_a_candidate(balancer, candidates, varied_request(i))
