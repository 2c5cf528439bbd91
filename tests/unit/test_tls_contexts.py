"""Server contexts in memory-BIO handshakes: safe defaults, SNI, RSA/ECDSA, ALPN, sessions,
OCSP stapling, client certificates."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL
from twisted.trial import unittest

from revproxy.testing.certs import CertificateAuthority, ocsp_response
from revproxy.testing.tls import client_context, handshake
from revproxy.tls import defaults
from revproxy.tls.contexts import TLSOptions, build_dispatch_context
from revproxy.tls.pem import CertificateBundle
from revproxy.tls.provider import PemTLSProvider
from revproxy.tls.runtime import ListenerTLS


def bundle(leaf, ocsp=None):
    return CertificateBundle("mem.crt", "mem.key", leaf.cert, leaf.chain, leaf.key, ocsp)


class Fixture:
    def __init__(self):
        self.ca = CertificateAuthority("ctx CA", key_type="ec")
        self.rsa = self.ca.issue(["site.test", "www.site.test"])
        self.ecdsa = self.ca.issue(["site.test", "www.site.test"], key_type="ec")
        self.wild = self.ca.issue(["*.apps.test"], key_type="ec")
        self.other = self.ca.issue(["other.test"], key_type="ec")


FIX = []


def fixture():
    if not FIX:
        FIX.append(Fixture())
    return FIX[0]


def listener(bundles, client_auth="off", alpn=("h2", "http/1.1"), lifetime=0.0, now=0.0,
             client_ca="", default=None, ticket_keys=None, label="", **kw):
    options = TLSOptions(alpn=alpn, client_ca=client_ca, **kw)
    provider = PemTLSProvider(bundles, options, default)
    return ListenerTLS(provider, options, client_auth, lifetime, now, ticket_keys, label)


def peer_key(client):
    return client.get_peer_certificate().to_cryptography().public_key()


def peer_names(client):
    from revproxy.tls.pem import certificate_names

    return certificate_names(client.get_peer_certificate().to_cryptography())


class SafeDefaultsTests(unittest.TestCase):
    def setUp(self):
        f = fixture()
        self.ctx = listener([bundle(f.ecdsa), bundle(f.rsa)]).dispatch_context(0)

    def test_tls12_and_tls13_accepted(self):
        """A TLS 1.3 client gets 1.3; a client capped at 1.2 gets 1.2."""
        client, _ = handshake(self.ctx, client_context())
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.3")
        client, _ = handshake(self.ctx, client_context(max_version=SSL.TLS1_2_VERSION))
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.2")

    def test_tls11_refused(self):
        """A client offering TLS 1.0/1.1 only fails the handshake."""
        ctx = client_context(min_version=SSL.TLS1_VERSION, max_version=SSL.TLS1_1_VERSION,
                             ciphers="DEFAULT:@SECLEVEL=0")
        self.assertRaises(SSL.Error, handshake, self.ctx, ctx)

    def test_cbc_only_client_refused(self):
        """A TLS 1.2 client offering only CBC suites (with ECDHE) fails."""
        ctx = client_context(max_version=SSL.TLS1_2_VERSION,
                             ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA256:"
                                     "ECDHE-ECDSA-AES256-SHA384")
        self.assertRaises(SSL.Error, handshake, self.ctx, ctx)

    def test_rsa_key_exchange_refused(self):
        """A TLS 1.2 client offering only static-RSA key exchange (AES-GCM) fails."""
        ctx = client_context(max_version=SSL.TLS1_2_VERSION, ciphers="AES128-GCM-SHA256")
        self.assertRaises(SSL.Error, handshake, self.ctx, ctx)

    def test_p521_only_client_refused(self):
        """A client whose only key-exchange group is P-521 fails (outside the profile)."""
        self.assertRaises(SSL.Error, handshake, self.ctx, client_context(groups="P-521"))

    def test_p256_client_accepted(self):
        """P-256 is in the profile (and the one group set where lists are not settable)."""
        handshake(self.ctx, client_context(groups="P-256"))

    def test_tls13_suites_are_set_on_both_interpreters(self):
        """The TLS 1.3 suites configured are the ones negotiated (pyOpenSSL's setter, or the
        binding's SSL_CTX_set_ciphersuites where pyOpenSSL lacks it: PyPy)."""
        self.assertTrue(defaults.tls13_suites_settable())
        ctx = SSL.Context(SSL.TLS_METHOD)
        f = fixture()
        from OpenSSL import crypto
        ctx.use_certificate(crypto.X509.from_cryptography(f.ecdsa.cert))
        ctx.use_privatekey(crypto.PKey.from_cryptography_key(f.ecdsa.key))
        defaults.apply_defaults(ctx, tls13_suites="TLS_CHACHA20_POLY1305_SHA256")
        client, _ = handshake(ctx, client_context())
        self.assertEqual(client.get_cipher_name(), "TLS_CHACHA20_POLY1305_SHA256")
        with self.assertRaises(ValueError) as cm:
            defaults.apply_defaults(SSL.Context(SSL.TLS_METHOD), tls13_suites="TLS_NOPE")
        self.assertIn("TLS_NOPE", str(cm.exception))

    def test_x25519_and_p384_clients_accepted_on_both_interpreters(self):
        """The whole group list is set (on PyPy, whose binding lacks set1_groups_list,
        through SSL_CTX_ctrl): X25519 and P-384 clients are served, without a
        HelloRetryRequest for X25519 (the client offered no other share); X448 is not."""
        self.assertTrue(defaults.groups_settable())
        for group in ("X25519", "P-384"):
            handshake(self.ctx, client_context(groups=group))
        self.assertRaises(SSL.Error, handshake, self.ctx, client_context(groups="X448"))

    def test_client_cipher_preference_wins(self):
        """Server cipher preference is off: the client's order decides."""
        for order in (["ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256"],
                      ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]):
            client, _ = handshake(self.ctx, client_context(
                max_version=SSL.TLS1_2_VERSION, ciphers=":".join(order),
                sigalgs="ECDSA+SHA256"))
            self.assertEqual(client.get_cipher_name(), order[0])

    def test_compression_and_renegotiation_off(self):
        """The context carries OP_NO_COMPRESSION and OP_NO_RENEGOTIATION, not
        OP_CIPHER_SERVER_PREFERENCE."""
        import warnings

        with warnings.catch_warnings():  # a context already used by a connection warns
            warnings.simplefilter("ignore", DeprecationWarning)
            options = self.ctx.set_options(0)  # returns the options now set
        self.assertTrue(options & SSL.OP_NO_COMPRESSION)
        self.assertTrue(options & SSL.OP_NO_RENEGOTIATION)
        self.assertFalse(options & SSL.OP_CIPHER_SERVER_PREFERENCE)


