"""The admin listener over the proxy's own TLS: an ``ssl:`` admin endpoint with
``client_auth=required`` lets in only clients holding a certificate from ``[tls] client_ca``
(client-certificate auth, alone or with the bearer token), and speaks HTTP/1.1 in ALPN."""

from __future__ import annotations

import json
import os

from twisted.internet import defer, reactor, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.trial import unittest

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.tls.runtime import build_tls
from tests.integration.support import (
    LOOPBACK, RawClient, backend_site, listen, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_tls_listener import ssl_listen
from tests.tlscerts import ThrowawayCA

STATUS = b"GET /api/status HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"


class AdminTLSTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def start(self, client_auth="required", token=None):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.ca = ThrowawayCA(directory, name="Admin Test CA")
        cert, key, _, _ = self.ca.issue("admin", names=("localhost",))
        self.client_cert = self.ca.issue("operator", names=("operator",), client=True)
        other = ThrowawayCA(directory, name="Other CA")
        self.stranger_cert = other.issue("stranger", names=("stranger",), client=True)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        admin = {"listen": [ssl_listen(key, cert) + ":client_auth=" + client_auth]}
        if token:
            admin["token"] = token
        data = proxy_config([backend.getHost().port], admin=admin,
                            tls={"client_ca": self.ca.cert_path})
        self.service, _ = yield start_proxy(self, data)
        self.admin_port = self.service.ports[0].getHost().port

    def options(self, identity=None, alpn=None):
        kwargs = {}
        if identity is not None:
            cert_path, key_path = identity[0], identity[1]
            with open(cert_path, "rb") as c, open(key_path, "rb") as k:
                kwargs["clientCertificate"] = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
        if alpn:
            kwargs["acceptableProtocols"] = alpn
        with open(self.ca.cert_path, "rb") as f:
            root = ssl.Certificate.loadPEM(f.read())
        return ssl.optionsForClientTLS("localhost", trustRoot=root, **kwargs)

    @defer.inlineCallbacks
    def fetch(self, options, request=STATUS):
        client = RawClient()
        yield connectProtocol(SSL4ClientEndpoint(reactor, LOOPBACK, self.admin_port, options),
                              client)
        client.transport.write(request)
        received = yield with_timeout(client.closed, 10)
        return client, received

    @defer.inlineCallbacks
    def test_a_client_certificate_from_the_ca_is_let_in(self):
        yield self.start()
        client, received = yield self.fetch(self.options(self.client_cert, [b"h2", b"http/1.1"]))
        self.assertTrue(received.startswith(b"HTTP/1.1 200"), received[:200])
        self.assertEqual(client.transport.negotiatedProtocol, b"http/1.1")  # never h2 here
        body = received.split(b"\r\n\r\n", 1)[1]
        self.assertIn("pools", json.loads(body))

    @defer.inlineCallbacks
    def test_no_certificate_or_another_ca_is_refused_in_the_handshake(self):
        yield self.start()
        for identity in (None, self.stranger_cert):
            _, received = yield self.fetch(self.options(identity))
            self.assertEqual(received, b"", "answered without a valid client certificate")

    @defer.inlineCallbacks
    def test_certificate_and_token_together(self):
        yield self.start(token="s3cret-token")
        _, received = yield self.fetch(self.options(self.client_cert))
        self.assertTrue(received.startswith(b"HTTP/1.1 401"), received[:100])
        request = STATUS.replace(b"Host: admin\r\n",
                                 b"Host: admin\r\nAuthorization: Bearer s3cret-token\r\n")
        _, received = yield self.fetch(self.options(self.client_cert), request)
        self.assertTrue(received.startswith(b"HTTP/1.1 200"), received[:100])


class AdminTLSConfigTests(unittest.TestCase):
    def test_client_auth_without_a_ca_and_tls_kind_are_refused_naming_the_key(self):
        base = {"pools": {"main": {"members": ["http://127.0.0.1:1"]}},
                "buffering": {"temp_dir": "/tmp"}}
        cases = [
            ({"listen": ["ssl:0:privateKey=/x/k.pem:certKey=/x/c.pem:client_auth=required"]},
             "needs [tls] client_ca"),
            ({"listen": ["tls:0"]}, "its own certificate"),
        ]
        for admin, expected in cases:
            config = parse_config(dict(base, admin=admin), "conf/admin.toml")
            with self.assertRaises(ConfigError) as caught:
                build_tls(config, ("http/1.1",), 0.0)
            self.assertIn("[admin] listen", str(caught.exception))
            self.assertIn(expected, str(caught.exception))
