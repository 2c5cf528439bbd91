"""Test support for revproxy and its plugin authors: fakes of the interfaces policies see,
and contract tests every ``IBalancer`` must pass.

A plugin's tests reuse the contract like this::

    from random import Random
    from twisted.trial import unittest
    from revproxy.testing import BalancerContractMixin

    class MyPolicyContractTests(BalancerContractMixin, unittest.TestCase):
        def make_balancer(self):
            return MyPolicy({}, Random(1))
"""

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


# --- Cache stores ------------------------------------------------------------------------

from twisted.internet.task import Clock  # noqa: E402 - kept with the cache-store section

from revproxy.cache.entry import CacheEntry, VariantIndex  # noqa: E402
from revproxy.interfaces import ICacheStore  # noqa: E402


def sample_entry(key=b"GET example.test/", body=b"hello", headers=None, tags=(), status=200,
                 when=0.0):
    """A ``CacheEntry`` for tests: ``key``, ``status``, ``body``, ``tags`` as given, headers
    (default: a Content-Type and two Set-Cookie lines, a repeated name), times ``when``."""
    if headers is None:
        headers = [(b"content-type", b"text/plain"), (b"set-cookie", b"a=1"),
                   (b"set-cookie", b"b=2")]
    return CacheEntry(key, status, b"OK", list(headers), body, when, when, when, tags)


