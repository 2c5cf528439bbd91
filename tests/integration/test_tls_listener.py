"""``ssl:`` listeners on loopback: the proxy's bytes go through TLS (keep-alive, close, a large
response, a request body), in-process and through the twistd plugin."""

from __future__ import annotations

import datetime
import json
import os

from twisted.internet import defer, reactor, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.integration.support import (
    LOOPBACK, RawClient, backend_site, header, listen, pattern, proxy_config, start_proxy,
    scripted_factory, with_timeout,
)
from tests.integration.test_twistd import spawn


def write_self_signed(directory):
    """A fresh self-signed certificate for ``localhost`` and its key, as PEM files in
    ``directory``; returns (key path, cert path, cert PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_path = os.path.join(directory, "key.pem")
    cert_path = os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key_pem)
    with open(cert_path, "wb") as f:
        f.write(cert_pem)
    return key_path, cert_path, cert_pem


def ssl_listen(key_path, cert_path):
    # ':' and '=' are the endpoint syntax's separators: escape them in paths
    def esc(path):
        return path.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")

    return "ssl:0:interface=%s:privateKey=%s:certKey=%s" % (LOOPBACK, esc(key_path), esc(cert_path))


@defer.inlineCallbacks
def tls_connect(port, cert_pem):
    """A raw client over TLS that verifies the proxy's certificate (so plaintext or a wrong
    certificate fails the handshake)."""
    options = ssl.optionsForClientTLS(
        "localhost", trustRoot=ssl.Certificate.loadPEM(cert_pem))
    client = RawClient()
    yield connectProtocol(SSL4ClientEndpoint(reactor, LOOPBACK, port, options), client)
    return client


class TLSListenerTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        key_path, cert_path, self.cert_pem = write_self_signed(directory)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port])
        self.listen_description = ssl_listen(key_path, cert_path)
        data["server"]["listen"] = [self.listen_description]
        self.service, self.port = yield start_proxy(self, data)

    @defer.inlineCallbacks
    def client(self):
        client = yield with_timeout(tls_connect(self.port, self.cert_pem))
        self.addCleanup(lambda: client.transport.abortConnection() if client.transport.connected else None)
        return client

    @defer.inlineCallbacks
    def test_keep_alive_requests_share_one_tls_connection(self):
        """Three requests in turn on one TLS connection all get their responses."""
        client = yield self.client()
        for n in (1, 2, 3):
            client.transport.write(b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n" % (n * 100))
            responses = yield with_timeout(client.responses(n))
            head, body = responses[-1]
            self.assertEqual(head.status, 200)
            self.assertEqual(body, pattern(n * 100))
        self.assertTrue(client.transport.connected)

    @defer.inlineCallbacks
    def test_backend_told_the_scheme_is_https(self):
        """A request over an ssl: listener reaches the backend with X-Forwarded-Proto https
        (the scheme is carried from the listener, not hard-coded)."""
        import json

        client = yield self.client()
        client.transport.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        (head, body), = yield with_timeout(client.responses(1))
        headers = dict(json.loads(body)["headers"])
        self.assertEqual(headers.get("x-forwarded-proto"), "https")

    @defer.inlineCallbacks
    def test_websocket_tunnel_over_tls_relays_and_closes(self):
        """A WebSocket upgrade over an ssl: listener: 101, bytes echo both ways through the
        TLS transport, and when the backend ends the tunnel the TLS client connection closes
        (the producer is unregistered before the close)."""
        log = []
        ends = []

        def script(proto, head):
            proto.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                  b"Upgrade: websocket\r\n\r\n")

            def echo(data):
                proto.transport.write(b"echo:" + data)
                if b"bye" in data:
                    ends.append(True)
                    proto.transport.loseConnection()
            proto.dataReceived = echo

        backend = listen(scripted_factory(script, log))
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port])
        data["server"]["listen"] = [self.listen_description]
        _, port = yield start_proxy(self, data)
        client = yield with_timeout(tls_connect(port, self.cert_pem))
        self.addCleanup(lambda: client.transport.abortConnection()
                        if client.transport.connected else None)
        client.transport.write(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                               b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
        [(head, _)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 101)
        start = len(client.received)
        client.transport.write(b"\x81\x05hello")
        yield with_timeout(client.until(lambda data: data[start:].endswith(b"hello")))
        self.assertTrue(client.received[start:].endswith(b"echo:\x81\x05hello"))
        client.transport.write(b"bye")
        received = yield with_timeout(client.closed, 5)
        self.assertTrue(received.endswith(b"echo:bye"))
        self.assertEqual(ends, [True])

    @defer.inlineCallbacks
    def test_connection_close_closes_the_tls_connection(self):
        """A request with Connection: close gets its response and then the connection is
        closed by the proxy (bounded wait)."""
        client = yield self.client()
        client.transport.write(b"GET /size/10 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        [(head, body)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 200)
        self.assertEqual(header(head, b"connection"), b"close")
        yield with_timeout(client.closed, 5)

    @defer.inlineCallbacks
    def test_corrupt_record_after_the_handshake_closes_the_connection(self):
        """A TLS record that fails to decrypt, sent on the TCP connection under a finished
        handshake: the proxy drops that connection (OpenSSL's error, not "no data yet"),
        logs no unhandled error, and keeps serving others."""
        client = yield self.client()
        client.transport.write(b"GET /size/10 HTTP/1.1\r\nHost: a\r\n\r\n")
        yield with_timeout(client.responses(1))
        client.transport.transport.write(b"\x17\x03\x03\x00\x20" + b"\x5a" * 32)
        yield with_timeout(client.closed, 5)
        self.assertEqual(self.flushLoggedErrors(), [])
        other = yield self.client()
        other.transport.write(b"GET /size/20 HTTP/1.1\r\nHost: a\r\n\r\n")
        [(head, body)] = yield with_timeout(other.responses(1))
        self.assertEqual(body, pattern(20))

    @defer.inlineCallbacks
    def test_client_close_notify_ends_the_connection(self):
        """The client's TLS close_notify (OpenSSL's "zero return"): the proxy shuts TLS down
        and the connection leaves its books."""
        client = yield self.client()
        client.transport.write(b"GET /size/10 HTTP/1.1\r\nHost: a\r\n\r\n")
        yield with_timeout(client.responses(1))
        stats = self.service.runtime.stats
        self.assertEqual(len(stats.connections), 1)
        client.transport.loseConnection()  # sends close_notify first
        yield with_timeout(client.closed, 5)
        for _ in range(100):  # bounded: the proxy's side closes within a few loop turns
            if not stats.connections:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(stats.connections), 0)

    @defer.inlineCallbacks
    def test_large_response_over_tls(self):
        """A 1 MiB response arrives whole and intact over TLS."""
        client = yield self.client()
        size = 1 << 20
        client.transport.write(b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
        [(head, body)] = yield with_timeout(client.responses(1), 30)
        self.assertEqual(head.status, 200)
        self.assertEqual(len(body), size)
        self.assertEqual(body, pattern(size))

    @defer.inlineCallbacks
    def test_ciphertext_order_kept_when_the_socket_fills(self):
        """Two pipelined 4 MiB responses to a client that stops reading: the proxy's socket
        fills, later ciphertext queues in Twisted's buffer instead of the direct send, and
        both bodies still arrive whole and in order once the client reads again."""
        from revproxy.tls.listener import DirectSendTLSProtocol, TLSListenerFactory

        self.assertIs(TLSListenerFactory.protocol, DirectSendTLSProtocol)
        client = yield self.client()
        client.transport.pauseProducing()
        size = 4 << 20
        client.transport.write(b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n"
                               b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n" % (size, size - 1))
        yield deferLater(reactor, 0.3, lambda: None)  # let the proxy fill the socket
        client.transport.resumeProducing()
        [(head1, body1), (head2, body2)] = yield with_timeout(client.responses(2), 60)
        self.assertEqual((head1.status, head2.status), (200, 200))
        self.assertEqual(body1, pattern(size))
        self.assertEqual(body2, pattern(size - 1))

    @defer.inlineCallbacks
    def test_request_body_over_tls(self):
        """A 200 KB request body reaches the backend whole; the echo comes back over TLS."""
        client = yield self.client()
        body = pattern(200000)
        client.transport.write(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        [(head, reply)] = yield with_timeout(client.responses(1), 30)
        self.assertEqual(head.status, 200)
        echoed = json.loads(reply)
        self.assertEqual(echoed["method"], "POST")
        self.assertEqual(echoed["body"].encode("latin-1"), body)


class TwistdTLSListenerTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def test_twistd_ssl_listener_serves_and_closes(self):
        """twistd revproxy --listen ssl:... answers over TLS: two keep-alive requests, then
        Connection: close closes the connection."""
        key_path, cert_path, cert_pem = write_self_signed(self.mktemp_dir)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        proc, transport = spawn(
            self, "-n", "--pidfile=", "revproxy", "--listen", ssl_listen(key_path, cert_path),
            "--upstream", "http://127.0.0.1:%d" % backend.getHost().port,
        )
        match = yield proc.wait_for(
            rb"listening on IPv4Address\(type='TCP', host='127\.0\.0\.1', port=(\d+)\) \(ssl:")
        client = yield with_timeout(tls_connect(int(match.group(1)), cert_pem))
        client.transport.write(b"GET /size/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        yield with_timeout(client.responses(1))
        client.transport.write(b"GET /size/7 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        [(h1, b1), (h2, b2)] = yield with_timeout(client.responses(2))
        self.assertEqual((h1.status, b1), (200, pattern(5)))
        self.assertEqual((h2.status, b2), (200, pattern(7)))
        yield with_timeout(client.closed, 5)
        transport.signalProcess("TERM")
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, "SIGTERM", proc.output)


class ListenerSchemeTests(unittest.TestCase):
    def test_scheme_of_listener_descriptions(self):
        """ssl: listeners carry https end to end; tcp:, tcp6:, unix: carry http."""
        from revproxy.server.service import listener_scheme

        self.assertEqual(listener_scheme("ssl:0:privateKey=k.pem:certKey=c.pem"), "https")
        self.assertEqual(listener_scheme("SSL:443"), "https")
        for description in ("tcp:80", "tcp6:80", "unix:/run/x.sock"):
            self.assertEqual(listener_scheme(description), "http")
