"""Reload on a fake reactor: routes, pools, cache, listeners, refusals, what the log says."""

from __future__ import annotations

import copy

from twisted.logger import capturedLogs
from twisted.trial import unittest

from tests.unit.world import World, config_dict

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def two_pools(route_to="main", **sections):
    """Pools main (10.0.0.1) and other (10.0.0.2); the catch-all route goes to ``route_to``."""
    data = config_dict(routes=[{"name": "all", "pool": route_to}], **sections)
    data["pools"]["other"] = {"members": ["http://10.0.0.2:8000"]}
    return data


def messages(logs):
    from twisted.logger import formatEvent

    return [formatEvent(event) for event in logs]


class ReloadRoutingTests(unittest.TestCase):
    def setUp(self):
        self.world = World(self, two_pools("main"))
        self.world.start()

    def test_reload_routes_new_requests_to_the_new_pool(self):
        """After a reload pointing the route at pool other, a new request goes there."""
        world = self.world
        self.assertTrue(world.reload(two_pools("other")))
        proto, client = world.client()
        proto.dataReceived(GET)
        self.assertEqual(world.reactor.tcpClients[-1][:2], ("10.0.0.2", 8000))

    def test_request_in_flight_finishes_on_its_runtime_next_one_takes_the_new(self):
        """A request in flight during the reload is answered under the old config (old Via
        name); the keep-alive connection's next request uses the new routes and name."""
        world = self.world
        old = world.runtime
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        self.assertEqual(upstream.value().split(b"\r\n")[0], b"GET /x HTTP/1.1")
        data = two_pools("other", server={"proxy_name": "renamed"})
        self.assertTrue(world.reload(data))
        self.assertIsNot(world.service.runtime, old)
        backend.dataReceived(OK)
        first = client.take()
        self.assertIn(b"200 OK", first)
        self.assertIn(b"via: 1.1 revproxy", first.lower())
        self.assertFalse(client.disconnecting)
        proto.dataReceived(GET)
        self.assertEqual(world.reactor.tcpClients[-1][:2], ("10.0.0.2", 8000))
        backend2, _ = world.accept_backend()
        backend2.dataReceived(OK)
        self.assertIn(b"via: 1.1 renamed", client.take().lower())

    def test_broken_config_is_refused_and_the_old_one_keeps_serving(self):
        """A config that does not validate changes nothing; the log names the key and why."""
        world = self.world
        old = world.runtime
        bad = two_pools("other")
        bad["pools"]["other"]["connect_timeout"] = "soon"
        with capturedLogs() as logs:
            self.assertFalse(world.reload(bad))
        self.assertIs(world.service.runtime, old)
        [line] = [m for m in messages(logs) if "reload refused" in m]
        self.assertIn("<test>", line)
        self.assertIn("[pools.other] connect_timeout", line)
        self.assertIn('"soon"', line)
        proto, client = world.client()
        proto.dataReceived(GET)
        self.assertEqual(world.reactor.tcpClients[-1][:2], ("10.0.0.1", 8000))

    def test_unknown_balancer_is_refused(self):
        """Checks start-up does (balancer names) also refuse a reload."""
        bad = two_pools()
        bad["pools"]["other"]["balance"] = "no-such-policy"
        with capturedLogs() as logs:
            self.assertFalse(self.world.reload(bad))
        [line] = [m for m in messages(logs) if "reload refused" in m]
        self.assertIn("[pools.other] balance", line)
        self.assertIn("round-robin", line)

    def test_unknown_hook_plugin_is_refused(self):
        """A [[hooks]] entry naming no installed plugin refuses the reload, like start-up."""
        bad = two_pools()
        bad["hooks"] = [{"plugin": "no-such-hook"}]
        with capturedLogs() as logs:
            self.assertFalse(self.world.reload(bad))
        [line] = [m for m in messages(logs) if "reload refused" in m]
        self.assertIn("[[hooks]] #1 plugin", line)

    def test_hooks_change_with_a_reload_and_stay_otherwise(self):
        """The runtime's hooks follow [[hooks]]: kept when unchanged, rebuilt when changed."""
        from revproxy.pipeline.hooks import HookSet

        before = self.world.runtime.hooks
        self.assertTrue(self.world.reload(two_pools("other")))
        self.assertIs(self.world.service.runtime.hooks, before)
        self.assertIsInstance(before, HookSet)

    def test_log_says_what_changed(self):
        """The log lists routes, pools and members added, removed and changed."""
        data = two_pools("other", limits={"idle_timeout": 5})
        data["pools"]["main"]["members"] = ["http://10.0.0.1:8000", "http://10.0.0.3:8000"]
        del data["pools"]["other"]
        data["pools"]["third"] = {"members": ["http://10.0.0.4:8000"]}
        data["routes"][0]["pool"] = "third"
        with capturedLogs() as logs:
            self.assertTrue(self.world.reload(data))
        lines = messages(logs)
        for expected in ("reload: pool main: member added: http://10.0.0.3:8000",
                         "reload: pool removed: other",
                         "reload: pool added: third (http://10.0.0.4:8000)",
                         "reload: route all changed: pool",
                         "reload: [limits] changed: idle_timeout 60.0 -> 5.0"):
            self.assertIn(expected, lines)


