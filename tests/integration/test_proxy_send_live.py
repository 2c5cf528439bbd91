"""``send_proxy_protocol`` on loopback: raw backends that demand a PROXY header (read with
``revproxy.server.proxyproto``'s parser, in clear before TLS on an https member, on a Unix
socket too) and answer with what it said. The backend sees the client's address; two
clients never share a backend connection; one client's keep-alive requests reuse one; a
client behind a trusted balancer is forwarded with the balancer's client; health probes
open with ``PROXY UNKNOWN`` / LOCAL."""

from __future__ import annotations

import json
import os

from twisted.internet import defer, reactor, ssl, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest
from OpenSSL import crypto

from revproxy.netio import QuietFactory
from revproxy.server.proxyproto import (
    LOCAL, HeaderParser, ProxyHeaderError, v1_header,
)
from tests.integration.support import (
    LOOPBACK, RawClient, connect, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_unix_members_live import short_dir
from tests.integration.test_upstream_tls import members_closed
from tests.tlscerts import ThrowawayCA

GET = b"GET /who HTTP/1.1\r\nHost: app.test\r\n\r\n"


class HttpAfterHeader(Protocol):
    """Answers each GET with JSON: the connection's number at the backend, the PROXY
    header it opened with, and the request's number on the connection."""

    def __init__(self, number, header):
        self.number = number
        self.header = header
        self.requests = 0
        self._buffer = b""

    def dataReceived(self, data):  # noqa: N802
        self._buffer += data
        while b"\r\n\r\n" in self._buffer:
            _, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
            self.requests += 1
            header = self.header
            body = json.dumps({
                "conn": self.number, "request": self.requests, "command": header.command,
                "family": header.family, "source": header.source,
                "destination": header.destination,
            }).encode("ascii")
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


class HeaderReader(Protocol):
    """Reads the PROXY header (refusing a connection without one, as a backend started
    with ``--proxy-protocol`` does), then hands the connection to HTTP, over TLS when the
    factory has a TLS context."""

    def __init__(self, factory):
        self._factory = factory
        self._parser = HeaderParser()

    def dataReceived(self, data):  # noqa: N802
        try:
            found = self._parser.feed(data)
        except ProxyHeaderError as e:
            self._factory.refused.append(str(e))
            self.transport.abortConnection()
            return
        if found is None:
            return
        header, rest = found
        inner = self._factory.inner(header)
        self.dataReceived = inner.dataReceived
        self.connectionLost = inner.connectionLost
        inner.makeConnection(self.transport)
        if rest:
            inner.dataReceived(rest)


class ProxyBackend(Factory):
    noisy = False

    def __init__(self, tls=None):
        self.tls = tls
        self.headers = []  # the header of each connection, in order
        self.refused = []

    def buildProtocol(self, addr):  # noqa: N802
        return HeaderReader(self)

    def inner(self, header):
        self.headers.append(header)
        http = HttpAfterHeader(len(self.headers), header)
        if self.tls is None:
            return http
        return TLSMemoryBIOFactory(self.tls, False, QuietFactory(http)).buildProtocol(None)


class SendProxyProtocolTests(unittest.TestCase):
    timeout = 20

    def setUp(self):
        self.services = []
        # runs after every stopService: closing a pooled TLS connection takes a few turns
        self.addCleanup(lambda: members_closed(self.services))

    def backend(self, tls=None):
        factory = ProxyBackend(tls)
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        return factory, port.getHost().port

    @defer.inlineCallbacks
    def proxy(self, members, version, **pool):
        data = proxy_config(members)
        data["pools"]["main"]["send_proxy_protocol"] = version
        data["pools"]["main"].update(pool)
        service, port = yield start_proxy(self, data)
        self.services.append(service)
        return service, port

    @defer.inlineCallbacks
    def ask(self, client, count=1):
        """``count`` GETs in turn on ``client``; their JSON answers."""
        answers = []
        for n in range(1, count + 1):
            client.transport.write(GET)
            responses = yield with_timeout(client.responses(len(answers) + 1))
            head, body = responses[-1]
            self.assertEqual(head.status, 200, body)
            answers.append(json.loads(body))
        return answers

    @defer.inlineCallbacks
    def client(self, port):
        client = yield connect(port)
        self.addCleanup(client.transport.loseConnection)
        return client

    @defer.inlineCallbacks
    def test_v1_backend_sees_the_client_and_the_address_it_connected_to(self):
        backend, backend_port = self.backend()
        _, port = yield self.proxy([backend_port], "v1")
        client = yield self.client(port)
        [answer] = yield self.ask(client)
        here = client.transport.getHost()
        self.assertEqual(answer["family"], "TCP4")
        self.assertEqual(answer["source"], [LOOPBACK, here.port])
        self.assertEqual(answer["destination"], [LOOPBACK, port])
        self.assertEqual(backend.refused, [])

    @defer.inlineCallbacks
    def test_two_clients_never_share_and_keep_alive_reuses_one_connection(self):
        """A's two requests (B's in between, while A's connection is idle) go on A's
        connection; B gets its own, naming B."""
        backend, backend_port = self.backend()
        _, port = yield self.proxy([backend_port], "v2")
        a = yield self.client(port)
        b = yield self.client(port)
        [a1] = yield self.ask(a)
        [b1] = yield self.ask(b)
        a.received = b""
        [a2] = yield self.ask(a)
        self.assertEqual((a1["conn"], a1["request"]), (a2["conn"], 1))
        self.assertEqual(a2["request"], 2)
        self.assertNotEqual(b1["conn"], a1["conn"])
        self.assertEqual(b1["source"], [LOOPBACK, b.transport.getHost().port])
        self.assertEqual(a2["source"], [LOOPBACK, a.transport.getHost().port])
        self.assertEqual(len(backend.headers), 2)

    @defer.inlineCallbacks
    def test_client_behind_a_trusted_balancer_is_forwarded_with_its_client(self):
        """A haproxy: listener reads the balancer's v1 header; the member's v2 header
        names that client and the destination the balancer gave."""
        backend, backend_port = self.backend()
        data = proxy_config([backend_port])
        data["server"]["listen"] = ["haproxy:tcp:0:interface=%s" % LOOPBACK]
        data["server"]["proxy_protocol_from"] = ["127.0.0.0/8"]
        data["pools"]["main"]["send_proxy_protocol"] = "v2"
        service, port = yield start_proxy(self, data)
        self.services.append(service)
        client = RawClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), client)
        self.addCleanup(client.transport.loseConnection)
        client.transport.write(v1_header(("203.0.113.7", 40001), ("192.0.2.10", 80)))
        [answer] = yield self.ask(client)
        self.assertEqual(answer["source"], ["203.0.113.7", 40001])
        self.assertEqual(answer["destination"], ["192.0.2.10", 80])

    @defer.inlineCallbacks
    def _probed(self, version):
        backend, backend_port = self.backend()
        yield self.proxy([backend_port], version,
                         health={"path": "/health", "interval": "30s", "timeout": "5s"})
        for _ in range(500):  # the first probe goes out at start; bounded wait for it
            if backend.headers:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        return backend

    @defer.inlineCallbacks
    def test_v1_probe_sends_unknown(self):
        backend = yield self._probed("v1")
        self.assertEqual([(h.version, h.family, h.source) for h in backend.headers],
                         [(1, "UNKNOWN", None)])

    @defer.inlineCallbacks
    def test_v2_probe_sends_local(self):
        backend = yield self._probed("v2")
        self.assertEqual([(h.version, h.command) for h in backend.headers], [(2, LOCAL)])

    @defer.inlineCallbacks
    def test_https_member_reads_the_header_before_the_handshake(self):
        """The header goes in clear, then TLS (verified against the test CA); the same
        client's next request reuses the TLS connection."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ca = ThrowawayCA(directory)
        cert, key = ca.issue("backend", [LOOPBACK])[2:]
        options = ssl.CertificateOptions(privateKey=crypto.PKey.from_cryptography_key(key),
                                         certificate=crypto.X509.from_cryptography(cert))
        backend, backend_port = self.backend(tls=options)
        _, port = yield self.proxy(["https://%s:%d" % (LOOPBACK, backend_port)], "v1",
                                   tls_ca=ca.cert_path)
        client = yield self.client(port)
        first, second = yield self.ask(client, 2)
        self.assertEqual(first["source"], [LOOPBACK, client.transport.getHost().port])
        self.assertEqual((second["conn"], second["request"]), (first["conn"], 2))
        self.assertEqual(backend.refused, [])

    @defer.inlineCallbacks
    def test_unix_member_gets_the_header(self):
        backend = ProxyBackend()
        path = os.path.join(short_dir(self), "app.sock")
        listening = reactor.listenUNIX(path, backend)
        self.addCleanup(listening.stopListening)
        _, port = yield self.proxy(["unix:" + path], "v1")
        client = yield self.client(port)
        [answer] = yield self.ask(client)
        self.assertEqual(answer["source"], [LOOPBACK, client.transport.getHost().port])
        self.assertEqual(answer["destination"], [LOOPBACK, port])
