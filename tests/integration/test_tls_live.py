"""TLS listeners on loopback: SNI with RSA and ECDSA, ALPN, client certificates and their
headers, reload swapping a certificate under an open connection, --check through twistd."""

from __future__ import annotations

import copy
import json
import os

from OpenSSL import SSL
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.trial import unittest
from zope.interface import implementer

from revproxy.config.load import parse_config
from revproxy.testing.certs import CertificateAuthority
from revproxy.testing.tls import client_context
from tests.integration.support import (
    LOOPBACK, RawClient, backend_site, https_get_blocking, listen, proxy_config, start_proxy,
    with_timeout,
)
from tests.integration.test_twistd import spawn


@implementer(IOpenSSLClientConnectionCreator)
class ClientCreator:
    """A pyOpenSSL client context with SNI, for Twisted's TLS client."""

    def __init__(self, context, server_name=None):
        self._context = context
        self._server_name = server_name

    def clientConnectionForTLS(self, tls_protocol):
        connection = SSL.Connection(self._context, None)
        if self._server_name:
            connection.set_tlsext_host_name(self._server_name.encode("ascii"))
        connection.set_app_data(tls_protocol)
        return connection


@defer.inlineCallbacks
def tls_client(port, server_name=None, **context_args):
    client = RawClient()
    endpoint = wrapClientTLS(ClientCreator(client_context(**context_args), server_name),
                             TCP4ClientEndpoint(reactor, LOOPBACK, port))
    yield with_timeout(connectProtocol(endpoint, client))
    return client


