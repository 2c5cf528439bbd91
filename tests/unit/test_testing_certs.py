"""The throw-away certificate helper other tests build on."""

from __future__ import annotations

import datetime
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL, crypto
from twisted.trial import unittest

from revproxy.testing.certs import CertificateAuthority


class CertificateHelperTests(unittest.TestCase):
    def test_leaf_verifies_against_its_ca_through_an_intermediate(self):
        """A leaf issued by an intermediate verifies with the root as the only trust anchor."""
        root = CertificateAuthority("root")
        inter = root.intermediate("inter")
        leaf = inter.issue(["a.test", "*.b.test"], key_type="ec")
        self.assertIsInstance(leaf.key, ec.EllipticCurvePrivateKey)
        store = crypto.X509Store()
        store.add_cert(crypto.X509.from_cryptography(root.cert))
        ctx = crypto.X509StoreContext(store, crypto.X509.from_cryptography(leaf.cert),
                                      [crypto.X509.from_cryptography(c) for c in leaf.chain])
        ctx.verify_certificate()  # raises if the chain is wrong
        san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertEqual(san.value.get_values_for_type(x509.DNSName), ["a.test", "*.b.test"])

    def test_files_load_in_openssl_and_match(self):
        """Written cert/key files load into an OpenSSL context and the key matches."""
        ca = CertificateAuthority()
        leaf = ca.issue(["site.test"])
        self.assertIsInstance(leaf.key, rsa.RSAPrivateKey)
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.remove(os.path.join(d, f)) for f in os.listdir(d)])
        cert_path, key_path = leaf.write(d, "site", chain=True)
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.use_certificate_file(cert_path)
        ctx.use_privatekey_file(key_path)
        ctx.check_privatekey()

    def test_expired_and_reversed_chain(self):
        """days<0 gives an expired certificate; chain='reversed' puts the leaf last."""
        root = CertificateAuthority()
        inter = root.intermediate()
        leaf = inter.issue(["x.test"], days=-1)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(leaf.cert.not_valid_after_utc, now)
        pems = x509.load_pem_x509_certificates(leaf.cert_pem(chain="reversed"))
        self.assertEqual(pems[-1], leaf.cert)
        self.assertEqual(pems[0], inter.cert)
