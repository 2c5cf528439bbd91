"""The memcached store against real memcached processes on loopback: the ICacheStore contract,
two stores (two proxies) sharing servers and purges, chunked values, servers killed and
restarted, servers that never answer.

Each test starts its own ``memcached -l 127.0.0.1 -p PORT -U 0 -m 64`` on a free port and
kills it at cleanup. The tests are skipped only when there is no memcached binary; CI has
one (``.ci/run`` -> ``scripts/setup-env`` installs the Debian package).

The contract mixin wants results synchronously, so these are ``SynchronousTestCase``s and
``spin`` turns the (not running) global reactor with ``reactor.iterate`` until a Deferred
has fired; ``ReactorCleanMixin`` checks what trial's janitor would: no timer or memcached
connection left behind once the stores are closed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.cache.stores.memcached import MemcachedStore
from revproxy.cache.stores.memcached_client import _PooledProtocol
from revproxy.testing import CacheStoreContractMixin, sample_entry
from tests.unit.test_cache_memcached import MemcachedContractOverrides

LOOPBACK = "127.0.0.1"
MEMCACHED = shutil.which("memcached") or (
    "/usr/bin/memcached" if os.path.exists("/usr/bin/memcached") else None)
SKIP = None if MEMCACHED else "no memcached binary (scripts/setup-env installs it)"


def free_port() -> int:
    s = socket.socket()
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spin(d, limit=10.0):
    """The result of Deferred ``d``, turning the reactor until it fires (at most ``limit``
    seconds: then the test fails)."""
    results = []
    d.addBoth(results.append)
    deadline = time.monotonic() + limit
    while not results:
        if time.monotonic() > deadline:
            raise AssertionError("Deferred did not fire within %.1f s" % limit)
        reactor.iterate(0.005)
    return results[0]


def spin_until(predicate, limit=10.0):
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % limit)
        reactor.iterate(0.01)


class Memcached:
    """A memcached process on ``port`` (a free one by default)."""

    def __init__(self, testcase, port=None):
        self.port = port or free_port()
        self.process = None
        self.start()
        testcase.addCleanup(self.stop)

    def start(self):
        args = [MEMCACHED, "-l", LOOPBACK, "-p", str(self.port), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # memcached refuses to run as root without -u
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("memcached on port %d did not start" % self.port)
                time.sleep(0.01)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def server(self):
        return (LOOPBACK, self.port)


def live_store(testcase, servers, clock, **kwargs):
    """A store on ``servers``, connected to all of them, closed at cleanup."""
    store = MemcachedStore(reactor, servers, clock=clock, **kwargs)
    testcase.addCleanup(lambda: spin(store.close()))
    spin_until(lambda: store.stats()["servers_up"] == len(servers))
    return store


class ReactorCleanMixin:
    """Fails the test if a delayed call or a memcached connection outlives it."""

    def setUp(self):
        self.addCleanup(self.assert_reactor_clean)

    def assert_reactor_clean(self):
        self.assertEqual(reactor.getDelayedCalls(), [])
        left = [s for s in reactor.getReaders() + reactor.getWriters()
                if isinstance(getattr(s, "protocol", None), _PooledProtocol)]
        self.assertEqual(left, [])


class LiveContractTests(ReactorCleanMixin, MemcachedContractOverrides, CacheStoreContractMixin,
                        unittest.SynchronousTestCase):
    """The ICacheStore contract on a real memcached, with 4 KiB items so the larger
    bodies are chunked."""

    skip = SKIP

    def setUp(self):
        ReactorCleanMixin.setUp(self)
        self.memcached = Memcached(self)

    def make_store(self, max_bytes, max_object):
        store = MemcachedStore(reactor, [self.memcached.server], item_max=4096,
                               max_object=max_object, clock=self.clock)
        spin_until(lambda: store.stats()["servers_up"] == 1)
        return store

    def resolve(self, d):
        return spin(d)


class SharedServersTests(ReactorCleanMixin, unittest.SynchronousTestCase):
    """Two stores (two proxies) on the same two memcached servers."""

    skip = SKIP

    def setUp(self):
        ReactorCleanMixin.setUp(self)
        self.clock = Clock()
        self.servers = [Memcached(self), Memcached(self)]
        addresses = [m.server for m in self.servers]
        self.one = live_store(self, addresses, self.clock)
        self.two = live_store(self, addresses, self.clock)

    def put(self, store, key, body=b"hello", tags=()):
        return spin(store.put(key, sample_entry(key, body=body, tags=tags), 60.0, tags))

    def test_puts_and_deletes_are_shared(self):
        """A value put by one store is read by the other; a delete by either removes it."""
        self.assertIs(self.put(self.one, b"http://h/a"), True)
        self.assertEqual(spin(self.two.get(b"http://h/a")).key, b"http://h/a")
        spin(self.two.delete(b"http://h/a"))
        self.assertIsNone(spin(self.one.get(b"http://h/a")))

    def test_purges_by_one_are_seen_by_the_other(self):
        """Tag, soft and prefix purges made through one store apply to the other's reads."""
        for key, tags in ((b"http://h/a/1", (b"red",)), (b"http://h/a/2", ()),
                          (b"http://h/b/1", (b"blue",))):
            self.put(self.one, key, tags=tags)
        self.assertEqual(spin(self.two.purge(tag=b"blue", soft=True)), -1)
        self.assertTrue(spin(self.one.get(b"http://h/b/1")).stale)
        self.assertFalse(spin(self.one.get(b"http://h/a/1")).stale)
        spin(self.two.purge(tag=b"red"))
        self.assertIsNone(spin(self.one.get(b"http://h/a/1")))
        self.assertIsNotNone(spin(self.one.get(b"http://h/a/2")))
        spin(self.one.purge(prefix=b"http://h/"))
        self.assertIsNone(spin(self.two.get(b"http://h/a/2")))
        self.assertIsNone(spin(self.two.get(b"http://h/b/1")))

    def test_big_values_are_chunked_and_round_trip(self):
        """A 3 MB body (over memcached's 1 MB item) is stored in chunks and read back
        whole by the other store."""
        body = os.urandom(3 * 1000 * 1000)
        self.assertIs(self.put(self.one, b"http://h/big", body=body), True)
        self.assertEqual(spin(self.two.get(b"http://h/big")).body, body)

    def test_keys_spread_over_both_servers(self):
        """With one server killed, about half of the values miss and the rest still hit."""
        keys = [b"http://h/k%d" % i for i in range(60)]
        for key in keys:
            self.put(self.one, key)
        self.servers[1].stop()
        hits = sum(1 for key in keys if spin(self.two.get(key)) is not None)
        self.assertTrue(10 < hits < 50, hits)


