"""Certificate files, SNI map, listener descriptions, [tls] config, the provider contract and
the openssl_provider check."""

from __future__ import annotations

import os

from twisted.trial import unittest

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.testing.certs import CertificateAuthority, ocsp_response, write_pem
from revproxy.testing.tls import TLSProviderContractMixin
from revproxy.tls.accel import check_openssl_provider
from revproxy.tls.contexts import TLSOptions
from revproxy.tls.endpoints import parse_tls_listener
from revproxy.tls.pem import CertificateProblem, load_bundle
from revproxy.tls.provider import PemTLSProvider, directory_entries, load_bundles
from revproxy.tls.sni import SNIMap


class PemCheckTests(unittest.TestCase):
    """Each bad file: one line naming the file and what is wrong."""

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.root = CertificateAuthority("root", key_type="ec")
        self.inter = self.root.intermediate("inter", key_type="ec")

    def problem(self, *args, **kw):
        with self.assertRaises(CertificateProblem) as caught:
            load_bundle(*args, **kw)
        return caught.exception

    def test_good_pair_with_chain(self):
        """A leaf with its chain loads: names from the SAN, the chain kept in order."""
        leaf = self.inter.issue(["a.test", "*.b.test"], key_type="ec")
        cert, key = leaf.write(self.dir, "good", chain=True)
        bundle = load_bundle(cert, key)
        self.assertEqual(bundle.names, ("a.test", "*.b.test"))
        self.assertEqual(bundle.chain, [self.inter.cert])
        self.assertEqual(bundle.key_type, "ECDSA")
        self.assertEqual(bundle.fingerprint, leaf.fingerprint)

    def test_cn_used_only_without_san(self):
        """A certificate without SAN serves its CN."""
        leaf = self.root.issue([], common_name="Legacy.Test", key_type="ec")
        cert, key = leaf.write(self.dir, "cn")
        self.assertEqual(load_bundle(cert, key).names, ("legacy.test",))

    def test_key_in_the_certificate_file(self):
        """key "" reads the key from the certificate file."""
        leaf = self.root.issue(["c.test"], key_type="ec")
        cert, _ = leaf.write(self.dir, "combined", combined=True)
        self.assertEqual(load_bundle(cert).key_path, cert)

    def test_missing_file(self):
        """A missing certificate file is named with the system's reason."""
        e = self.problem(os.path.join(self.dir, "nope.crt"), "")
        self.assertEqual(str(e), "%s: cannot read the certificate file: No such file or "
                                 "directory" % os.path.join(self.dir, "nope.crt"))

    def test_key_not_matching(self):
        """A key of another certificate: the key file is named, and the certificate."""
        one = self.root.issue(["one.test"], key_type="ec")
        two = self.root.issue(["two.test"], key_type="ec")
        cert, _ = one.write(self.dir, "one")
        _, key = two.write(self.dir, "two")
        e = self.problem(cert, key)
        self.assertEqual(e.path, key)
        self.assertIn("does not match the certificate in %s" % cert, str(e))

    def test_expired(self):
        """An expired certificate is refused with its end date."""
        cert, key = self.root.issue(["old.test"], key_type="ec", days=-1).write(self.dir, "old")
        e = self.problem(cert, key)
        self.assertEqual(e.path, cert)
        self.assertIn("expired on", str(e))

    def test_chain_in_wrong_order(self):
        """Intermediate first, leaf last: refused, saying which order is expected."""
        leaf = self.inter.issue(["w.test"], key_type="ec")
        cert, key = leaf.write(self.dir, "wrong", chain="reversed")
        e = self.problem(cert, key)
        self.assertEqual(e.path, cert)
        self.assertIn("wrong order", str(e))

    def test_encrypted_key_without_passphrase(self):
        """A passphrase-protected key with no passphrase_file is refused, naming the key."""
        cert, key = self.root.issue(["p.test"], key_type="ec").write(self.dir, "p",
                                                                     passphrase="s3cret")
        e = self.problem(cert, key)
        self.assertEqual(str(e), "%s: the private key is protected by a passphrase and no "
                                 "passphrase_file is set" % key)

    def test_encrypted_key_with_passphrase_file(self):
        """The right passphrase_file decrypts the key; a wrong one is refused."""
        cert, key = self.root.issue(["p.test"], key_type="ec").write(self.dir, "p",
                                                                     passphrase="s3cret")
        good = write_pem(os.path.join(self.dir, "pass"), b"s3cret\n")
        self.assertEqual(load_bundle(cert, key, good).names, ("p.test",))
        bad = write_pem(os.path.join(self.dir, "bad"), b"nope\n")
        self.assertIn("does not decrypt", str(self.problem(cert, key, bad)))

    def test_not_pem(self):
        """A file with no certificate in it, and a key file with no key."""
        junk = write_pem(os.path.join(self.dir, "junk.crt"), b"hello\n")
        self.assertIn("no PEM certificate", str(self.problem(junk, "")))
        cert, _ = self.root.issue(["k.test"], key_type="ec").write(self.dir, "k")
        self.assertIn("no PEM private key", str(self.problem(cert, junk)))

    def test_ocsp_response_checked(self):
        """A good OCSP response loads; one for another certificate or out of date fails."""
        leaf = self.root.issue(["o.test"], key_type="ec")
        cert, key = leaf.write(self.dir, "o")
        good = write_pem(os.path.join(self.dir, "o.ocsp"), ocsp_response(self.root, leaf))
        self.assertIsNotNone(load_bundle(cert, key, "", good).ocsp)
        other = self.root.issue(["x.test"], key_type="ec")
        wrong = write_pem(os.path.join(self.dir, "x.ocsp"), ocsp_response(self.root, other))
        self.assertIn("another certificate", str(self.problem(cert, key, "", wrong)))
        stale = write_pem(os.path.join(self.dir, "s.ocsp"),
                          ocsp_response(self.root, leaf, days=-1))
        self.assertIn("out of date", str(self.problem(cert, key, "", stale)))

    def test_directory_and_every_problem_listed(self):
        """certificate_dir: NAME.crt + NAME.key pairs; every bad file is reported, not just
        the first."""
        from revproxy.config.model import CertificateEntry

        self.root.issue(["d1.test"], key_type="ec").write(self.dir, "d1")
        self.root.issue(["d2.test"], key_type="ec", days=-1).write(self.dir, "d2")
        entries = directory_entries(self.dir)
        self.assertEqual([os.path.basename(c) for c, _, _ in entries], ["d1.crt", "d2.crt"])
        missing = CertificateEntry(cert=os.path.join(self.dir, "missing.crt"))
        bundles, default, problems = load_bundles(
            {"certificates": (missing,), "certificate_dir": self.dir})
        self.assertEqual([b.names for b in bundles], [("d1.test",)])
        self.assertEqual(sorted(os.path.basename(p.path) for p in problems),
                         ["d2.crt", "missing.crt"])


