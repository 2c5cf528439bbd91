"""Throw-away certificates for tests: a CA, intermediates and leaves made at test time.

Nothing here touches the network or the system trust store. Typical use::

    from revproxy.testing.certs import CertificateAuthority

    ca = CertificateAuthority("Test CA")
    leaf = ca.issue(["example.test", "*.example.test"])          # RSA-2048 by default
    ecdsa = ca.issue(["example.test"], key_type="ec")            # ECDSA P-256
    expired = ca.issue(["old.test"], days=-1)                    # expired yesterday
    client = ca.issue([], common_name="alice", client=True)      # a client certificate
    cert_path, key_path = leaf.write(tmpdir, "site")             # PEM files
    ca.write_cert(os.path.join(tmpdir, "ca.pem"))                # the CA bundle for clients

A ``Leaf`` carries its chain (the intermediates between it and the root, nearest first):
``leaf.write(dir, name, chain=True)`` writes leaf + chain in the served order, and
``chain="reversed"`` the wrong order, for validation tests.

Keys: RSA-2048 keys take tens of milliseconds to make, so ``rsa_key()`` hands out keys from a
small per-process pool by default (``fresh=True`` makes a new one); tests that need two certificates
with *different* keys (a key that does not match its certificate) ask for ``fresh=True`` or use
``ec`` keys, which are cheap.
"""

from __future__ import annotations

import datetime
import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "Leaf", "rsa_key", "ec_key", "key_pem", "cert_pem", "ocsp_response",
           "write_pem", "sha256_fingerprint"]

_RSA_POOL = []
_RSA_POOL_SIZE = 4
_rsa_next = [0]


def rsa_key(bits=2048, fresh=False):
    """An RSA private key; from a small reused pool unless ``fresh`` (or a size other than 2048)."""
    if fresh or bits != 2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if len(_RSA_POOL) < _RSA_POOL_SIZE:
        _RSA_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _RSA_POOL[-1]
    _rsa_next[0] = (_rsa_next[0] + 1) % _RSA_POOL_SIZE
    return _RSA_POOL[_rsa_next[0]]


def ec_key(curve="P-256"):
    """A new ECDSA private key on ``curve`` ("P-256", "P-384" or "P-521")."""
    curves = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
    return ec.generate_private_key(curves[curve]())


def _make_key(key_type, fresh=False):
    if key_type == "rsa":
        return rsa_key(fresh=fresh)
    if key_type in ("ec", "ecdsa"):
        return ec_key()
    raise ValueError("key_type must be 'rsa' or 'ec', not %r" % (key_type,))


def key_pem(key, passphrase=None):
    """PEM (PKCS#8) bytes of a private key; encrypted when ``passphrase`` (bytes or str) is set."""
    if passphrase is None:
        enc = serialization.NoEncryption()
    else:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        enc = serialization.BestAvailableEncryption(passphrase)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def cert_pem(cert):
    """PEM bytes of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pem(path, *parts):
    """Write the PEM byte strings ``parts`` one after the other to ``path``; returns ``path``."""
    with open(path, "wb") as f:
        for part in parts:
            f.write(part)
    return path


def sha256_fingerprint(cert):
    """Lower-case hex SHA-256 of the certificate's DER encoding (what mTLS headers carry)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Leaf:
    """An issued certificate: ``cert`` and ``key`` (cryptography objects), ``chain`` the issuing
    intermediates nearest first (the root excluded), ``names`` its DNS names."""

    def __init__(self, cert, key, chain, names):
        self.cert = cert
        self.key = key
        self.chain = list(chain)
        self.names = list(names)

    @property
    def fingerprint(self):
        return sha256_fingerprint(self.cert)

    @property
    def subject(self):
        """The subject in RFC 4514 form, e.g. ``CN=alice``."""
        return self.cert.subject.rfc4514_string()

    def cert_pem(self, chain=False):
        """The certificate as PEM; with ``chain`` True the intermediates follow (served order),
        with ``chain="reversed"`` they come first (the wrong order)."""
        parts = [cert_pem(self.cert)]
        if chain:
            parts += [cert_pem(c) for c in self.chain]
        if chain == "reversed":
            parts = parts[1:] + parts[:1]
        return b"".join(parts)

    def key_pem(self, passphrase=None):
        return key_pem(self.key, passphrase)

    def write(self, directory, name, chain=False, passphrase=None, combined=False):
        """Write ``<name>.crt`` and ``<name>.key`` in ``directory``; returns (cert_path, key_path).

        ``combined`` writes the key into the certificate file too (one PEM with both) and
        returns that path twice."""
        cert_path = os.path.join(directory, name + ".crt")
        if combined:
            write_pem(cert_path, self.cert_pem(chain), self.key_pem(passphrase))
            return cert_path, cert_path
        key_path = os.path.join(directory, name + ".key")
        write_pem(cert_path, self.cert_pem(chain))
        write_pem(key_path, self.key_pem(passphrase))
        return cert_path, key_path