class FailureTests(ReactorCleanMixin, unittest.SynchronousTestCase):
    """Servers down, restarted, or never answering: misses, never errors or hangs."""

    skip = SKIP

    def setUp(self):
        ReactorCleanMixin.setUp(self)
        self.clock = Clock()

    def test_killed_server_gives_misses_then_recovers_after_restart(self):
        """After memcached is killed: get None, put False, purge 0, each quickly; once it
        is back on its port the store reconnects and works again."""
        memcached = Memcached(self)
        store = live_store(self, [memcached.server], self.clock, timeout=0.5)
        entry = sample_entry(b"http://h/a")
        self.assertIs(spin(store.put(entry.key, entry, 60.0)), True)
        memcached.stop()
        started = time.monotonic()
        self.assertIsNone(spin(store.get(entry.key)))
        self.assertIs(spin(store.put(entry.key, entry, 60.0)), False)
        self.assertEqual(spin(store.purge(tag=b"t")), 0)
        self.assertLess(time.monotonic() - started, 1.5)
        memcached.start()
        spin_until(lambda: spin(store.put(entry.key, entry, 60.0)) is True, limit=15)
        self.assertEqual(spin(store.get(entry.key)), entry)

    def test_unreachable_server_gives_misses(self):
        """A store whose only server never listened answers misses and False."""
        store = MemcachedStore(reactor, [(LOOPBACK, free_port())], clock=self.clock,
                               timeout=0.5)
        self.addCleanup(lambda: spin(store.close()))
        entry = sample_entry(b"http://h/a")
        self.assertIsNone(spin(store.get(entry.key)))
        self.assertIs(spin(store.put(entry.key, entry, 60.0)), False)
        self.assertEqual(store.stats()["servers_up"], 0)

    def test_silent_server_times_out(self):
        """A server that accepts connections but never answers: get gives None after the
        timeout, not later."""
        listener = socket.socket()
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        self.addCleanup(listener.close)
        store = live_store(self, [listener.getsockname()], self.clock, timeout=0.3)
        started = time.monotonic()
        self.assertIsNone(spin(store.get(b"http://h/a")))
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertGreaterEqual(store.stats()["timeouts"], 1)
