"""Tunnels after a 101: idle timeout, maximum lifetime, one side's close closes the other."""

from __future__ import annotations

from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from tests.unit.world import World, config_dict

UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Key: k\r\n\r\n")
SWITCHING = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             b"Sec-WebSocket-Accept: x\r\n\r\n")


class TunnelTests(unittest.TestCase):
    def open_tunnel(self, **limits):
        """A World with one WebSocket tunnel open; returns (world, client side, backend side)
        as (protocol, transport) pairs."""
        world = World(self, config_dict(limits=limits))
        proto, client = world.client()
        proto.dataReceived(UPGRADE)
        backend, upstream = world.accept_backend()
        backend.dataReceived(SWITCHING)
        self.assertTrue(client.take().startswith(b"HTTP/1.1 101 "))
        upstream.clear()
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        return world, (proto, client), (backend, upstream)

    def logged(self, fragment):
        return [e for e in self.events
                if "tunnel closed" in e.get("log_format", "") and fragment in e.get("why", "")]

    def test_idle_tunnel_closed_after_timeout(self):
        """No byte either way for tunnel_idle_timeout: both sides closed, and logged."""
        world, (proto, client), (backend, upstream) = self.open_tunnel(tunnel_idle_timeout=30)
        world.reactor.advance(29.5)
        self.assertFalse(client.disconnecting)
        self.assertFalse(upstream.disconnecting)
        world.reactor.advance(1)
        self.assertTrue(client.disconnecting)
        self.assertTrue(upstream.disconnecting)
        self.assertFalse(client.aborted, "an idle tunnel is closed gracefully")
        self.assertIsNone(client.producer, "producer unregistered (else TLS never closes)")
        self.assertIsNone(upstream.producer)
        self.assertEqual(len(self.logged("tunnel_idle_timeout")), 1)

    def test_traffic_either_way_keeps_tunnel_open(self):
        """A byte in either direction restarts the idle timeout."""
        world, (proto, client), (backend, upstream) = self.open_tunnel(tunnel_idle_timeout=30)
        for step in range(10):  # 200 s of traffic every 20 s, alternating directions
            world.reactor.advance(20)
            if step % 2:
                proto.dataReceived(b"\x81\x01c")
            else:
                backend.dataReceived(b"\x81\x01b")
        self.assertFalse(client.disconnecting)
        self.assertFalse(upstream.disconnecting)
        self.assertEqual(upstream.value(), b"\x81\x01c" * 5)
        self.assertEqual(client.value(), b"\x81\x01b" * 5)
        world.reactor.advance(29.5)
        self.assertFalse(client.disconnecting)
        world.reactor.advance(1)
        self.assertTrue(client.disconnecting)
        self.assertTrue(upstream.disconnecting)

    def test_max_lifetime_closes_a_busy_tunnel(self):
        """tunnel_max_lifetime aborts both sides however busy the tunnel is."""
        world, (proto, client), (backend, upstream) = self.open_tunnel(
            tunnel_idle_timeout=30, tunnel_max_lifetime=100)
        for _ in range(9):
            world.reactor.advance(10)
            proto.dataReceived(b"x")
            backend.dataReceived(b"y")
        world.reactor.advance(9.5)
        self.assertFalse(client.disconnecting)
        world.reactor.advance(1)
        self.assertTrue(client.aborted)
        self.assertTrue(upstream.aborted)
        self.assertEqual(len(self.logged("tunnel_max_lifetime")), 1)

    def test_no_max_lifetime_by_default(self):
        """With the default (0 = off) a busy tunnel outlives any fixed time."""
        world, (proto, client), (backend, upstream) = self.open_tunnel(tunnel_idle_timeout=30)
        for _ in range(100):  # 2000 s
            world.reactor.advance(20)
            proto.dataReceived(b"x")
        self.assertFalse(client.disconnecting)
        self.assertFalse(upstream.disconnecting)

    def test_backend_close_closes_client_and_stops_the_timer(self):
        """When the backend closes, the client side is closed (producer unregistered first)
        and the tunnel's deadline is forgotten."""
        world, (proto, client), (backend, upstream) = self.open_tunnel(tunnel_idle_timeout=30)
        backend.connectionLost(None)
        self.assertTrue(client.disconnecting)
        self.assertIsNone(client.producer)
        proto.connectionLost(None)
        world.reactor.advance(60)
        self.assertEqual(self.logged(""), [], "no timeout fires for a closed tunnel")

    def test_client_close_closes_backend(self):
        """When the client closes, the backend side is closed too."""
        world, (proto, client), (backend, upstream) = self.open_tunnel(tunnel_idle_timeout=30)
        proto.connectionLost(None)
        self.assertTrue(upstream.disconnecting)
        self.assertIsNone(upstream.producer)
