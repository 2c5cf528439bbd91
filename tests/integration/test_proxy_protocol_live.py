"""PROXY protocol listeners (``haproxy:``) on loopback: a raw client plays the load balancer
and sends a v1 or v2 header, then HTTP in clear or over TLS; the backend sees the header's
client in X-Forwarded-For; a peer outside proxy_protocol_from is refused."""

from __future__ import annotations

import json

from twisted.internet import defer, reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial import unittest

from revproxy.server.proxyproto import v1_header, v2_header
from tests.integration.support import (
    LOOPBACK, RawClient, backend_site, header, listen, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_tls_listener import ssl_listen, write_self_signed
from tests.integration.test_upstream_tls import capture_log

REQUEST = b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n"


class Balancer(RawClient):
    """A raw client that opens with a PROXY header, then (``tls``) starts TLS."""

    def __init__(self, preamble, tls=None):
        super().__init__()
        self._preamble = preamble
        self._tls = tls

    def connectionMade(self):
        self.transport.write(self._preamble)
        if self._tls is not None:
            self.transport.startTLS(self._tls)


class ProxyProtocolTests(unittest.TestCase):
    timeout = 20

    def setUp(self):
        self.backend = listen(backend_site())
        self.addCleanup(self.backend.stopListening)

    def _config(self, listener, trusted=("127.0.0.0/8",), **server):
        data = proxy_config([self.backend.getHost().port])
        data["server"]["listen"] = [listener]
        data["server"]["proxy_protocol_from"] = list(trusted)
        data["server"].update(server)
        return data

    @defer.inlineCallbacks
    def _exchange(self, port, preamble, tls=None):
        client = Balancer(preamble, tls)
        yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), client)
        client.transport.write(REQUEST)
        [(head, body)] = yield with_timeout(client.responses(1))
        client.transport.loseConnection()
        return head, json.loads(body)

    @defer.inlineCallbacks
    def _check_forwarded(self, listener, preamble, tls=None, expected="203.0.113.7"):
        _, port = yield start_proxy(self, self._config(listener))
        head, seen = yield self._exchange(port, preamble, tls)
        self.assertEqual(head.status, 200)
        forwarded = [v for k, v in seen["headers"] if k == "x-forwarded-for"]
        self.assertEqual(forwarded, [expected])
        proto = [v for k, v in seen["headers"] if k == "x-forwarded-proto"]
        self.assertEqual(proto, ["https" if tls is not None else "http"])

    def test_v1_on_a_plain_listener(self):
        """A v1 header: the backend sees its client in X-Forwarded-For."""
        return self._check_forwarded(
            "haproxy:tcp:0:interface=%s" % LOOPBACK,
            v1_header(("203.0.113.7", 40001), (LOOPBACK, 80)))

    def test_v2_on_a_plain_listener(self):
        return self._check_forwarded(
            "haproxy:tcp:0:interface=%s" % LOOPBACK,
            v2_header(("203.0.113.7", 40001), (LOOPBACK, 80), tlvs=b"\x04\x00\x01\x00"))

    def test_v2_ipv6_client(self):
        return self._check_forwarded(
            "haproxy:tcp:0:interface=%s" % LOOPBACK,
            v2_header(("2001:db8::5", 40001), ("2001:db8::1", 80)), expected="2001:db8::5")

    def test_v2_local_keeps_the_tcp_peer(self):
        """LOCAL (the balancer's own check): the TCP peer is the client."""
        return self._check_forwarded(
            "haproxy:tcp:0:interface=%s" % LOOPBACK, v2_header(None, None, local=True),
            expected=LOOPBACK)

    def _tls_listener(self):
        key_path, cert_path, _ = write_self_signed(self.mktemp_dir())
        return "haproxy:" + ssl_listen(key_path, cert_path)

    def mktemp_dir(self):
        import os

        path = self.mktemp()
        os.makedirs(path)
        return path

    def test_v1_on_a_tls_listener(self):
        """The header precedes the TLS handshake; the HTTPS request carries its client."""
        return self._check_forwarded(
            self._tls_listener(), v1_header(("198.51.100.20", 5000), (LOOPBACK, 443)),
            tls=ssl.CertificateOptions(), expected="198.51.100.20")

    def test_v2_on_a_tls_listener(self):
        return self._check_forwarded(
            self._tls_listener(), v2_header(("198.51.100.20", 5000), (LOOPBACK, 443)),
            tls=ssl.CertificateOptions(), expected="198.51.100.20")

    @defer.inlineCallbacks
    def test_untrusted_peer_is_refused(self):
        """127.0.0.1 is not in proxy_protocol_from: closed before a byte is read, its
        header never believed, and the refusal logged."""
        lines = capture_log(self)
        _, port = yield start_proxy(self, self._config(
            "haproxy:tcp:0:interface=%s" % LOOPBACK, trusted=("10.0.0.0/8",)))
        client = Balancer(v1_header(("203.0.113.7", 1), (LOOPBACK, 80)) + REQUEST)
        yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), client)
        received = yield with_timeout(client.closed)
        self.assertEqual(received, b"")
        self.assertTrue(any("proxy_protocol_from" in line and "127.0.0.1" in line
                            for line in lines), lines[-5:])

    @defer.inlineCallbacks
    def test_missing_header_is_refused(self):
        """A trusted peer that sends HTTP without the header is closed, reason logged."""
        lines = capture_log(self)
        _, port = yield start_proxy(self, self._config("haproxy:tcp:0:interface=%s" % LOOPBACK))
        client = Balancer(REQUEST)
        yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), client)
        received = yield with_timeout(client.closed)
        self.assertEqual(received, b"")
        self.assertTrue(any("no PROXY protocol header" in line for line in lines), lines[-5:])

    @defer.inlineCallbacks
    def test_ip_lists_judge_the_headers_client(self):
        """A deny list naming the header's client closes the connection, though the TCP
        peer (the balancer) is allowed."""
        data = self._config("haproxy:tcp:0:interface=%s" % LOOPBACK)
        data["ip_lists"] = [{"name": "bad", "action": "deny", "addresses": ["203.0.113.0/24"],
                             "listeners": data["server"]["listen"]}]
        _, port = yield start_proxy(self, data)
        client = Balancer(v1_header(("203.0.113.7", 1), (LOOPBACK, 80)))
        yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), client)
        client.transport.write(REQUEST)
        received = yield with_timeout(client.closed)
        self.assertEqual(received, b"")
        # and another client of the same balancer passes
        head, seen = yield self._exchange(port, v1_header(("192.0.2.1", 1), (LOOPBACK, 80)))
        self.assertEqual(head.status, 200)