class SNITests(unittest.TestCase):
    def setUp(self):
        f = self.f = fixture()
        self.ctx = listener([bundle(f.rsa), bundle(f.ecdsa), bundle(f.wild),
                             bundle(f.other)]).dispatch_context(0)

    def test_exact_name(self):
        """SNI other.test gets the other.test certificate."""
        client, _ = handshake(self.ctx, client_context(), "other.test")
        self.assertEqual(peer_names(client), ("other.test",))

    def test_wildcard_name(self):
        """a.apps.test gets *.apps.test; a.b.apps.test does not (one label only)."""
        client, _ = handshake(self.ctx, client_context(), "a.apps.test")
        self.assertEqual(peer_names(client), ("*.apps.test",))
        client, _ = handshake(self.ctx, client_context(), "a.b.apps.test")
        self.assertEqual(peer_names(client), ("site.test", "www.site.test"))

    def test_unknown_and_absent_names_get_the_default(self):
        """No SNI or an unknown name: the first certificate configured."""
        for name in (None, "nowhere.test"):
            client, _ = handshake(self.ctx, client_context(), name)
            self.assertEqual(peer_names(client), ("site.test", "www.site.test"))

    def test_rsa_and_ecdsa_side_by_side(self):
        """For one name, an ECDSA-only client gets the ECDSA certificate, an RSA-only client
        the RSA one (TLS 1.3 and 1.2)."""
        for version in (None, SSL.TLS1_2_VERSION):
            client, _ = handshake(self.ctx, client_context(
                sigalgs="ECDSA+SHA256", max_version=version), "www.site.test")
            self.assertIsInstance(peer_key(client), ec.EllipticCurvePublicKey)
            client, _ = handshake(self.ctx, client_context(
                sigalgs="RSA-PSS+SHA256:RSA+SHA256", max_version=version), "www.site.test")
            self.assertIsInstance(peer_key(client), rsa.RSAPublicKey)

    def test_default_certificate_chosen(self):
        """default= picks the certificate unknown names get."""
        f = self.f
        ctx = listener([bundle(f.rsa), bundle(f.other)], default=None).dispatch_context(0)
        client, _ = handshake(ctx, client_context(), "x.test")
        self.assertEqual(peer_names(client), ("site.test", "www.site.test"))
        other = bundle(f.other)
        ctx = listener([bundle(f.rsa), other], default=other).dispatch_context(0)
        client, _ = handshake(ctx, client_context(), "x.test")
        self.assertEqual(peer_names(client), ("other.test",))

    def test_chain_served(self):
        """A certificate issued by an intermediate is served with that intermediate."""
        root = CertificateAuthority("root", key_type="ec")
        leaf = root.intermediate("inter", key_type="ec").issue(["chain.test"], key_type="ec")
        ctx = listener([bundle(leaf)]).dispatch_context(0)
        client, _ = handshake(ctx, client_context(trust=root.cert), "chain.test")
        chain = client.get_peer_cert_chain()
        self.assertEqual([c.to_cryptography().subject.rfc4514_string() for c in chain],
                         ["CN=chain.test", "CN=inter"])


