"""Connection limits and the request body's minimum rate, on a fake reactor (tests/unit/world)."""

from __future__ import annotations

from twisted.trial import unittest

from revproxy.protection.connections import (
    REFUSED_PER_IP,
    REFUSED_TOTAL,
    IdleConnections,
    PerAddress,
    admission,
)
from tests.unit.world import World, config_dict

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class AdmissionTests(unittest.TestCase):
    def test_decisions(self):
        """Per-IP ceiling first; below the total admit; at the total shed an idle one, else refuse."""
        self.assertEqual(admission(5, 10, 3, 3, True), REFUSED_PER_IP)
        self.assertEqual(admission(5, 10, 3, 0, False), "admit")
        self.assertEqual(admission(10, 10, 0, 3, True), "shed")
        self.assertEqual(admission(10, 10, 0, 3, False), REFUSED_TOTAL)

    def test_idle_connections_oldest_first_and_readding_makes_young(self):
        """pop_oldest returns in idle order; add() again moves a connection to the young end."""
        idle = IdleConnections()
        for name in "abc":
            idle.add(name)
        idle.add("a")
        idle.discard("b")
        self.assertEqual([idle.pop_oldest(), idle.pop_oldest(), idle.pop_oldest()], ["c", "a", None])

    def test_per_address_entries_vanish_at_zero(self):
        """Counts are kept only for addresses with open connections."""
        counts = PerAddress()
        counts.add("10.0.0.1")
        counts.add("10.0.0.1")
        counts.remove("10.0.0.1")
        self.assertEqual(counts.count("10.0.0.1"), 1)
        counts.remove("10.0.0.1")
        self.assertEqual(counts._counts, {})


class PerAddressLimitTests(unittest.TestCase):
    def test_connection_over_the_per_ip_limit_is_refused_others_admitted(self):
        """With max_connections_per_ip 2 the third connection from one address is aborted;
        another address is admitted, and a slot freed by a close is usable again."""
        world = World(self, config_dict(limits={"max_connections_per_ip": 2}))
        first, _ = world.client(("192.0.2.1", 1))
        world.client(("192.0.2.1", 2))
        _, third = world.client(("192.0.2.1", 3))
        self.assertTrue(third.aborted)
        _, other = world.client(("192.0.2.2", 1))
        self.assertFalse(other.aborted)
        first.connectionLost(None)
        _, again = world.client(("192.0.2.1", 4))
        self.assertFalse(again.aborted)

    def test_trusted_proxies_are_exempt(self):
        """A load balancer in trusted_proxies is not held to the per-address limit."""
        world = World(self, config_dict(limits={"max_connections_per_ip": 1},
                                        server={"trusted_proxies": ["192.0.2.0/24"]}))
        world.client(("192.0.2.1", 1))
        _, second = world.client(("192.0.2.1", 2))
        self.assertFalse(second.aborted)

    def test_zero_is_off(self):
        """max_connections_per_ip 0: no per-address limit."""
        world = World(self, config_dict(limits={"max_connections_per_ip": 0}))
        transports = [world.client(("192.0.2.1", n))[1] for n in range(600)]
        self.assertFalse(any(t.aborted for t in transports))


class SheddingTests(unittest.TestCase):
    backend = None

    def keep_alive(self, world, peer):
        """A connection that served one request and now waits idle for the next."""
        proto, client = world.client(peer)
        proto.dataReceived(GET)
        if world.pending_connects:
            self.backend, _ = world.accept_backend()  # else the pooled one is reused
        self.backend.dataReceived(OK)
        self.assertIn(b"200 OK", client.take())
        return proto, client

    def test_full_proxy_closes_the_oldest_idle_connection_for_a_new_one(self):
        """At max_connections, a new client is admitted and the connection idle the longest
        is closed; the younger idle one stays."""
        world = World(self, config_dict(limits={"max_connections": 2}))
        _, oldest = self.keep_alive(world, ("192.0.2.1", 1))
        world.reactor.advance(1)
        _, younger = self.keep_alive(world, ("192.0.2.2", 1))
        _, new = world.client(("192.0.2.3", 1))
        self.assertFalse(new.aborted)
        self.assertTrue(oldest.disconnecting)
        self.assertFalse(younger.disconnecting)
        self.assertEqual(world.runtime.stats.shed, 1)
        self.assertEqual(len(world.runtime.stats.connections), 2)

    def test_connection_busy_again_is_not_idle(self):
        """An idle connection that starts a new request leaves the idle list: with no idle
        connection left, the new client is refused as before."""
        world = World(self, config_dict(limits={"max_connections": 1}))
        proto, client = self.keep_alive(world, ("192.0.2.1", 1))
        proto.dataReceived(GET)  # busy: its request waits for the backend
        _, new = world.client(("192.0.2.3", 1))
        self.assertTrue(new.aborted)
        self.assertFalse(client.disconnecting)

    def test_new_connection_without_a_request_is_not_shed(self):
        """A connection that has not sent a request yet is not an idle keep-alive one."""
        world = World(self, config_dict(limits={"max_connections": 1}))
        _, waiting = world.client(("192.0.2.1", 1))
        _, new = world.client(("192.0.2.3", 1))
        self.assertTrue(new.aborted)
        self.assertFalse(waiting.disconnecting)


