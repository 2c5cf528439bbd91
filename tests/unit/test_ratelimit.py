"""Rate limits through the whole proxy on a fake reactor, and the hook on its own."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from revproxy.config.load import parse_config
from revproxy.pipeline.hooks import Answer
from revproxy.protection.ratecompose import build_rate_limit_hook
from revproxy.protection.shared import SharedCounters
from revproxy.testing.hooks import RequestHookContractMixin, fake_context
from tests.unit.world import World, config_dict

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def limits_config(limits, **sections):
    data = config_dict(**sections)
    data["rate_limits"] = limits
    return data


def get(world, path=b"/x", peer=("127.0.0.1", 40000), headers=b""):
    """Send one GET on a new client connection; returns the client transport."""
    proto, client = world.client(peer)
    proto.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: a.test\r\n" + headers + b"\r\n")
    return client


def status(client):
    data = client.value()
    return int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else None


class RejectTests(unittest.TestCase):
    def test_burst_then_429_with_retry_after_then_refilled(self):
        """rate 1/s burst 2: two requests go to the backend, the third is a 429 with
        Retry-After: 1 and never reaches a backend; a second later one passes again."""
        world = World(self, limits_config([{"name": "per-ip", "rate": "1/s", "burst": 2}]))
        first, second, third = get(world), get(world), get(world)
        self.assertEqual(world.pending_connects, 2)
        self.assertEqual(status(third), 429)
        self.assertIn(b"\r\nretry-after: 1\r\n", third.value())
        self.assertTrue(third.value().endswith(b"429 Too Many Requests\n"))
        self.assertEqual((status(first), status(second)), (None, None))  # at the backend
        world.reactor.advance(1.0)
        get(world)
        self.assertEqual(world.pending_connects, 3)
        stats = world.runtime.rate_limits.stats()["limits"]["per-ip"]
        self.assertEqual((stats["admitted"], stats["rejected"], stats["keys"]), (3, 1, 1))

    def test_retry_after_rounds_the_wait_up(self):
        """600/m with burst 1: the second request waits 0.1 s: Retry-After says 1."""
        world = World(self, limits_config([{"name": "l", "rate": "6/m", "burst": 1}]))
        get(world)
        refused = get(world)
        self.assertIn(b"\r\nretry-after: 10\r\n", refused.value())

    def test_each_client_address_has_its_own_bucket(self):
        """Another peer address is not limited by the first one's spending."""
        world = World(self, limits_config([{"name": "l", "rate": "1/s", "burst": 1}]))
        get(world, peer=("10.0.0.1", 1))
        self.assertEqual(status(get(world, peer=("10.0.0.1", 2))), 429)
        self.assertIsNone(status(get(world, peer=("10.0.0.2", 1))))

    def test_forwarded_for_believed_only_from_trusted_proxies(self):
        """X-Forwarded-For from an untrusted peer is ignored (one bucket for the peer);
        from a trusted proxy, the forwarded address is the key."""
        world = World(self, limits_config([{"name": "l", "rate": "1/s", "burst": 1}],
                                          server={"trusted_proxies": ["10.9.0.0/16"]}))
        spoof = [get(world, peer=("10.0.0.1", n), headers=b"X-Forwarded-For: 192.0.2.%d\r\n" % n)
                 for n in (1, 2)]
        self.assertEqual([status(c) for c in spoof], [None, 429])
        via = [get(world, peer=("10.9.0.5", n), headers=b"X-Forwarded-For: 192.0.2.%d\r\n" % n)
               for n in (1, 2, 2)]
        self.assertEqual([status(c) for c in via], [None, None, 429])

    def test_routes_scope_a_limit(self):
        """A limit naming route "api" leaves the other routes alone."""
        routes = [{"name": "api", "pool": "main", "path_prefix": "/api"},
                  {"name": "rest", "pool": "main"}]
        world = World(self, limits_config(
            [{"name": "api-only", "rate": "1/s", "burst": 1, "routes": ["api"]}], routes=routes))
        self.assertEqual([status(get(world, b"/api/a")) for _ in range(2)], [None, 429])
        self.assertEqual([status(get(world, b"/other")) for _ in range(3)], [None] * 3)

    def test_header_key_and_missing_header_not_counted(self):
        """key = header: each API key its own bucket; requests without the header pass."""
        world = World(self, limits_config(
            [{"name": "k", "rate": "1/s", "burst": 1, "key": ["header:X-Api-Key"]}]))
        self.assertEqual([status(get(world, headers=b"X-Api-Key: a\r\n")) for _ in range(2)],
                         [None, 429])
        self.assertIsNone(status(get(world, headers=b"X-Api-Key: b\r\n")))
        self.assertEqual([status(get(world)) for _ in range(3)], [None] * 3)

    def test_cookie_and_route_combined(self):
        """key = [cookie, route]: the same session on two routes has two buckets."""
        routes = [{"name": "api", "pool": "main", "path_prefix": "/api"},
                  {"name": "rest", "pool": "main"}]
        world = World(self, limits_config(
            [{"name": "c", "rate": "1/s", "burst": 1, "key": ["cookie:sid", "route"]}],
            routes=routes))
        cookie = b"Cookie: a=1; sid=s1\r\n"
        self.assertEqual([status(get(world, b"/api", headers=cookie)) for _ in range(2)],
                         [None, 429])
        self.assertIsNone(status(get(world, b"/", headers=cookie)))
        self.assertIsNone(status(get(world, b"/api", headers=b"Cookie: sid=s2\r\n")))