@defer.inlineCallbacks
def get_echo(client, extra=b""):
    """One GET /echo on ``client``; the backend's view of the request headers (a dict)."""
    count = len(getattr(client, "_done", []))
    client.transport.write(b"GET /echo HTTP/1.1\r\nHost: site.test\r\n" + extra + b"\r\n")
    responses = yield with_timeout(client.responses(count + 1))
    client._done = responses
    head, body = responses[-1]
    assert head.status == 200, head
    seen = {}
    for name, value in json.loads(body)["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


def peer_key_type(client):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = client.transport.getPeerCertificate().to_cryptography().public_key()
    return {True: "ECDSA", False: "RSA" if isinstance(key, rsa.RSAPublicKey) else "?"}[
        isinstance(key, ec.EllipticCurvePublicKey)]


class Certificates:
    def __init__(self, directory):
        self.dir = directory
        self.ca = CertificateAuthority("live CA", key_type="ec")
        self.ca_path = self.ca.write_cert(os.path.join(directory, "ca.pem"))
        self.rsa = self.ca.issue(["site.test"])
        self.ecdsa = self.ca.issue(["site.test"], key_type="ec")
        self.other = self.ca.issue(["*.other.test"], key_type="ec")
        self.paths = {}
        for name, leaf in (("rsa", self.rsa), ("ecdsa", self.ecdsa), ("other", self.other)):
            self.paths[name] = leaf.write(directory, name)
        self.alice = self.ca.issue([], common_name="alice", client=True, key_type="ec")

    def entries(self):
        return [{"cert": c, "key": k} for c, k in self.paths.values()]


class TLSLiveTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.certs = Certificates(directory)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        self.data = proxy_config([backend.getHost().port], tls={
            "certificates": self.certs.entries(), "client_auth": "optional",
            "client_ca": self.certs.ca_path})
        self.data["server"]["listen"] = [
            "tls:0:interface=%s:client_auth=required" % LOOPBACK,
            "tls:0:interface=%s" % LOOPBACK]
        self.service, self.port = yield start_proxy(self, self.data)
        self.required_port = self.service.ports[0].getHost().port

    def connect(self, *args, **kw):
        d = tls_client(self.port, *args, **kw)

        def cleanup(client):
            self.addCleanup(lambda: client.transport.abortConnection()
                            if client.transport.connected else None)
            return client

        return d.addCallback(cleanup)

    @defer.inlineCallbacks
    def test_sni_gives_each_client_the_key_type_it_supports(self):
        """site.test: an ECDSA-only client gets the ECDSA certificate, an RSA-only one the
        RSA certificate; a.other.test the wildcard; both answer requests."""
        client = yield self.connect("site.test", sigalgs="ECDSA+SHA256")
        yield get_echo(client)  # the handshake is done once a response came back
        self.assertEqual(peer_key_type(client), "ECDSA")
        client = yield self.connect("site.test", sigalgs="RSA-PSS+SHA256:RSA+SHA256")
        yield get_echo(client)
        self.assertEqual(peer_key_type(client), "RSA")
        client = yield self.connect("a.other.test")
        yield get_echo(client)
        cert = client.transport.getPeerCertificate().to_cryptography()
        self.assertEqual(cert.serial_number, self.certs.other.cert.serial_number)

    @defer.inlineCallbacks
    def test_alpn_and_tls_facts_seen_by_the_connection(self):
        """A client offering http/1.1 (h2 is offered too: HTTP/2 is on by default, see
        test_h2_live) negotiates it; the connection's PeerFacts.tls holds SNI, ALPN, version
        and cipher."""
        client = yield self.connect("site.test", alpn=["http/1.1"])
        yield get_echo(client)
        self.assertEqual(client.transport.negotiatedProtocol, b"http/1.1")
        [conn] = [c for c in self.service.runtime.stats.connections]
        tls = conn.peer.tls
        self.assertTrue(tls.complete)
        self.assertEqual((tls.server_name, tls.alpn, tls.version),
                         ("site.test", "http/1.1", "TLSv1.3"))
        self.assertTrue(tls.cipher.startswith("TLS_"))

    @defer.inlineCallbacks
    def test_tls_facts_and_client_certificate_with_http2_off(self):
        """With ``[http2] enabled = false`` the TLS listener hands the handshake to the
        HTTP/1.1 connection itself, which must still be told it completed: PeerFacts.tls
        is filled and the client certificate reaches the backend."""
        yield self.service.stopService()
        data = copy.deepcopy(self.data)
        data["http2"] = {"enabled": False}
        self.service, self.port = yield start_proxy(self, data)
        alice = self.certs.alice
        client = yield self.connect("site.test", cert=alice.cert, key=alice.key)
        seen = yield get_echo(client)
        self.assertEqual(seen["x-client-subject"], ["CN=alice"])
        [conn] = [c for c in self.service.runtime.stats.connections]
        tls = conn.peer.tls
        self.assertTrue(tls.complete)
        self.assertEqual((tls.server_name, tls.version), ("site.test", "TLSv1.3"))

    @defer.inlineCallbacks
    def test_client_certificate_headers_and_forgeries_stripped(self):
        """With a verified client certificate the backend gets its subject and SHA-256; the
        same headers sent by a client are dropped, with or without a certificate."""
        forged = b"X-Client-Subject: CN=root\r\nx-client-cert-sha256: 00\r\n"
        alice = self.certs.alice
        client = yield self.connect("site.test", cert=alice.cert, key=alice.key)
        seen = yield get_echo(client, forged)
        self.assertEqual(seen["x-client-subject"], ["CN=alice"])
        self.assertEqual(seen["x-client-cert-sha256"], [alice.fingerprint])
        client = yield self.connect("site.test")
        seen = yield get_echo(client, forged)
        self.assertNotIn("x-client-subject", seen)
        self.assertNotIn("x-client-cert-sha256", seen)

    @defer.inlineCallbacks
    def test_required_client_certificate(self):
        """client_auth=required: without a certificate no request gets through; with one
        it does."""
        client = RawClient()
        endpoint = wrapClientTLS(ClientCreator(client_context(), "site.test"),
                                 TCP4ClientEndpoint(reactor, LOOPBACK, self.required_port))
        yield with_timeout(connectProtocol(endpoint, client))
        client.transport.write(b"GET /echo HTTP/1.1\r\nHost: site.test\r\n\r\n")
        received = yield with_timeout(client.closed)
        self.assertEqual(received, b"")
        alice = self.certs.alice
        client = yield tls_client(self.required_port, "site.test", cert=alice.cert,
                                  key=alice.key)
        self.addCleanup(client.transport.abortConnection)
        seen = yield get_echo(client)
        self.assertEqual(seen["x-client-subject"], ["CN=alice"])

    @defer.inlineCallbacks
    def test_reload_swaps_the_certificate_and_keeps_open_connections(self):
        """SIGHUP after the files changed: new connections get the new certificate, an open
        one keeps working; a broken new certificate is refused and the last good one stays."""
        old = yield self.connect("site.test", sigalgs="ECDSA+SHA256")
        yield get_echo(old)
        first = old.transport.getPeerCertificate().to_cryptography().serial_number
        renewed = self.certs.ca.issue(["site.test"], key_type="ec")
        renewed.write(self.certs.dir, "ecdsa")
        config = parse_config(copy.deepcopy(self.data), "<test>")
        self.assertTrue(self.service.reloader.reload(lambda: config))
        new = yield self.connect("site.test", sigalgs="ECDSA+SHA256")
        yield get_echo(new)
        second = new.transport.getPeerCertificate().to_cryptography().serial_number
        self.assertEqual(second, renewed.cert.serial_number)
        self.assertNotEqual(first, second)
        yield get_echo(old)  # the connection opened before the reload still serves
        self.certs.ca.issue(["site.test"], key_type="ec", days=-1).write(self.certs.dir, "ecdsa")
        self.assertFalse(self.service.reloader.reload(lambda: config))
        last = yield self.connect("site.test", sigalgs="ECDSA+SHA256")
        yield get_echo(last)
        self.assertEqual(last.transport.getPeerCertificate().to_cryptography().serial_number,
                         second)


    @defer.inlineCallbacks
    def test_sessions_resume_across_a_reload(self):
        """Ticket keys derive from the process's secret (revproxy.tls.ticketkeys), not from
        the context: a session issued before SIGHUP resumes on the rebuilt contexts after it,
        TLS 1.3 and 1.2."""
        import ssl

        from twisted.internet import threads

        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            context = ssl.create_default_context(cafile=self.certs.ca_path)
            context.maximum_version = version
            reused, session = yield threads.deferToThread(https_get, self.port, context, None)
            self.assertFalse(reused)
            reused, _ = yield threads.deferToThread(https_get, self.port, context, session)
            self.assertTrue(reused, version)
            config = parse_config(copy.deepcopy(self.data), "<test>")
            self.assertTrue(self.service.reloader.reload(lambda: config))
            reused, _ = yield threads.deferToThread(https_get, self.port, context, session)
            self.assertTrue(reused, version)


def https_get(port, context, session):
    """(resumed, the connection's session) of one GET offering ``session`` (blocking)."""
    head, _, reused, session = https_get_blocking(port, context, session)
    assert head.startswith("HTTP/1.1 200"), head
    return reused, session


class TLSCheckTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def test_check_reports_each_bad_certificate(self):
        """twistd revproxy --check: a key not matching, an expired certificate, a chain in
        the wrong order, a missing file, an encrypted key without passphrase: one line each
        naming the file, exit 1, no traceback."""
        d = self.mktemp_dir
        root = CertificateAuthority("root", key_type="ec")
        inter = root.intermediate("inter", key_type="ec")
        one_cert, _ = root.issue(["one.test"], key_type="ec").write(d, "one")
        _, two_key = root.issue(["two.test"], key_type="ec").write(d, "two")
        old_cert, old_key = root.issue(["old.test"], key_type="ec", days=-3).write(d, "old")
        wrong_cert, wrong_key = inter.issue(["w.test"], key_type="ec").write(
            d, "wrong", chain="reversed")
        locked_cert, locked_key = root.issue(["l.test"], key_type="ec").write(
            d, "locked", passphrase="pw")
        missing = os.path.join(d, "missing.crt")
        entries = [(one_cert, two_key), (old_cert, old_key), (wrong_cert, wrong_key),
                   (missing, ""), (locked_cert, locked_key)]
        path = os.path.join(d, "tls.toml")
        with open(path, "w") as f:
            f.write('[server]\nlisten = ["tls:0:interface=127.0.0.1"]\n'
                    '[pools.main]\nmembers = ["http://127.0.0.1:1"]\n'
                    '[[routes]]\nname = "all"\npool = "main"\n[tls]\ncertificates = [\n')
            for cert, key in entries:
                f.write('  {cert = %s, key = %s},\n' % (json.dumps(cert), json.dumps(key)))
            f.write(']\n')
        proc, _ = spawn(self, "revproxy", "--check", "--config", path)
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, 1, proc.output)
        self.assertNotIn(b"Traceback", proc.output)
        lines = [line for line in proc.output.decode().splitlines()
                 if line.startswith("revproxy: bad certificate:")]
        expected = [(two_key, "does not match"), (old_cert, "expired on"),
                    (wrong_cert, "wrong order"), (missing, "cannot read"),
                    (locked_key, "passphrase")]
        self.assertEqual(len(lines), len(expected), proc.output)
        for line, (name, what) in zip(lines, expected):
            self.assertIn(name, line)
            self.assertIn(what, line)


class QuickStartTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_ssl_listener_gets_our_context(self):
        """ssl:...:privateKey=:certKey=:extraCertChain= serves the chain, negotiates ALPN
        http/1.1 and refuses a CBC-only TLS 1.2 client (Twisted's defaults would not)."""
        d = os.path.abspath(self.mktemp())
        os.makedirs(d)
        root = CertificateAuthority("root", key_type="ec")
        inter = root.intermediate("inter", key_type="ec")
        cert, key = inter.issue(["quick.test"], key_type="ec").write(d, "quick")
        chain = os.path.join(d, "chain.pem")
        with open(chain, "wb") as f:
            f.write(inter.cert_pem())
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port])
        data["server"]["listen"] = ["ssl:0:interface=%s:privateKey=%s:certKey=%s:"
                                    "extraCertChain=%s" % (LOOPBACK, key, cert, chain)]
        service, port = yield start_proxy(self, data)
        client = yield tls_client(port, "quick.test", alpn=["http/1.1"], trust=root.cert)
        self.addCleanup(client.transport.abortConnection)
        yield get_echo(client)
        self.assertEqual(client.transport.negotiatedProtocol, b"http/1.1")
        chain_served = client.transport.getHandle().get_peer_cert_chain()
        self.assertEqual(len(chain_served), 2)
        weak = RawClient()
        endpoint = wrapClientTLS(ClientCreator(client_context(
            max_version=SSL.TLS1_2_VERSION, ciphers="ECDHE-ECDSA-AES128-SHA"), "quick.test"),
            TCP4ClientEndpoint(reactor, LOOPBACK, port))
        yield with_timeout(connectProtocol(endpoint, weak))
        weak.transport.write(b"GET /echo HTTP/1.1\r\nHost: quick.test\r\n\r\n")
        received = yield with_timeout(weak.closed)
        self.assertEqual(received, b"")
