"""TLS to https:// members on loopback: real Twisted HTTPS backends with certificates made at
test time. Verification with a custom CA, hostname / unknown-CA / expired failures (502, the
reason in the error log, retried on another member), SNI, client certificates, pooled TLS
connections, verification turned off (logged), and health probes over TLS."""

from __future__ import annotations

import json
import os

from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import defer, reactor, ssl, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.web import resource, server

from revproxy.balancing.probe import http_probe
from revproxy.config.model import HealthCheck, Pool
from revproxy.upstream.tls import client_policy
from tests.integration.support import LOOPBACK, connect, proxy_config, start_proxy, with_timeout
from tests.tlscerts import ThrowawayCA


class Whoami(resource.Resource):
    """Answers with the TCP port the proxy connected from and the client certificate's CN."""

    isLeaf = True

    def render(self, request):
        peer = request.channel.transport.getPeerCertificate()
        subject = None
        if peer is not None:
            names = peer.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            subject = names[0].value
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"port": request.getClientAddress().port,
                           "client_cert": subject}).encode()


class CountingSite(server.Site):
    def __init__(self, *args, **kwargs):
        server.Site.__init__(self, *args, **kwargs)
        self.connections = 0

    def buildProtocol(self, addr):
        self.connections += 1
        return server.Site.buildProtocol(self, addr)


def tls_backend(testcase, cert, key, client_ca=None, max_version=None):
    """An HTTPS backend on loopback; returns (port, site, server names received via SNI)."""
    options = {"privateKey": crypto.PKey.from_cryptography_key(key),
               "certificate": crypto.X509.from_cryptography(cert)}

    if client_ca is not None:
        options.update(verify=True, requireCertificate=True,
                       caCerts=[crypto.X509.from_cryptography(client_ca)])
    context_factory = ssl.CertificateOptions(**options)
    names = []
    if max_version is not None:
        # Set on the context itself: Twisted 25.5's lowerMaximumSecurityTo also excludes
        # the version it names.
        context_factory.getContext().set_max_proto_version(max_version)
    context_factory.getContext().set_tlsext_servername_callback(
        lambda conn: names.append(conn.get_servername()))
    site = CountingSite(Whoami())
    site.log = lambda request: None
    port = reactor.listenSSL(0, site, context_factory, interface=LOOPBACK)
    testcase.addCleanup(port.stopListening)
    return port.getHost().port, site, names


def capture_log(testcase):
    lines = []

    def observer(event):
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    testcase.addCleanup(globalLogPublisher.removeObserver, observer)
    return lines


@defer.inlineCallbacks
def members_closed(services, seconds=5.0):
    """Wait (bounded) until no backend connection of ``services`` is open: closing a pooled
    TLS connection exchanges close_notify, which takes a few reactor turns."""
    for _ in range(int(seconds / 0.01)):
        if not any(member.open for service in services
                   for backend in service.runtime.backends.values()
                   for member in backend.members):
            return
        yield task.deferLater(reactor, 0.01, lambda: None)