class ReloadPoolTests(unittest.TestCase):
    def setUp(self):
        self.world = World(self, two_pools("main"))
        self.world.start()

    def served_once(self):
        """One request through pool main; its backend connection goes back idle."""
        proto, client = self.world.client()
        proto.dataReceived(GET)
        backend, upstream = self.world.accept_backend()
        backend.dataReceived(OK)
        self.assertIn(b"200 OK", client.take())
        return upstream

    def test_unchanged_pool_keeps_its_object_balancer_and_idle_connection(self):
        """A reload that leaves pool main alone keeps its BalancedPool, its balancer and its
        idle connection: the next request reuses it (no new connect)."""
        world = self.world
        self.served_once()
        pool = world.runtime.backends["main"]
        balancer = pool.balancer
        self.assertTrue(world.reload(two_pools("main", server={"proxy_name": "renamed"})))
        self.assertIs(world.service.runtime.backends["main"], pool)
        self.assertIs(pool.balancer, balancer)
        connects = len(world.reactor.tcpClients)
        proto, client = world.client()
        proto.dataReceived(GET)
        self.assertEqual(len(world.reactor.tcpClients), connects, "the idle connection is reused")

    def test_members_change_keeps_the_pool_and_the_staying_members_state(self):
        """A member added: same BalancedPool, the staying member keeps its idle connection
        and statistics; the new member joins (with slow start when configured)."""
        world = self.world
        self.served_once()
        pool = world.runtime.backends["main"]
        [staying] = pool.members
        data = two_pools("main")
        data["pools"]["main"]["members"] = ["http://10.0.0.1:8000", "http://10.0.0.3:8000"]
        self.assertTrue(world.reload(data))
        self.assertIs(world.service.runtime.backends["main"], pool)
        self.assertEqual([m.name for m in pool.members], ["10.0.0.1:8000", "10.0.0.3:8000"])
        self.assertIs(pool.members[0], staying)
        self.assertEqual(staying.idle, 1)
        self.assertEqual(pool.config.members, ("http://10.0.0.1:8000", "http://10.0.0.3:8000"))

    def test_changed_pool_is_rebuilt_and_the_old_one_drained(self):
        """Another setting of pool main changes: a new BalancedPool; the old pool's idle
        connection closes at once, its busy one once its response is complete."""
        world = self.world
        client_a, transport_a = world.client(("127.0.0.1", 40001))
        client_b, transport_b = world.client(("127.0.0.1", 40002))
        client_a.dataReceived(GET)
        client_b.dataReceived(GET)
        backend_a, upstream_a = world.accept_backend()
        backend_b, upstream_b = world.accept_backend()
        backend_a.dataReceived(OK)
        self.assertIn(b"200 OK", transport_a.take())
        old_pool = world.runtime.backends["main"]
        self.assertEqual(old_pool.members[0].idle, 1)
        data = two_pools("main")
        data["pools"]["main"]["connect_timeout"] = 2
        with capturedLogs() as logs:
            self.assertTrue(world.reload(data))
        new_pool = world.service.runtime.backends["main"]
        self.assertIsNot(new_pool, old_pool)
        self.assertIn("reload: pool main changed: connect_timeout (rebuilt: its balancer state "
                      "and idle connections start afresh)", messages(logs))
        self.assertTrue(upstream_a.disconnecting, "idle: closed at once")
        self.assertFalse(upstream_b.disconnecting, "busy: not closed under its request")
        backend_b.dataReceived(OK)
        self.assertIn(b"200 OK", transport_b.take())
        self.assertTrue(upstream_b.disconnecting, "released to a drained pool: closed")
        self.assertEqual(old_pool.members[0].idle, 0)
        self.assertEqual([m.name for m in new_pool.members], ["10.0.0.1:8000"])