class DelayAndDetectTests(unittest.TestCase):
    def test_delay_holds_then_releases_then_refuses_beyond_the_queue(self):
        """rate 1/s burst 1 queue 1: the second request waits a second (no backend before),
        the third is refused with 429."""
        world = World(self, limits_config([{"name": "d", "rate": "1/s", "burst": 1,
                                            "action": "delay", "delay_queue": 1}]))
        get(world)
        held = get(world)
        refused = get(world)
        self.assertEqual(world.pending_connects, 1)
        self.assertEqual(status(refused), 429)
        self.assertEqual(held.value(), b"")
        world.reactor.advance(0.9)
        self.assertEqual(world.pending_connects, 1)
        world.reactor.advance(0.11)
        self.assertEqual(world.pending_connects, 2)  # the held request went on
        stats = world.runtime.rate_limits.stats()["limits"]["d"]
        self.assertEqual((stats["delayed"], stats["rejected"]), (1, 1))

    def test_delay_refuses_past_max_delay(self):
        """A wait longer than max_delay is a 429 even with room in the queue."""
        world = World(self, limits_config([{"name": "d", "rate": "1/s", "burst": 1,
                                            "action": "delay", "delay_queue": 5,
                                            "max_delay": "1500ms"}]))
        get(world), get(world)
        self.assertEqual(status(get(world)), 429)  # would wait 2 s

    def test_detect_only_passes_and_counts(self):
        """detect: every request reaches the backend; the excess is counted."""
        world = World(self, limits_config([{"name": "watch", "rate": "1/s", "burst": 1,
                                            "action": "detect"}]))
        for _ in range(4):
            get(world)
        self.assertEqual(world.pending_connects, 4)
        from revproxy.admin.status import status_document

        stats = status_document(world.runtime, 0.0)["rate_limits"]["limits"]["watch"]
        self.assertEqual((stats["admitted"], stats["detected"], stats["rejected"]), (1, 3, 0))


class ByteLimitTests(unittest.TestCase):
    def test_response_bytes_put_the_key_in_debt(self):
        """unit = bytes, 10/s burst 10: a 40-byte body leaves 30 bytes of debt: the next
        request is refused with Retry-After 3 until the debt is repaid."""
        world = World(self, limits_config([{"name": "b", "rate": "10/s", "burst": 10,
                                            "unit": "bytes"}]))
        client = get(world)
        backend, _ = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40)
        self.assertTrue(client.value().endswith(b"x" * 40))
        refused = get(world)
        self.assertEqual(status(refused), 429)
        self.assertIn(b"\r\nretry-after: 3\r\n", refused.value())
        world.reactor.advance(3.01)
        self.assertIsNone(status(get(world)))


class ReloadTests(unittest.TestCase):
    def test_unchanged_limit_keeps_its_buckets_changed_one_starts_afresh(self):
        """A reload with the same [[rate_limits]] entry keeps the spent bucket; changing
        the entry gives full buckets."""
        limits = [{"name": "l", "rate": "1/s", "burst": 1}]
        world = World(self, limits_config(limits))
        world.start()
        get(world)
        self.assertTrue(world.reload(limits_config([dict(limits[0])],
                                                   server={"proxy_name": "other"})))
        self.assertEqual(status(get(world)), 429)
        self.assertTrue(world.reload(limits_config([{"name": "l", "rate": "1/s", "burst": 2}])))
        self.assertIsNone(status(get(world)))

    def test_no_limits_no_hook(self):
        """Without [[rate_limits]] nothing is added to the request path."""
        world = World(self, config_dict())
        self.assertIsNone(world.runtime.rate_limits)
        self.assertEqual(world.runtime.hooks.request_head, ())