class RequestBodyRateTests(unittest.TestCase):
    def config(self):
        return config_dict(limits={"min_request_rate": 100, "min_rate_grace": 5,
                                   "body_timeout": 60})

    def test_body_slower_than_the_minimum_gets_408_and_no_backend(self):
        """A body trickling at 20 B/s (min 100) is answered 408 at the end of the first
        5 s window, before any backend connection is made."""
        world = World(self, self.config())
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(4):
            proto.dataReceived(b"x" * 20)
            world.reactor.advance(1)
        self.assertEqual(client.value(), b"")
        world.reactor.advance(1.25)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 408 "))
        self.assertEqual(world.pending_connects, 0, "a slow body never holds a backend")

    def test_body_at_the_minimum_is_read_whole_then_forwarded(self):
        """A body at 150 B/s over several windows is never cut and reaches the backend."""
        world = World(self, self.config())
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n")
        for _ in range(20):
            world.reactor.advance(1)
            self.assertEqual(world.pending_connects, 0, "nothing forwarded before the end")
            proto.dataReceived(b"x" * 150)
        self.assertEqual(client.value(), b"")
        self.assertEqual(world.pending_connects, 1)
        backend, upstream = world.accept_backend()
        self.assertIn(b"x" * 3000, upstream.value())

    def test_zero_rate_keeps_the_silence_timeout(self):
        """min_request_rate 0: a body trickling 1 byte every 9 s is only held to body_timeout."""
        data = config_dict(limits={"min_request_rate": 0, "body_timeout": 10})
        world = World(self, data)
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        for _ in range(5):
            world.reactor.advance(9)
            proto.dataReceived(b"x")
        self.assertEqual(client.value(), b"")


class ConfigTests(unittest.TestCase):
    def test_defaults_and_bad_values(self):
        """The shipped defaults; a negative rate names the key."""
        from revproxy.config.errors import ConfigError
        from revproxy.config.load import load_config, parse_config

        limits = load_config(None).limits
        self.assertEqual((limits.min_request_rate, limits.min_response_rate, limits.min_rate_grace,
                          limits.max_connections_per_ip), (512, 1024, 10.0, 512))
        with self.assertRaises(ConfigError) as caught:
            parse_config(config_dict(limits={"min_response_rate": -1}), "f.toml")
        self.assertIn("min_response_rate", str(caught.exception))
        self.assertEqual(parse_config(config_dict(limits={"min_response_rate": "2k"}), "f").limits
                         .min_response_rate, 2048)


class FakeResource:
    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft, hard, refuse=False):
        self.limits = (soft, hard)
        self.refuse = refuse

    def getrlimit(self, which):
        return self.limits

    def setrlimit(self, which, limits):
        if self.refuse:
            raise ValueError("not allowed")
        self.limits = limits


class FileLimitTests(unittest.TestCase):
    def test_soft_limit_raised_to_hard(self):
        """The soft limit goes up to the hard limit; the report says from what."""
        from revproxy.protection.fdlimit import raise_open_files

        fake = FakeResource(1024, 524288)
        found = raise_open_files(fake)
        self.assertEqual(fake.limits, (524288, 524288))
        self.assertEqual((found.before, found.soft, found.hard), (1024, 524288, 524288))

    def test_refusal_keeps_the_limit_found(self):
        """A refused setrlimit is not an error: the limit found stays in force."""
        from revproxy.protection.fdlimit import raise_open_files

        found = raise_open_files(FakeResource(1024, 4096, refuse=True))
        self.assertEqual((found.before, found.soft), (1024, 1024))

    def test_lines_report_limits_and_warn_when_max_connections_does_not_fit(self):
        """One info line with every effective limit; a warning naming the key when the
        connection ceiling needs more descriptors than allowed."""
        from revproxy.protection.fdlimit import FileLimit, limit_lines

        lines = limit_lines(FileLimit(1024, 524288, 524288), 10000, 512)
        self.assertEqual(lines, [("info", "limits: open files 524288 (raised from 1024), "
                                          "max_connections 10000, max_connections_per_ip 512")])
        lines = limit_lines(FileLimit(1024, 1024, 1024), 10000, 0)
        self.assertEqual([level for level, _ in lines], ["info", "warn"])
        self.assertIn("max_connections_per_ip off", lines[0][1])
        self.assertIn("[limits] max_connections to 462", lines[1][1])


class PipelineHoldUnitTests(unittest.TestCase):
    HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"

    def held_connection(self, limits):
        """A response that ended while the client was not taking our output (paused)."""
        world = World(self, config_dict(limits=limits))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(self.HEAD)
        proto.pauseProducing()  # the transport's buffer is full
        backend.dataReceived(b"0\r\n\r\n")
        self.assertTrue(proto.held)
        return world, proto, client, backend, upstream

    def test_next_request_waits_for_the_client_then_goes(self):
        """The next request is not forwarded while the client has not taken the previous
        response; it is, at once, when the transport drains."""
        world, proto, client, backend, upstream = self.held_connection({})
        proto.dataReceived(GET)
        world.reactor.advance(2)
        self.assertEqual(upstream.value().count(b"GET /x"), 1)
        proto.resumeProducing()
        self.assertFalse(proto.held)
        self.assertEqual(upstream.value().count(b"GET /x"), 2)

    def test_held_client_that_never_reads_is_cut_at_send_timeout(self):
        """With min_response_rate off, a held client that never drains is aborted after
        send_timeout."""
        world, proto, client, _, _ = self.held_connection({"min_response_rate": 0,
                                                           "send_timeout": 20})
        world.reactor.advance(19)
        self.assertFalse(client.aborted)
        world.reactor.advance(1.5)
        self.assertTrue(client.aborted)

    def test_held_slow_reader_is_cut_by_the_minimum_rate(self):
        """With the default rate, a held client that takes nothing is cut at the end of
        the first window (10 s), well before send_timeout (60 s)."""
        world, proto, client, _, _ = self.held_connection({})
        world.reactor.advance(9.5)
        self.assertFalse(client.aborted)
        world.reactor.advance(1)
        self.assertTrue(client.aborted)