class CertificateAuthority:
    """A self-signed root (or, via ``intermediate()``, a CA signed by another) that issues leaves.

    ``key_type`` "rsa" or "ec" for the CA's own key (which also decides the signature algorithm
    of what it issues: an "ec" CA signs with ECDSA-SHA256, an "rsa" CA with RSA-SHA256)."""

    def __init__(self, common_name="revproxy test CA", key_type="rsa", _parent=None,
                 now=None):
        self.key = _make_key(key_type)
        self.common_name = common_name
        self.parent = _parent
        now = now or datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(common_name))
                   .public_key(self.key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                       self.key.public_key()), critical=False))
        if _parent is None:
            self.cert = builder.issuer_name(_name(common_name)).sign(self.key, hashes.SHA256())
        else:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(_parent.key.public_key()),
                critical=False)
            self.cert = builder.issuer_name(_parent.cert.subject).sign(
                _parent.key, hashes.SHA256())

    @property
    def chain(self):
        """The CAs between this one and the root, this one first, the root excluded."""
        out = []
        ca = self
        while ca.parent is not None:
            out.append(ca.cert)
            ca = ca.parent
        return out

    def intermediate(self, common_name="revproxy test intermediate", key_type="rsa"):
        """A CA signed by this one."""
        return CertificateAuthority(common_name, key_type, _parent=self)

    def cert_pem(self):
        return cert_pem(self.cert)

    def write_cert(self, path):
        """Write this CA's certificate (PEM) to ``path``; returns ``path``."""
        return write_pem(path, self.cert_pem())

    def issue(self, names, key_type="rsa", common_name=None, days=30, client=False,
              fresh_key=False, key=None, not_before=None):
        """A leaf for the DNS ``names`` (SAN; none for a CN-only certificate when ``names`` is
        empty), valid from a day ago for ``days`` days from now (negative: already expired).

        ``client`` makes a client-auth certificate instead of a server one; ``key`` reuses a
        given private key; ``common_name`` defaults to the first name."""
        key = key or _make_key(key_type, fresh=fresh_key)
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before = not_before or (now - datetime.timedelta(days=max(1, 1 - days)))
        cn = common_name or (names[0] if names else "revproxy test leaf")
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(cn))
                   .issuer_name(self.cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before)
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), critical=False))
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Leaf(cert, key, self.chain, names)


def ocsp_response(ca, leaf, days=7):
    """A DER OCSP response from ``ca`` saying ``leaf`` is good, next update in ``days`` days
    (negative: already out of date)."""
    from cryptography.x509 import ocsp

    now = datetime.datetime.now(datetime.timezone.utc)
    this_update = min(now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days - 1))
    builder = (ocsp.OCSPResponseBuilder()
               .add_response(cert=leaf.cert, issuer=ca.cert, algorithm=hashes.SHA1(),
                             cert_status=ocsp.OCSPCertStatus.GOOD, this_update=this_update,
                             next_update=now + datetime.timedelta(days=days),
                             revocation_time=None, revocation_reason=None)
               .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert))
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