class ReloadWatcherTests(unittest.TestCase):
    def test_health_checks_follow_the_pools(self):
        """A reload adding [pools.main.health] starts probing (a probe connects at once);
        one removing it stops the checker: no probe on the next interval."""
        world = World(self, two_pools("main"))
        world.start()
        before = len(world.reactor.tcpClients)
        checked = two_pools("main")
        checked["pools"]["main"]["health"] = {"path": "/healthz", "interval": 5, "timeout": 1}
        self.assertTrue(world.reload(checked))
        probes = world.reactor.tcpClients[before:]
        self.assertEqual([c[:2] for c in probes], [("10.0.0.1", 8000)])
        world.reactor.advance(5)
        self.assertEqual(len(world.reactor.tcpClients), before + 2, "probing every 5 s")
        self.assertTrue(world.reload(two_pools("main")))
        after = len(world.reactor.tcpClients)
        world.reactor.advance(10)
        self.assertEqual(len(world.reactor.tcpClients), after, "the old checker is stopped")


class _Value:
    size = 1


class ReloadCacheTests(unittest.TestCase):
    def test_store_kept_when_its_config_is_unchanged(self):
        """A [cache] change other than the store keeps the store object; another store
        replaces it and the old one is closed."""
        world = World(self, config_dict(cache={"store": "memory"}))
        world.start()
        store = world.runtime.cache.store
        self.assertTrue(store.put(b"k", _Value(), 60).result)
        self.assertTrue(world.reload(config_dict(cache={"store": "memory", "lock_timeout": 1})))
        cache = world.service.runtime.cache
        self.assertEqual(cache.settings.lock_timeout, 1.0)
        self.assertIs(cache.store, store)
        self.assertTrue(world.reload(config_dict(cache={"store": "memory",
                                                        "store_options": {"max_bytes": "1m"}})))
        self.assertIsNot(world.service.runtime.cache.store, store)
        self.assertFalse(store.put(b"k", _Value(), 60).result, "the replaced store is closed")

    def test_bad_store_options_refuse_the_reload(self):
        """Store options are validated on reload as at start-up."""
        world = World(self, config_dict(cache={"store": "memory"}))
        world.start()
        old = world.runtime
        with capturedLogs() as logs:
            self.assertFalse(world.reload(config_dict(cache={"store": "memory",
                                                             "store_options": {"bogus": 1}})))
        self.assertIs(world.service.runtime, old)
        [line] = [m for m in messages(logs) if "reload refused" in m]
        self.assertIn("[cache] store", line)


class ReloadListenerTests(unittest.TestCase):
    def test_listeners_added_removed_and_kept(self):
        """A kept listener keeps its port; a new one is opened; a removed one is closed."""
        data = config_dict()
        data["server"]["listen"] = ["tcp:8001:interface=127.0.0.1"]
        world = World(self, data)
        world.start()
        [kept] = world.service.ports
        data = copy.deepcopy(data)
        data["server"]["listen"] = ["tcp:8001:interface=127.0.0.1", "tcp:8002:interface=127.0.0.1"]
        self.assertTrue(world.reload(data))
        self.assertIs(world.service.ports[0], kept)
        self.assertEqual([p[0] for p in world.reactor.tcpServers], [8001, 8002])
        data = copy.deepcopy(data)
        data["server"]["listen"] = ["tcp:8002:interface=127.0.0.1"]
        stopped = []
        kept.stopListening = lambda: stopped.append(kept)
        self.assertTrue(world.reload(data))
        self.assertEqual(stopped, [kept])
        self.assertEqual(len(world.service.ports), 1)

    def test_listener_that_cannot_listen_refuses_the_whole_reload(self):
        """A new listener that fails: the ones opened for this reload are closed again and
        the running config stays."""
        world = World(self)
        world.start()
        old = world.runtime
        data = config_dict()
        data["server"]["listen"] = ["tcp:8003:interface=127.0.0.1",
                                    "ssl:8443:privateKey=/nonexistent/key.pem"]
        with capturedLogs() as logs:
            self.assertFalse(world.reload(data))
        self.assertIs(world.service.runtime, old)
        self.assertEqual(len(world.service.ports), 1)
        [line] = [m for m in messages(logs) if "reload refused" in m]
        # the certificate is read while the new runtime is built, before any listener opens
        self.assertIn("/nonexistent/key.pem: cannot read the certificate file", line)

    def test_reload_ignored_when_not_running(self):
        """A reload before start or during shutdown does nothing."""
        world = World(self)
        old = world.runtime
        self.assertFalse(world.reload(two_pools("other")))
        self.assertIs(world.service.runtime, old)