class ALPNTests(unittest.TestCase):
    def test_h2_chosen_when_offered_and_advertised(self):
        """ALPN h2+http/1.1 on both sides: h2."""
        ctx = listener([bundle(fixture().ecdsa)]).dispatch_context(0)
        _, server = handshake(ctx, client_context(alpn=["h2", "http/1.1"]))
        self.assertEqual(server.get_alpn_proto_negotiated(), b"h2")

    def test_http11_only_listener(self):
        """A listener advertising http/1.1 only never picks h2."""
        ctx = listener([bundle(fixture().ecdsa)], alpn=("http/1.1",)).dispatch_context(0)
        client, _ = handshake(ctx, client_context(alpn=["h2", "http/1.1"]))
        self.assertEqual(client.get_alpn_proto_negotiated(), b"http/1.1")

    def test_no_common_protocol_still_handshakes(self):
        """A client offering only other protocols gets no ALPN but a connection."""
        ctx = listener([bundle(fixture().ecdsa)]).dispatch_context(0)
        client, _ = handshake(ctx, client_context(alpn=["spdy/3"]))
        self.assertEqual(client.get_alpn_proto_negotiated(), b"")


class SessionTests(unittest.TestCase):
    def resumed(self, server_ctx_first, server_ctx_second, max_version):
        ctx = client_context(max_version=max_version)
        client, _ = handshake(server_ctx_first, ctx, "site.test")
        session = client.get_session()
        client, server = handshake(server_ctx_second, ctx, "site.test", session=session)
        from OpenSSL._util import lib

        return bool(lib.SSL_session_reused(client._ssl))

    def test_resumption_tls13_and_tls12(self):
        """A client reusing its session resumes (TLS 1.3 ticket, TLS 1.2 ticket)."""
        tls = listener([bundle(fixture().ecdsa)])
        for version in (None, SSL.TLS1_2_VERSION):
            ctx = tls.dispatch_context(0)
            self.assertTrue(self.resumed(ctx, ctx, version))

    def test_tls12_session_cache_without_tickets(self):
        """session_tickets off: TLS 1.2 resumes by session id from the cache."""
        tls = listener([bundle(fixture().ecdsa)], session_tickets=False)
        ctx = tls.dispatch_context(0)
        self.assertTrue(self.resumed(ctx, ctx, SSL.TLS1_2_VERSION))

    def test_ticket_keys_rotate_after_their_lifetime(self):
        """Past ticket_key_lifetime the dispatch context (and its ticket keys) is new:
        older tickets no longer resume; before it they do."""
        tls = listener([bundle(fixture().ecdsa)], lifetime=100.0, now=0.0)
        first = tls.dispatch_context(10.0)
        self.assertIs(tls.dispatch_context(99.0), first)
        self.assertTrue(self.resumed(first, tls.dispatch_context(99.0), None))
        second = tls.dispatch_context(100.0)
        self.assertIsNot(second, first)
        self.assertEqual(tls.rotations, 1)
        self.assertFalse(self.resumed(first, second, None))