class SNIMapTests(unittest.TestCase):
    def test_lookup_order(self):
        """Exact beats wildcard; a wildcard covers one label; unknown/absent -> default."""
        m = SNIMap("default")
        m.add("*.example.com", "wild")
        m.add("www.example.com", "exact")
        m.add("WWW.example.com", "second")  # the first value for a name wins
        self.assertEqual(m.lookup("www.example.com."), "exact")
        self.assertEqual(m.lookup("API.example.com"), "wild")
        self.assertEqual(m.lookup("a.b.example.com"), "default")
        self.assertEqual(m.lookup("example.com"), "default")
        self.assertEqual(m.lookup(None), "default")
        self.assertEqual(m.names(), ["www.example.com", "*.example.com"])


class EndpointTests(unittest.TestCase):
    def test_ssl_description(self):
        """ssl: options become ours; interface/backlog go to tcp: (escapes kept)."""
        spec = parse_tls_listener(
            "ssl:8443:interface=127.0.0.1:privateKey=/k\\:ey.pem:certKey=c.pem:"
            "extraCertChain=ch.pem:backlog=10:client_auth=optional")
        self.assertEqual(spec.tcp, "tcp:8443:interface=127.0.0.1:backlog=10")
        self.assertEqual((spec.private_key, spec.cert, spec.extra_chain, spec.client_auth),
                         ("/k:ey.pem", "c.pem", "ch.pem", "optional"))

    def test_cert_defaults_to_private_key(self):
        """Twisted's rule: certKey defaults to privateKey."""
        self.assertEqual(parse_tls_listener("ssl:443:privateKey=both.pem").cert, "both.pem")

    def test_tls_description(self):
        """tls: takes no file options; client_auth checked."""
        spec = parse_tls_listener("tls:8443:interface=\\:\\:1")
        self.assertEqual((spec.kind, spec.tcp, spec.client_auth),
                         ("tls", "tcp:8443:interface=\\:\\:1", None))
        for bad in ("tls:1:privateKey=k.pem", "tls:1:client_auth=maybe", "ssl:1:method=TLSv1",
                    "ssl:1:certKey=c.pem"):
            self.assertRaises(ValueError, parse_tls_listener, bad)


def config(tls, listen=("tls:8443",)):
    return parse_config({"server": {"listen": list(listen)}, "tls": tls,
                         "pools": {"p": {"members": ["http://127.0.0.1:1"]}},
                         "routes": [{"name": "r", "pool": "p"}]}, "t.toml")


