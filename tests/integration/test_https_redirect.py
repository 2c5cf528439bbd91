"""Per-route HTTPS redirect and HSTS on real listeners: a plain tcp: listener and an ssl: one
in front of the same routes."""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource, server

from revproxy.config.load import parse_config
from revproxy.tap import build
from tests.integration.support import (
    LOOPBACK, connect, header, listen, proxy_config, with_timeout,
)
from tests.integration.test_tls_listener import ssl_listen, tls_connect, write_self_signed


class Counter(resource.Resource):
    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.requests = 0

    def render(self, request):
        self.requests += 1
        request.setHeader(b"strict-transport-security", b"max-age=1")
        return b"ok"


class HttpsRedirectTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        key_path, cert_path, self.cert_pem = write_self_signed(directory)
        self.backend = Counter()
        site = server.Site(self.backend)
        site.log = lambda request: None
        port = listen(site)
        self.addCleanup(port.stopListening)
        data = proxy_config([port.getHost().port], routes=[
            {"pool": "main", "path_prefix": "/secure", "https_redirect": True,
             "hsts": {"max_age": "730d", "include_subdomains": True}},
            {"pool": "main", "hsts": "max-age=600"},
        ])
        data["server"]["listen"] = ["tcp:0:interface=%s" % LOOPBACK,
                                    ssl_listen(key_path, cert_path)]
        data.setdefault("buffering", {})["temp_dir"] = self.mktemp()
        service = build(parse_config(data, "<test>"), reactor, randbytes=lambda n: b"\x01" * n)
        service.startService()
        self.addCleanup(service.stopService)
        plain, tls = yield service.listening
        self.plain, self.tls = plain.getHost().port, tls.getHost().port

    @defer.inlineCallbacks
    def ask(self, client, target):
        client.transport.write(b"GET %s HTTP/1.1\r\nHost: site.test:8080\r\n\r\n" % target)
        responses = yield with_timeout(client.responses(1))
        client.transport.loseConnection()
        return responses[0][0]

    @defer.inlineCallbacks
    def test_redirect_on_plain_listener_only(self):
        """Over plain HTTP a redirecting route gets 308 to https (the backend never hears of
        it, no HSTS); over the ssl: listener the same request is proxied with the route's
        HSTS value replacing the backend's."""
        head = yield self.ask((yield connect(self.plain)), b"/secure/x?y=1")
        self.assertEqual(head.status, 308)
        self.assertEqual(header(head, b"location"), b"https://site.test/secure/x?y=1")
        self.assertIsNone(header(head, b"strict-transport-security"))
        self.assertEqual(self.backend.requests, 0)
        head = yield self.ask((yield tls_connect(self.tls, self.cert_pem)), b"/secure/x?y=1")
        self.assertEqual(head.status, 200)
        self.assertEqual(self.backend.requests, 1)
        self.assertEqual([v for k, v in head.headers if k == b"strict-transport-security"],
                         [b"max-age=63072000; includeSubDomains"])

    @defer.inlineCallbacks
    def test_hsts_never_over_plain_http(self):
        """A route with hsts but no redirect: over plain HTTP no Strict-Transport-Security
        from the proxy (the backend's own is passed through untouched); over TLS, the
        route's."""
        head = yield self.ask((yield connect(self.plain)), b"/other")
        self.assertEqual(head.status, 200)
        self.assertEqual([v for k, v in head.headers if k == b"strict-transport-security"],
                         [b"max-age=1"])
        head = yield self.ask((yield tls_connect(self.tls, self.cert_pem)), b"/other")
        self.assertEqual([v for k, v in head.headers if k == b"strict-transport-security"],
                         [b"max-age=600"])
