"""The scheme travels from the listener: cache keys and purge URLs keep http and https apart."""

from __future__ import annotations

from twisted.trial import unittest

from revproxy.admin.status import _url_key
from revproxy.server.protocol import ProxyFactory
from tests.unit.world import Transport, World, config_dict

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
CACHEABLE = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\nok"


class SchemeTests(unittest.TestCase):
    def connect(self, world, scheme):
        proto = ProxyFactory(world.service._holder, scheme, "x").buildProtocol(None)
        transport = Transport()
        proto.makeConnection(transport)
        return proto, transport

    def test_http_and_https_are_cached_apart(self):
        """A response cached for an https listener is not a hit on an http one (RFC 9111 keys
        by effective URI, scheme included)."""
        world = World(self, config_dict(cache={"store": "memory"}))
        proto, client = self.connect(world, "https")
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(CACHEABLE)
        proto.dataReceived(GET)
        self.assertIn(b"; hit", client.value())
        proto, client = self.connect(world, "http")
        proto.dataReceived(GET)
        self.assertNotIn(b"; hit", client.value())
        self.assertEqual(upstream.value().count(b"GET /x"), 2, "the http request went upstream")

    def test_purge_url_keys_follow_the_scheme(self):
        """/purge?url= accepts https URLs and keys them apart from http ones."""
        world = World(self, config_dict(cache={"store": "memory"}))
        settings = world.runtime.cache.settings
        https, http = _url_key(b"https://a.test/x", settings), _url_key(b"http://a.test/x", settings)
        self.assertIsNotNone(https)
        self.assertNotEqual(https, http)
        self.assertIsNone(_url_key(b"ftp://a.test/x", settings))