class UpstreamTLSTests(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.ca = ThrowawayCA(self.dir)
        self.services = []
        self.addCleanup(lambda: members_closed(self.services))  # runs after every stopService

    @defer.inlineCallbacks
    def start(self, data):
        service, port = yield start_proxy(self, data)
        self.services.append(service)
        return service, port

    def pool_config(self, ports, **tls):
        data = proxy_config(["https://%s:%d" % (LOOPBACK, port) for port in ports])
        data["pools"]["main"].update(tls)
        data["pools"]["main"].setdefault("tls_ca", self.ca.cert_path)
        return data

    @defer.inlineCallbacks
    def get(self, port, count=1, path=b"/"):
        client = yield connect(port)
        self.addCleanup(lambda: client.transport.loseConnection())
        results = []
        for n in range(1, count + 1):
            client.transport.write(b"GET %s HTTP/1.1\r\nHost: site.test\r\n\r\n" % path)
            responses = yield with_timeout(client.responses(n))
            results.append(responses[-1])
        return results

    @defer.inlineCallbacks
    def test_verified_member_with_custom_ca_and_pooled_connection(self):
        """A member whose certificate chains to tls_ca and names the configured server name
        answers; three requests in turn reuse one TLS connection to it."""
        cert, key = self.ca.issue("backend", ["backend.test"])[2:]
        port, site, names = tls_backend(self, cert, key)
        _, proxy = yield self.start(self.pool_config([port], tls_server_name="backend.test"))
        results = yield self.get(proxy, 3)
        self.assertEqual([head.status for head, _ in results], [200, 200, 200])
        ports = set(json.loads(body)["port"] for _, body in results)
        self.assertEqual(len(ports), 1)
        self.assertEqual(site.connections, 1)
        self.assertEqual(names, [b"backend.test"])

    @defer.inlineCallbacks
    def test_ip_member_verified_against_ip_address_without_sni(self):
        """With no tls_server_name an IP member is checked against the certificate's IP
        addresses, and no SNI is sent (RFC 6066 forbids IP literals there)."""
        cert, key = self.ca.issue("ip", [LOOPBACK])[2:]
        port, _, names = tls_backend(self, cert, key)
        _, proxy = yield self.start(self.pool_config([port]))
        [(head, _)] = yield self.get(proxy)
        self.assertEqual(head.status, 200)
        self.assertEqual(names, [None])

    @defer.inlineCallbacks
    def test_wrong_hostname_is_502_with_reason_logged(self):
        """A certificate for another name: 502, and the error log names the member and says
        hostname mismatch."""
        lines = capture_log(self)
        cert, key = self.ca.issue("other", ["other.test"])[2:]
        port, site, _ = tls_backend(self, cert, key)
        _, proxy = yield self.start(self.pool_config([port], tls_server_name="backend.test"))
        [(head, _)] = yield self.get(proxy)
        self.assertEqual(head.status, 502)
        member = "https://%s:%d (backend.test)" % (LOOPBACK, port)
        found = [line for line in lines if "hostname mismatch" in line]
        self.assertTrue(found, lines)
        self.assertIn(member, found[-1])
        self.assertIn("other.test", found[-1])

    @defer.inlineCallbacks
    def test_hostname_failure_retried_on_another_member(self):
        """A member failing verification counts as a connect failure: the request is retried
        on the member that verifies, and the client gets 200 every time."""
        lines = capture_log(self)
        good_cert, good_key = self.ca.issue("good", ["backend.test"])[2:]
        bad_cert, bad_key = self.ca.issue("bad", ["other.test"])[2:]
        good, good_site, _ = tls_backend(self, good_cert, good_key)
        bad, _, _ = tls_backend(self, bad_cert, bad_key)
        data = self.pool_config([bad, good], tls_server_name="backend.test")
        data["pools"]["main"]["outlier"] = {"consecutive_failures": 0}
        _, proxy = yield self.start(data)
        results = []
        for _ in range(2):  # round robin: one of the two starts on the bad member
            results += yield self.get(proxy)
        self.assertEqual([head.status for head, _ in results], [200, 200])
        retried = [line for line in lines if "retrying on another member" in line]
        self.assertTrue(retried, lines)
        self.assertIn("hostname mismatch", retried[0])
        self.assertIn(":%d" % bad, retried[0])

    @defer.inlineCallbacks
    def test_unknown_ca_is_502(self):
        """A certificate from a CA that is not in tls_ca: 502, "unknown CA" in the log."""
        lines = capture_log(self)
        stranger = ThrowawayCA(self.dir, "Stranger CA")
        cert, key = stranger.issue("stranger", ["backend.test"])[2:]
        port, _, _ = tls_backend(self, cert, key)
        _, proxy = yield self.start(self.pool_config([port], tls_server_name="backend.test"))
        [(head, _)] = yield self.get(proxy)
        self.assertEqual(head.status, 502)
        self.assertTrue([line for line in lines if "unknown CA" in line], lines)

    @defer.inlineCallbacks
    def test_expired_certificate_is_502(self):
        """An expired member certificate: 502, "certificate expired" in the log."""
        lines = capture_log(self)
        cert, key = self.ca.issue("old", ["backend.test"], expired=True)[2:]
        port, _, _ = tls_backend(self, cert, key)
        _, proxy = yield self.start(self.pool_config([port], tls_server_name="backend.test"))
        [(head, _)] = yield self.get(proxy)
        self.assertEqual(head.status, 502)
        self.assertTrue([line for line in lines if "certificate expired" in line], lines)

    @defer.inlineCallbacks
    def test_verification_off_is_logged_and_accepts_any_certificate(self):
        """tls_verify = false: an untrusted certificate for another name is accepted, and
        start-up logs a warning naming the pool."""
        lines = capture_log(self)
        stranger = ThrowawayCA(self.dir, "Stranger CA")
        cert, key = stranger.issue("stranger", ["other.test"])[2:]
        port, _, _ = tls_backend(self, cert, key)
        _, proxy = yield self.start(self.pool_config([port], tls_verify=False))
        [(head, _)] = yield self.get(proxy)
        self.assertEqual(head.status, 200)
        self.assertTrue([line for line in lines
                         if "pool main" in line and "verification is OFF" in line], lines)

    @defer.inlineCallbacks
    def test_client_certificate_presented_when_configured(self):
        """A backend that requires a client certificate sees the configured one; without
        tls_client_cert the same backend refuses the handshake (502)."""
        cert, key = self.ca.issue("backend", ["backend.test"])[2:]
        client_cert_path, client_key_path = self.ca.issue(
            "proxy-client", [], common_name="revproxy-client", client=True)[:2]
        port, _, _ = tls_backend(self, cert, key, client_ca=self.ca.cert)
        _, proxy = yield self.start(self.pool_config(
            [port], tls_server_name="backend.test", tls_client_cert=client_cert_path,
            tls_client_key=client_key_path))
        [(head, body)] = yield self.get(proxy)
        self.assertEqual(head.status, 200)
        self.assertEqual(json.loads(body)["client_cert"], "revproxy-client")
        _, bare = yield self.start(self.pool_config([port], tls_server_name="backend.test"))
        [(head, _)] = yield self.get(bare)
        self.assertEqual(head.status, 502)

    @defer.inlineCallbacks
    def test_health_probe_over_tls(self):
        """A health probe of an https:// member goes over TLS and is verified: OK with the
        right name, a failure saying hostname mismatch with another."""
        cert, key = self.ca.issue("backend", ["backend.test"])[2:]
        port, _, _ = tls_backend(self, cert, key)
        members = ("https://%s:%d" % (LOOPBACK, port),)
        good = client_policy(Pool(name="p", members=members, tls_ca=self.ca.cert_path,
                                  tls_server_name="backend.test"))
        bad = client_policy(Pool(name="p", members=members, tls_ca=self.ca.cert_path,
                                 tls_server_name="nope.test"))
        check = HealthCheck(path="/", timeout=5.0)
        ok, why = yield with_timeout(http_probe(reactor, LOOPBACK, port, check, reactor,
                                                tls=good.creator_for(LOOPBACK)))
        self.assertEqual((ok, why), (True, "status 200"))
        ok, why = yield with_timeout(http_probe(reactor, LOOPBACK, port, check, reactor,
                                                tls=bad.creator_for(LOOPBACK)))
        self.assertFalse(ok)
        self.assertIn("hostname mismatch", why)

    @defer.inlineCallbacks
    def test_min_version_1_3_refuses_a_tls_1_2_member(self):
        """tls_min_version = "1.3" against a member that stops at TLS 1.2: the handshake
        fails (502, the OpenSSL reason logged); the default minimum (1.2) talks to it."""
        lines = capture_log(self)
        cert, key = self.ca.issue("backend", ["backend.test"])[2:]
        port, _, _ = tls_backend(self, cert, key, max_version=SSL.TLS1_2_VERSION)
        _, strict = yield self.start(self.pool_config(
            [port], tls_server_name="backend.test", tls_min_version="1.3"))
        [(head, _)] = yield self.get(strict)
        self.assertEqual(head.status, 502)
        self.assertTrue([line for line in lines if "TLS handshake failed" in line], lines)
        _, default = yield self.start(self.pool_config([port], tls_server_name="backend.test"))
        [(head, _)] = yield self.get(default)
        self.assertEqual(head.status, 200)
