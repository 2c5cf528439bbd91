"""Two proxies sharing one memcached cache: what one stores the other serves, and a purge on
one is seen by the other (the generation counters live in memcached)."""

from __future__ import annotations

import json

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.integration.support import proxy_config, start_proxy
from tests.integration.test_cache_live import counted_backend, field, get, post
from tests.integration.test_memcached_live import SKIP, Memcached


@defer.inlineCallbacks
def stored(service, key, attempts=200):
    """Wait (bounded) until ``key`` is readable in the service's store: the proxy answers its
    client before the asynchronous put to memcached has completed."""
    for _ in range(attempts):
        value = yield service.runtime.cache.store.get(key)
        if value is not None:
            return value
        yield task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("%r never reached the store" % (key,))


class SharedCacheTests(unittest.TestCase):
    skip = SKIP

    @defer.inlineCallbacks
    def test_two_proxies_share_hits_and_purges(self):
        """Proxy A fetches and stores; proxy B answers the same URL from memcached without
        asking the backend; a tag purge sent to B makes A miss."""
        memcached = Memcached(self)
        backend, backend_port = counted_backend(self)
        cache = {"store": "memcached",
                 "store_options": {"servers": "127.0.0.1:%d" % memcached.port}}
        a, a_port = yield start_proxy(self, proxy_config([backend_port], cache=dict(cache)))
        b, b_port = yield start_proxy(self, proxy_config(
            [backend_port], cache=dict(cache), admin={"listen": ["tcp:0:interface=127.0.0.1"]}))
        self.addCleanup(lambda: a.runtime.cache.store.close())
        self.addCleanup(lambda: b.runtime.cache.store.close())
        head, first = yield get(a_port, b"/shared")
        self.assertIn(b"stored", field(head, b"cache-status"))
        yield stored(a, b"http://a/shared")
        head, second = yield get(b_port, b"/shared")
        self.assertTrue(field(head, b"cache-status").startswith(b"revproxy; hit"),
                        field(head, b"cache-status"))
        self.assertEqual((first, backend.served), (second, 1))
        purge_port = b.ports[0].getHost().port
        head, body = yield post(purge_port, b"/purge?prefix=http://a/")
        self.assertEqual(head.status, 200)
        self.assertIn("purged", json.loads(body))
        head, third = yield get(a_port, b"/shared")
        self.assertIn(b"fwd=uri-miss", field(head, b"cache-status"))
        self.assertEqual(backend.served, 2)