class CacheStoreContractMixin:
    """The ``ICacheStore`` contract, as tests. Mix into a ``twisted.trial.unittest.TestCase``
    and define ``make_store(self, max_bytes, max_object)`` returning a fresh, empty store
    that reads the time from ``self.clock`` (a ``task.Clock`` the mixin sets before calling)
    and holds at most ``max_bytes``, refusing values over ``max_object``.

    The bound tests assume a store counts a value as at least its body length and at most
    its body plus 4 KiB (for a small head). A store whose Deferreds fire later (network)
    overrides ``resolve(d)`` to drive its fake I/O until ``d`` fires.
    """

    MAX_BYTES = 100000
    MAX_OBJECT = 50000

    def make_store(self, max_bytes, max_object):
        raise NotImplementedError("define make_store(max_bytes, max_object) using self.clock")

    def resolve(self, d):
        """The result of the store's Deferred ``d``."""
        return self.successResultOf(d)

    def new_store(self, max_bytes=None, max_object=None):
        """A store from ``make_store`` (bounds default to MAX_BYTES, MAX_OBJECT), closed at
        the end of the test."""
        if getattr(self, "clock", None) is None:
            self.clock = Clock()
        store = self.make_store(max_bytes or self.MAX_BYTES, max_object or self.MAX_OBJECT)
        self.addCleanup(lambda: self.resolve(store.close()))
        return store

    def put(self, store, key, value=None, ttl=3600.0, tags=()):
        """``store.put``'s result; ``value`` defaults to ``sample_entry(key)``."""
        value = sample_entry(key) if value is None else value
        return self.resolve(store.put(key, value, ttl, tags))

    def get(self, store, key):
        return self.resolve(store.get(key))

    def test_provides_icachestore(self):
        """The store provides ICacheStore (verifyObject) and has a non-empty str name."""
        store = self.new_store()
        self.assertTrue(verifyObject(ICacheStore, store))
        self.assertIsInstance(store.name, str)
        self.assertTrue(store.name)

    def test_round_trip_of_bodies_and_repeated_headers(self):
        """Entries with bodies of 0 B to 40 KB, repeated header names and tags come back
        equal, header order kept."""
        store = self.new_store()
        headers = [(b"set-cookie", b"a=1"), (b"x-b", b"2"), (b"set-cookie", b"c=3; Path=/"),
                   (b"x-b", b"")]
        for size in (0, 1, 1000, 40000):
            key = b"GET example.test/" + str(size).encode()
            entry = sample_entry(key, body=bytes(range(256)) * (size // 256) + b"z" * (size % 256),
                                 headers=headers, tags=(b"t1", b"t2"), when=12.5)
            self.assertIs(self.put(store, key, entry, tags=entry.tags), True)
            found = self.get(store, key)
            self.assertEqual(found, entry)
            self.assertEqual(found.headers, headers)
            self.assertEqual(len(found.body), size)

    def test_variant_index_round_trip(self):
        """A VariantIndex comes back equal."""
        store = self.new_store()
        index = VariantIndex(b"GET a/", (b"accept-encoding", b"accept-language"),
                             (b"GET a/ gzip en", b"GET a/ br fr"))
        self.assertIs(self.put(store, b"GET a/", index), True)
        self.assertEqual(self.get(store, b"GET a/"), index)

    def test_missing_key_is_none(self):
        """A key never stored gets None."""
        store = self.new_store()
        self.put(store, b"k1")
        self.assertIsNone(self.get(store, b"k2"))
        self.assertIsNone(self.get(store, b""))

    def test_put_overwrites(self):
        """A second put under a key replaces the first value."""
        store = self.new_store()
        self.put(store, b"k", sample_entry(b"k", body=b"old"))
        self.put(store, b"k", sample_entry(b"k", body=b"new", status=203))
        found = self.get(store, b"k")
        self.assertEqual((found.body, found.status), (b"new", 203))
        self.assertEqual(store.stats()["entries"], 1)

    def test_delete_removes_only_that_key(self):
        """delete fires with None, removes its key, keeps the others; deleting again or a
        missing key is harmless."""
        store = self.new_store()
        self.put(store, b"k1")
        self.put(store, b"k2")
        self.assertIsNone(self.resolve(store.delete(b"k1")))
        self.assertIsNone(self.resolve(store.delete(b"k1")))
        self.assertIsNone(self.resolve(store.delete(b"never")))
        self.assertIsNone(self.get(store, b"k1"))
        self.assertEqual(self.get(store, b"k2").key, b"k2")

    def test_value_expires_after_ttl(self):
        """A value is there until ttl seconds have passed, and gone from then on."""
        store = self.new_store()
        self.put(store, b"short", ttl=10.0)
        self.put(store, b"long", ttl=100.0)
        self.clock.advance(9.9)
        self.assertIsNotNone(self.get(store, b"short"))
        self.clock.advance(0.1)
        self.assertIsNone(self.get(store, b"short"))
        self.assertIsNotNone(self.get(store, b"long"))

    def test_non_positive_ttl_is_refused(self):
        """put with ttl 0 or negative fires False, stores nothing and removes the old value."""
        store = self.new_store()
        self.put(store, b"k")
        self.assertIs(self.put(store, b"k", ttl=0.0), False)
        self.assertIsNone(self.get(store, b"k"))
        self.assertIs(self.put(store, b"k", ttl=-5.0), False)
        self.assertIsNone(self.get(store, b"k"))

    def fill_for_purge(self, store):
        for key, tags in ((b"GET a.test/1", (b"red",)), (b"GET a.test/2", (b"red", b"blue")),
                          (b"GET b.test/1", (b"blue",)), (b"GET b.test/2", ())):
            self.put(store, key, sample_entry(key, tags=tags), tags=tags)

    def present(self, store):
        keys = (b"GET a.test/1", b"GET a.test/2", b"GET b.test/1", b"GET b.test/2")
        return {k: self.get(store, k) for k in keys if self.get(store, k) is not None}

    def test_hard_purge_by_prefix(self):
        """purge(prefix) removes the keys starting with it and counts them."""
        store = self.new_store()
        self.fill_for_purge(store)
        count = self.resolve(store.purge(prefix=b"GET a.test/"))
        self.assertIn(count, (2, -1))
        self.assertEqual(sorted(self.present(store)), [b"GET b.test/1", b"GET b.test/2"])

    def test_hard_purge_by_tag(self):
        """purge(tag) removes the values put with that tag and counts them."""
        store = self.new_store()
        self.fill_for_purge(store)
        self.assertIn(self.resolve(store.purge(tag=b"blue")), (2, -1))
        self.assertEqual(sorted(self.present(store)), [b"GET a.test/1", b"GET b.test/2"])

    def test_hard_purge_by_prefix_and_tag(self):
        """purge(prefix, tag) removes only values matching both."""
        store = self.new_store()
        self.fill_for_purge(store)
        self.assertIn(self.resolve(store.purge(prefix=b"GET a.", tag=b"blue")), (1, -1))
        self.assertEqual(sorted(self.present(store)),
                         [b"GET a.test/1", b"GET b.test/1", b"GET b.test/2"])

    def test_purge_everything(self):
        """purge() with no condition removes every value."""
        store = self.new_store()
        self.fill_for_purge(store)
        self.assertIn(self.resolve(store.purge()), (4, -1))
        self.assertEqual(self.present(store), {})

    def test_soft_purge_marks_entries_stale(self):
        """purge(soft=True) by prefix or tag keeps the entries but returns them with
        stale=True, otherwise equal; the others stay fresh."""
        store = self.new_store()
        self.fill_for_purge(store)
        before = self.present(store)
        self.assertIn(self.resolve(store.purge(prefix=b"GET a.test/1", soft=True)), (1, -1))
        self.assertIn(self.resolve(store.purge(tag=b"blue", soft=True)), (2, -1))
        after = self.present(store)
        self.assertEqual(sorted(after), sorted(before))
        for key, entry in after.items():
            self.assertEqual(entry.stale, key != b"GET b.test/2", key)
            self.assertEqual(entry.replace(stale=False), before[key])

    def test_soft_purge_leaves_variant_index(self):
        """A soft purge leaves a VariantIndex as it was."""
        store = self.new_store()
        index = VariantIndex(b"GET a/", (b"accept",), (b"GET a/ x",))
        self.put(store, b"GET a/", index)
        self.resolve(store.purge(prefix=b"GET a/", soft=True))
        self.assertEqual(self.get(store, b"GET a/"), index)

    def test_oversize_value_is_refused(self):
        """A value over max_object: put fires False, and the key's old value is gone."""
        store = self.new_store()
        self.put(store, b"k")
        big = sample_entry(b"k", body=b"x" * (self.MAX_OBJECT + 1))
        self.assertIs(self.put(store, b"k", big), False)
        self.assertIsNone(self.get(store, b"k"))
        self.assertEqual(store.stats()["entries"], 0)

    def test_lru_eviction_keeps_the_most_recently_read(self):
        """Past max_bytes the least recently used value goes: a value read since survives
        and the byte count stays within the bound."""
        store = self.new_store()
        body = b"b" * (self.MAX_BYTES // 5)
        for i in range(4):
            key = b"key-%d" % i
            self.assertIs(self.put(store, key, sample_entry(key, body=body)), True)
        self.assertIsNotNone(self.get(store, b"key-0"))
        self.put(store, b"key-4", sample_entry(b"key-4", body=body))
        self.assertIsNone(self.get(store, b"key-1"))
        for key in (b"key-0", b"key-2", b"key-3", b"key-4"):
            self.assertIsNotNone(self.get(store, key), key)
        stats = store.stats()
        self.assertEqual((stats["entries"], stats["evictions"]), (4, 1))
        self.assertLessEqual(stats["bytes"], self.MAX_BYTES)

    def test_stats_count_hits_misses_entries_and_bytes(self):
        """stats() counts hits, misses, entries and bytes held."""
        store = self.new_store()
        empty = store.stats()
        self.assertEqual({k: empty[k] for k in ("entries", "bytes", "hits", "misses",
                                                 "evictions")},
                         {"entries": 0, "bytes": 0, "hits": 0, "misses": 0, "evictions": 0})
        self.put(store, b"k1", sample_entry(b"k1", body=b"x" * 1000))
        self.put(store, b"k2")
        self.get(store, b"k1")
        self.get(store, b"k1")
        self.get(store, b"nope")
        stats = store.stats()
        self.assertEqual((stats["hits"], stats["misses"], stats["entries"]), (2, 1, 2))
        self.assertGreaterEqual(stats["bytes"], 1000)

    def test_operations_after_close_do_nothing(self):
        """After close every method fires with its "nothing" value and none raises."""
        store = self.new_store()
        self.put(store, b"k")
        self.assertIsNone(self.resolve(store.close()))
        self.assertIsNone(self.get(store, b"k"))
        self.assertIs(self.put(store, b"k2"), False)
        self.assertIsNone(self.resolve(store.delete(b"k")))
        self.assertIn(self.resolve(store.purge(prefix=b"k")), (0, -1))
        self.assertIn(self.resolve(store.purge(tag=b"t", soft=True)), (0, -1))
        self.assertIsInstance(store.stats(), dict)
        self.assertIsNone(self.resolve(store.close()))