class OCSPTests(unittest.TestCase):
    def test_response_stapled_for_the_chosen_certificate(self):
        """A client asking for status gets the configured response of the certificate it
        was served (RSA and ECDSA each their own)."""
        f = fixture()
        rsa_ocsp, ec_ocsp = ocsp_response(f.ca, f.rsa), ocsp_response(f.ca, f.ecdsa)
        ctx = listener([bundle(f.rsa, rsa_ocsp), bundle(f.ecdsa, ec_ocsp)]).dispatch_context(0)
        client = client_context(ocsp=True, sigalgs="ECDSA+SHA256")
        connection, _ = self._handshake_with_status(ctx, client)
        self.assertEqual(connection.stapled_ocsp, ec_ocsp)
        client = client_context(ocsp=True, sigalgs="RSA-PSS+SHA256")
        connection, _ = self._handshake_with_status(ctx, client)
        self.assertEqual(connection.stapled_ocsp, rsa_ocsp)

    def _handshake_with_status(self, server_ctx, client_ctx):
        from revproxy.testing import tls as helper

        original = SSL.Connection.set_connect_state

        def with_status(connection):
            connection.request_ocsp()
            original(connection)

        SSL.Connection.set_connect_state = with_status
        try:
            return helper.handshake(server_ctx, client_ctx)
        finally:
            SSL.Connection.set_connect_state = original


class ClientCertificateTests(unittest.TestCase):
    def setUp(self):
        f = self.f = fixture()
        d = self.mktemp()
        import os

        os.makedirs(d)
        self.ca_path = f.ca.write_cert(os.path.join(d, "ca.pem"))
        self.alice = f.ca.issue([], common_name="alice", client=True, key_type="ec")
        self.mallory = CertificateAuthority("rogue", key_type="ec").issue(
            [], common_name="alice", client=True, key_type="ec")

    def ctx(self, mode):
        return listener([bundle(self.f.ecdsa)], client_auth=mode,
                        client_ca=self.ca_path).dispatch_context(0)

    def test_required_refuses_a_client_without_certificate(self):
        """client_auth required: no certificate, no connection."""
        self.assertRaises(SSL.Error, handshake, self.ctx("required"), client_context())

    def test_required_accepts_a_certificate_from_the_ca(self):
        """A certificate issued by the CA is accepted and its facts are readable."""
        from revproxy.tls.facts import TLSFacts

        _, server = handshake(self.ctx("required"),
                              client_context(cert=self.alice.cert, key=self.alice.key))
        facts = TLSFacts()
        facts.fill(server)
        self.assertEqual(facts.client_subject, "CN=alice")
        self.assertEqual(facts.client_fingerprint, self.alice.fingerprint)
        self.assertEqual(facts.version, "TLSv1.3")

    def test_certificate_from_another_ca_refused(self):
        """A certificate that does not chain to client_ca fails, in both modes."""
        for mode in ("required", "optional"):
            self.assertRaises(SSL.Error, handshake, self.ctx(mode),
                              client_context(cert=self.mallory.cert, key=self.mallory.key))

    def test_optional_lets_a_client_without_certificate_in(self):
        """client_auth optional: no certificate is fine, and no client facts."""
        from revproxy.tls.facts import TLSFacts

        _, server = handshake(self.ctx("optional"), client_context())
        facts = TLSFacts()
        facts.fill(server)
        self.assertIsNone(facts.client_subject)
        self.assertTrue(facts.complete)

    def test_off_never_asks(self):
        """client_auth off: a client certificate is not even requested."""
        _, server = handshake(self.ctx("off"),
                              client_context(cert=self.alice.cert, key=self.alice.key))
        self.assertIsNone(server.get_peer_certificate())


class DispatchContextTests(unittest.TestCase):
    def test_selector_sees_the_sni_name(self):
        """The dispatch context hands the SNI name (or None) to its selector."""
        options = TLSOptions()
        provider = PemTLSProvider([bundle(fixture().ecdsa)], options)
        seen = []

        def select(name):
            seen.append(name)
            return provider.server_context(name)

        ctx = build_dispatch_context(options, "off", select)
        handshake(ctx, client_context(), "Site.Test")
        handshake(ctx, client_context())
        # (a HelloRetryRequest, where only P-256 is settable, asks the selector again)
        self.assertEqual(sorted(set(seen), key=str), [None, "Site.Test"])
        self.assertEqual(seen[0], "Site.Test")
