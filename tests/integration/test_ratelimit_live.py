"""Rate limits on loopback: 429s at the configured rate, delay and detect modes, and two
proxies sharing one limit through a real memcached (started by the test) that is then
killed (local limits take over, never a 5xx) and started again (shared again)."""

from __future__ import annotations

import time

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.integration.support import connect, listen, backend_site, proxy_config, start_proxy
from tests.integration.support import with_timeout
from tests.integration.test_memcached_live import SKIP, Memcached


def backend(testcase):
    port = listen(backend_site())
    testcase.addCleanup(port.stopListening)
    return port.getHost().port


@defer.inlineCallbacks
def statuses(port, count, path=b"/echo"):
    """Send ``count`` pipelined GETs on one connection; the statuses, in order."""
    client = yield connect(port)
    client.transport.write(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path * count)
    answers = yield with_timeout(client.responses(count), 20)
    client.transport.loseConnection()
    return [head.status for head, _ in answers]


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def limited_proxy(testcase, limits, **sections):
    data = proxy_config([backend(testcase)], **sections)
    data["rate_limits"] = limits
    service, port = yield start_proxy(testcase, data)
    if service.runtime.rate_limits.shared is not None:
        testcase.addCleanup(service.runtime.rate_limits.close)
    return service, port


class LocalLimitTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_429s_at_the_configured_rate(self):
        """rate 10/s burst 5: of 30 quick requests, the burst plus at most rate x elapsed
        pass (the rest are 429); after 0.5 s, about 5 more pass."""
        service, port = yield limited_proxy(self, [{"name": "l", "rate": "10/s", "burst": 5}])
        started = time.monotonic()
        first = yield statuses(port, 30)
        elapsed = time.monotonic() - started
        passed = first.count(200)
        self.assertEqual(set(first), {200, 429})
        self.assertGreaterEqual(passed, 5)
        self.assertLessEqual(passed, 5 + 10 * elapsed + 1)
        yield sleep(0.5)
        started = time.monotonic()
        second = yield statuses(port, 20)
        elapsed += time.monotonic() - started + 0.5
        self.assertGreaterEqual(second.count(200), 4)
        self.assertLessEqual(passed + second.count(200), 5 + 10 * (elapsed + 0.6) + 1)

    @defer.inlineCallbacks
    def test_delay_mode_spaces_requests_instead_of_refusing(self):
        """action delay, 10/s burst 1, queue 5: 4 requests all succeed, spread over >= 0.25 s;
        8 requests at once: the ones beyond the queue get 429."""
        service, port = yield limited_proxy(self, [{"name": "d", "rate": "10/s", "burst": 1,
                                                    "action": "delay", "delay_queue": 5}])
        started = time.monotonic()
        clients = []
        for _ in range(4):
            clients.append(statuses(port, 1))
        results = yield defer.gatherResults(clients)
        self.assertEqual(results, [[200]] * 4)
        self.assertGreaterEqual(time.monotonic() - started, 0.25)
        yield sleep(1.0)
        results = yield defer.gatherResults([statuses(port, 1) for _ in range(9)])
        flat = sorted(r[0] for r in results)
        # One now, five queued, the rest refused (one more may fit if the arrivals took
        # over 0.1 s on a busy machine).
        self.assertEqual(flat.count(200) + flat.count(429), 9)
        self.assertIn(flat.count(200), (6, 7))

    @defer.inlineCallbacks
    def test_detect_mode_lets_everything_through(self):
        service, port = yield limited_proxy(self, [{"name": "w", "rate": "1/s", "burst": 1,
                                                    "action": "detect"}])
        result = yield statuses(port, 10)
        self.assertEqual(result, [200] * 10)
        self.assertGreaterEqual(service.runtime.rate_limits.stats()["limits"]["w"]["detected"],
                                8)


class SharedLimitTests(unittest.TestCase):
    skip = SKIP

    @defer.inlineCallbacks
    def test_two_proxies_one_limit_then_memcached_killed_then_back(self):
        """Two proxies on one memcached enforce one allowance (30 per 30 s window) between
        them; memcached killed: each proxy falls back to its local bucket (429s, no 5xx);
        memcached started again: counting is shared again."""
        memcached = Memcached(self)
        limits = [{"name": "s", "rate": "1/s", "burst": 30, "shared": True}]
        shared = {"servers": ["127.0.0.1:%d" % memcached.port], "retry_interval": "300ms"}
        a, a_port = yield limited_proxy(self, limits, rate_limits_shared=dict(shared))
        b, b_port = yield limited_proxy(self, limits, rate_limits_shared=dict(shared))
        remaining = 30 - time.time() % 30
        if remaining < 5:  # the counts must fall in one window
            yield sleep(remaining + 0.05)
        results = (yield statuses(a_port, 20)) + (yield statuses(b_port, 20))
        self.assertEqual((results.count(200), results.count(429)), (30, 10))

        memcached.stop()
        after = yield statuses(a_port, 35)
        self.assertEqual(set(after), {200, 429})  # no 5xx
        self.assertEqual(after.count(200), 30)  # A's local bucket: burst 30, unused so far
        shared_state = a.runtime.rate_limits.shared
        self.assertTrue(shared_state.outage)
        self.assertEqual(shared_state.outages, 1)

        memcached.start()
        deadline = time.monotonic() + 10
        while shared_state.outage:
            self.assertLess(time.monotonic(), deadline, "never shared again")
            yield sleep(0.2)
            yield statuses(a_port, 1)
        self.assertEqual(shared_state.outages, 1)