class TLSConfigTests(unittest.TestCase):
    def test_defaults(self):
        """No [tls]: safe defaults, mTLS off, the documented header names."""
        tls = config({}).tls
        self.assertEqual(tls.groups, ("X25519", "P-256", "P-384"))
        self.assertEqual((tls.min_version, tls.client_auth), ("1.2", "off"))
        self.assertEqual(tls.client_subject_header, "x-client-subject")

    def test_certificates_parsed(self):
        """certificates entries keep their keys."""
        tls = config({"certificates": [{"cert": "a.pem", "key": "a.key",
                                        "ocsp_response": "a.ocsp"}]}).tls
        self.assertEqual(tls.certificates[0].key, "a.key")
        self.assertEqual(tls.certificates[0].ocsp_response, "a.ocsp")

    def test_bad_values_named(self):
        """A bad key is named with its table."""
        cases = [({"certificates": [{"key": "a.key"}]}, "[tls] certificates #1 cert: missing"),
                 ({"certificates": [{"cert": "a", "chain": "b"}]}, "chain"),
                 ({"groups": ["P-999"]}, "[tls] groups"),
                 ({"min_version": "1.1"}, "[tls] min_version"),
                 ({"client_auth": "required"}, "[tls] client_ca"),
                 ({"alpn": [""]}, "[tls] alpn")]
        for tls, where in cases:
            with self.assertRaises(ConfigError) as caught:
                config(tls)
            self.assertIn(where, str(caught.exception))

    def test_tls_listener_accepted_by_the_syntax_check(self):
        """tls: is a listener type of its own."""
        self.assertEqual(config({}, ["tls:8443:interface=127.0.0.1"]).server.listen,
                         ("tls:8443:interface=127.0.0.1",))


class PemProviderContractTests(TLSProviderContractMixin, unittest.TestCase):
    names = ["one.test", "two.test", "x.wild.test"]

    def make_provider(self):
        from revproxy.tls.pem import CertificateBundle

        bundles = []
        for names in (["one.test"], ["two.test"], ["*.wild.test"]):
            leaf = self.ca.issue(names, key_type="ec")
            bundles.append(CertificateBundle("m.crt", "m.key", leaf.cert, [], leaf.key))
        return PemTLSProvider(bundles, TLSOptions())

    def test_registered_as_plugin(self):
        """The "pem" provider is found by name like every plugin point."""
        from revproxy.tls.registry import provider_factories

        self.assertIn("pem", provider_factories())


class OpenSSLProviderCheckTests(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def conf(self, text):
        return write_pem(os.path.join(self.dir, "openssl.cnf"), text.encode("ascii"))

    def test_not_configured(self):
        """No name: nothing to check. A name without OPENSSL_CONF: a clear line."""
        self.assertEqual(check_openssl_provider("", {}), "")
        self.assertIn("OPENSSL_CONF is not set", check_openssl_provider("qat", {}))

    def test_activated_provider_passes(self):
        """A config that activates the provider passes; without activate, it fails."""
        good = self.conf("openssl_conf = init\n[init]\nproviders = prov\n[prov]\n"
                         "default = def\nqat = qat_sect\n[def]\nactivate = 1\n"
                         "[qat_sect]\nactivate = 1\n")
        self.assertEqual(check_openssl_provider("qat", {"OPENSSL_CONF": good}), "")
        bad = self.conf("openssl_conf = init\n[init]\nproviders = prov\n[prov]\n"
                        "qat = qat_sect\n[qat_sect]\nmodule = qat.so\n")
        self.assertIn("does not activate", check_openssl_provider("qat", {"OPENSSL_CONF": bad}))

    def test_unknown_provider_and_missing_module(self):
        """A provider the file does not name, or whose module file is missing."""
        path = self.conf("openssl_conf = init\n[init]\nproviders = prov\n[prov]\n"
                         "qat = qat_sect\n[qat_sect]\nactivate = 1\nmodule = /nonexistent.so\n")
        env = {"OPENSSL_CONF": path}
        self.assertIn("no provider 'other'", check_openssl_provider("other", env))
        self.assertIn("/nonexistent.so: no such file", check_openssl_provider("qat", env))


class BuildTLSErrorTests(unittest.TestCase):
    """Start-up refusals of the TLS part name the key or listener."""

    def error(self, tls, listen):
        from revproxy.tls.runtime import build_tls

        with self.assertRaises(ConfigError) as caught:
            build_tls(config(tls, listen), ("http/1.1",), 0.0)
        return str(caught.exception)

    def test_refusals(self):
        """tls: without certificates, an unknown provider, a cipher list OpenSSL rejects,
        client_auth without client_ca, a bad listener option, a client_ca that is missing."""
        self.assertIn('[server] listen = "tls:0": a tls: listener serves the [tls] '
                      'certificates', self.error({}, ["tls:0"]))
        self.assertIn('[tls] provider = "nope": unknown TLS provider',
                      self.error({"provider": "nope"}, ["tls:0"]))
        self.assertIn("[tls] ciphers: OpenSSL knows no cipher",
                      self.error({"ciphers": "BOGUS"}, ["ssl:0:privateKey=/nonexistent"]))
        self.assertIn("client_auth=required needs [tls] client_ca",
                      self.error({}, ["ssl:0:privateKey=/x:client_auth=required"]))
        self.assertIn("take no option 'method'", self.error({}, ["ssl:0:method=TLSv1"]))
        self.assertIn("/nonexistent/ca.pem: cannot read the client CA bundle",
                      self.error({"client_auth": "optional", "client_ca": "/nonexistent/ca.pem"},
                                 ["ssl:0:privateKey=/x"]))