def hook_for(limits, clock, **sections):
    config = parse_config(limits_config(limits, **sections), "<test>")
    return build_rate_limit_hook(config, clock)


class HookTests(unittest.TestCase):
    def test_local_path_returns_no_deferred(self):
        """Under and over the limit, a local reject limit decides synchronously."""
        hook = hook_for([{"name": "l", "rate": "1/s", "burst": 1}], Clock())
        self.assertIsNone(hook.request_head(fake_context()))
        self.assertIsInstance(hook.request_head(fake_context()), Answer)

    def test_limits_run_in_order_and_first_refusal_answers(self):
        """Two limits: the stricter second one refuses after the first admitted."""
        hook = hook_for([{"name": "loose", "rate": "100/s"},
                         {"name": "strict", "rate": "1/s", "burst": 1}], Clock())
        hook.request_head(fake_context())
        answer = hook.request_head(fake_context())
        self.assertEqual(answer.status, 429)
        self.assertIn("strict", answer.reason)


class RateLimitHookContractTests(RequestHookContractMixin, unittest.TestCase):
    def make_hook(self):
        return hook_for([{"name": "l", "rate": "10/s", "unit": "bytes"}], Clock())


class FakeMemcached:
    """The MemcachedClient calls SharedCounters uses, on a dict; ``down`` makes every
    operation give no answer, as the real client does for a dead server."""

    def __init__(self):
        self.items = {}
        self.down = False
        self.calls = 0

    def node_for(self, name):
        return b"n"

    def incr(self, node, name, by):
        self.calls += 1
        if self.down:
            return defer.succeed(None)
        if name not in self.items:
            return defer.succeed(False)
        self.items[name] += by
        return defer.succeed(self.items[name])

    def add(self, node, name, value, expire=0):
        if self.down:
            return defer.succeed(False)
        if name in self.items:
            return defer.succeed(False)
        self.items[name] = int(value)
        return defer.succeed(True)

    def close(self):
        return defer.succeed(None)


def settled(result):
    if isinstance(result, defer.Deferred):
        out = []
        result.addBoth(out.append)
        return out[0]
    return result


class SharedTests(unittest.TestCase):
    def shared_hooks(self, count=2):
        clock = MemoryReactorClock()
        clock.advance(1000.0)
        memcached = FakeMemcached()
        limits = [{"name": "s", "rate": "2/s", "burst": 4, "shared": True}]
        hooks = []
        for _ in range(count):
            hook = hook_for(limits, clock, rate_limits_shared={"servers": ["127.0.0.1:1"]})
            hook.shared.client.close()  # the real client it made: not needed here
            hook.shared.client = memcached
            hooks.append(hook)
        return clock, memcached, hooks

    def test_two_proxies_share_one_allowance(self):
        """Two hooks on one memcached: 4 admitted in the window between them, then 429
        with Retry-After until the window ends."""
        clock, memcached, (a, b) = self.shared_hooks()
        results = [settled((a if n % 2 else b).request_head(fake_context())) for n in range(6)]
        self.assertEqual([r is None for r in results], [True] * 4 + [False] * 2)
        self.assertIn((b"retry-after", b"2"), results[4].headers)
        clock.advance(2.0)  # the next window
        self.assertIsNone(settled(a.request_head(fake_context())))

    def test_outage_falls_back_to_local_buckets_then_recovers(self):
        """memcached down: decisions on the local bucket (never a 5xx), one outage counted,
        memcached left alone for retry_interval; once back, counting is shared again."""
        clock, memcached, (a,) = self.shared_hooks(1)
        memcached.down = True
        results = [settled(a.request_head(fake_context())) for _ in range(6)]
        self.assertEqual([r is None for r in results], [True] * 4 + [False] * 2)
        self.assertEqual(results[4].status, 429)
        self.assertEqual((a.shared.outage, a.shared.outages), (True, 1))
        self.assertEqual(memcached.calls, 1)  # later requests did not wait on it
        memcached.down = False
        clock.advance(2.0)
        self.assertIsNone(settled(a.request_head(fake_context())))
        self.assertFalse(a.shared.outage)
        self.assertEqual(len(memcached.items), 1)
        self.assertEqual(a.stats()["shared"]["outages"], 1)
