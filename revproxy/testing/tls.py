"""TLS test support: in-memory handshakes and the ``ITLSProvider`` contract.

``handshake(server_context, client_context, server_name=None)`` runs a TLS handshake between
two ``SSL.Connection`` objects over memory BIOs (no socket, no reactor) and returns the pair
``(client, server)`` once both are done; it raises ``SSL.Error`` when the handshake fails. Use
``client_context(...)`` for a client restricted to some versions, ciphers, groups or signature
algorithms.

A provider's tests reuse the contract like this::

    from twisted.trial import unittest
    from revproxy.testing.tls import TLSProviderContractMixin

    class MyProviderContractTests(TLSProviderContractMixin, unittest.TestCase):
        def make_provider(self):
            # serve self.names with certificates from self.ca (set up by the mixin)
            return MyProvider(...)
"""

from __future__ import annotations


from OpenSSL import SSL
from OpenSSL._util import lib as _lib
from zope.interface.verify import verifyObject

from revproxy.interfaces import ITLSProvider

__all__ = ["TLSProviderContractMixin", "client_context", "handshake", "pump"]


def client_context(max_version=None, min_version=None, ciphers=None, groups=None,
                   sigalgs=None, alpn=None, cert=None, key=None, trust=None, ocsp=False):
    """A client ``SSL.Context``. ``groups`` (e.g. "P-521") the groups it offers; ``sigalgs`` e.g. "ECDSA+SHA256";
    ``cert``/``key`` (cryptography objects) a client certificate; ``trust`` a CA certificate
    to verify the server with (None: no verification)."""
    context = SSL.Context(SSL.TLS_METHOD)
    if min_version is not None:
        context.set_min_proto_version(min_version)
    if max_version is not None:
        context.set_max_proto_version(max_version)
    if ciphers:
        context.set_cipher_list(ciphers.encode("ascii"))
    if groups:
        from revproxy.tls.defaults import set_groups

        set_groups(context, groups.split(":"))  # the bindings' call or SSL_CTX_ctrl
    if sigalgs:
        assert _lib.SSL_CTX_set1_sigalgs_list(context._context, sigalgs.encode("ascii")) == 1
    if alpn:
        context.set_alpn_protos([p.encode("ascii") for p in alpn])
    if cert is not None:
        context.use_certificate(cert)
        context.use_privatekey(key)
    if trust is not None:
        from OpenSSL import crypto

        context.get_cert_store().add_cert(crypto.X509.from_cryptography(trust))
        context.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
    if ocsp:
        context.set_ocsp_client_callback(_keep_staple)
    return context


def _keep_staple(connection, data, _unused=None):
    connection.stapled_ocsp = data
    return True


def pump(client, server, rounds=50):
    """Move bytes between two memory-BIO connections until neither has anything to say."""
    for _ in range(rounds):
        moved = False
        for a, b in ((client, server), (server, client)):
            try:
                data = a.bio_read(65536)
            except SSL.WantReadError:
                continue
            if data:
                b.bio_write(data)
                moved = True
        if not moved:
            return


def handshake(server_context, client_ctx, server_name=None, session=None):
    """(client, server) connections after a finished handshake; raises ``SSL.Error``."""
    client = SSL.Connection(client_ctx, None)
    client.set_connect_state()
    if server_name:
        client.set_tlsext_host_name(server_name.encode("ascii"))
    if session is not None:
        client.set_session(session)
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    done = [False, False]
    for _ in range(30):
        for index, connection in enumerate((client, server)):
            if not done[index]:
                try:
                    connection.do_handshake()
                    done[index] = True
                except SSL.WantReadError:
                    pass
        pump(client, server)
        if all(done):
            break
    if not all(done):
        raise SSL.Error("handshake did not finish")
    # TLS 1.3 tickets come after the handshake: let the client read them
    for _ in range(3):
        pump(client, server)
        try:
            client.recv(1)
        except (SSL.WantReadError, SSL.ZeroReturnError):
            pass
    return client, server


class TLSProviderContractMixin:
    """What every ``ITLSProvider`` must do. Define ``make_provider()`` serving the names of
    ``self.names`` (a list of DNS names); ``setUp`` makes ``self.ca``
    (``revproxy.testing.certs.CertificateAuthority``) for it to issue from."""

    names = ["one.test", "two.test"]

    def setUp(self):
        from revproxy.testing.certs import CertificateAuthority

        self.ca = CertificateAuthority("contract CA", key_type="ec")
        super().setUp()

    def test_provides_interface(self):
        """The provider provides ITLSProvider."""
        verifyObject(ITLSProvider, self.make_provider())

    def test_every_name_gets_a_context_that_serves_it(self):
        """Each configured name gets a context whose certificate covers it, in a handshake."""
        from cryptography import x509

        provider = self.make_provider()
        for name in self.names:
            context = provider.server_context(name)
            self.assertIsInstance(context, SSL.Context)
            client, _ = handshake(context, client_context(), name)
            cert = client.get_peer_certificate().to_cryptography()
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            served = san.value.get_values_for_type(x509.DNSName)
            self.assertTrue(name in served or "*." + name.split(".", 1)[1] in served,
                            "%s served a certificate for %s" % (name, served))

    def test_no_name_and_unknown_names_get_a_context(self):
        """No SNI and an unknown name still get a context (the default), never None."""
        provider = self.make_provider()
        for name in (None, "unknown.invalid"):
            context = provider.server_context(name)
            self.assertIsInstance(context, SSL.Context)
            handshake(context, client_context(), name)

    def test_client_policy_is_none_or_an_object(self):
        """client_policy(pool) answers at once: None means the default policy, anything else
        has ``verify`` and ``creator_for(host)``."""
        from revproxy.config.model import Pool

        provider = self.make_provider()
        for members in (("http://127.0.0.1:1",), ("https://127.0.0.1:1",)):
            policy = provider.client_policy(Pool(name="p", members=members))
            if policy is not None:
                self.assertIn(policy.verify, (True, False))
                self.assertTrue(callable(policy.creator_for))
