"""Certificate and key files: read, decode, check, without a traceback for any bad file.

``load_bundle`` returns a ``CertificateBundle`` or raises ``CertificateProblem`` whose ``str()``
is one line naming the file and what is wrong: a missing or unreadable file, no certificate or
no key in it, an encrypted key without (or with a wrong) passphrase, a key that does not match
its certificate, a certificate expired or not valid yet, a chain in the wrong order, an
unsupported key type, an unusable OCSP response file. ``--check``, start-up and reload all go
through it.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CertificateProblem(ValueError):
    """A certificate or key file that cannot be served; ``str()``: ``<path>: <what is wrong>``."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__("%s: %s" % (path, message))


class CertificateBundle:
    """A validated certificate: ``cert`` (the leaf), ``chain`` (its issuers, nearest first, as
    served), ``key``, ``names`` (lower-case DNS names from the SAN, else the CN),
    ``key_type`` ("RSA" or "ECDSA"), ``ocsp`` (DER bytes to staple, or None), the paths."""

    def __init__(self, cert_path, key_path, cert, chain, key, ocsp=None, ocsp_path=""):
        self.cert_path = cert_path
        self.key_path = key_path
        self.cert = cert
        self.chain = list(chain)
        self.key = key
        self.ocsp = ocsp
        self.ocsp_path = ocsp_path
        self.names = certificate_names(cert)
        self.key_type = "RSA" if isinstance(key, rsa.RSAPrivateKey) else "ECDSA"
        self.fingerprint = hashlib.sha256(
            cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    def __repr__(self):
        return "<CertificateBundle %s %s %s>" % (self.cert_path, self.key_type,
                                                 ",".join(self.names))


def certificate_names(cert) -> tuple:
    """The DNS names a certificate serves: its SAN DNS names, or its CN when it has no SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(str(name).lower().rstrip(".") for name in names)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as e:
        raise CertificateProblem(path, "cannot read the %s: %s" % (what, e.strerror or e)) \
            from None


def _passphrase(path: str) -> bytes:
    data = _read(path, "passphrase file")
    return data.rstrip(b"\r\n")


def _load_key(key_path: str, data: bytes, passphrase_file: str):
    if b"PRIVATE KEY-----" not in data:
        raise CertificateProblem(key_path, "no PEM private key in the file (expected "
                                           "-----BEGIN PRIVATE KEY----- or a key file)")
    password = _passphrase(passphrase_file) if passphrase_file else None
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as e:
        if password is None:
            raise CertificateProblem(key_path, "the private key is protected by a passphrase "
                                               "and no passphrase_file is set") from None
        if "not encrypted" in str(e):
            key = serialization.load_pem_private_key(data, None)
        else:
            raise CertificateProblem(key_path, "cannot load the private key: %s" % e) from None
    except ValueError as e:
        if password is not None:
            raise CertificateProblem(key_path, "the passphrase in %s does not decrypt the "
                                               "private key" % passphrase_file) from None
        raise CertificateProblem(key_path, "cannot decode the private key: %s" % e) from None
    except Exception as e:  # an unsupported algorithm...: one line, never a traceback
        raise CertificateProblem(key_path, "cannot load the private key: %s" % e) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CertificateProblem(key_path, "unsupported key type %s (expected RSA or ECDSA)"
                                 % key.__class__.__name__)
    return key


def _check_chain(path: str, certs) -> None:
    for index in range(len(certs) - 1):
        if certs[index].issuer != certs[index + 1].subject:
            raise CertificateProblem(path, (
                "the chain is in the wrong order: certificate #%d (%s) is not the issuer of "
                "#%d (%s); expected the server certificate first, then each issuer in turn"
            ) % (index + 2, certs[index + 1].subject.rfc4514_string(), index + 1,
                 certs[index].subject.rfc4514_string()))


def _check_dates(path: str, cert, now) -> None:
    if cert.not_valid_after_utc < now:
        raise CertificateProblem(path, "the certificate (%s) expired on %s" % (
            cert.subject.rfc4514_string(), cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")))
    if cert.not_valid_before_utc > now:
        raise CertificateProblem(path, "the certificate (%s) is not valid before %s" % (
            cert.subject.rfc4514_string(),
            cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")))


def load_ocsp(path: str, cert, now) -> bytes:
    """The DER OCSP response in ``path`` for ``cert``, checked: successful, for this
    certificate's serial, not past its nextUpdate. Raises ``CertificateProblem``."""
    from cryptography.x509 import ocsp

    data = _read(path, "OCSP response")
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise CertificateProblem(path, "not a DER OCSP response") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise CertificateProblem(path, "the OCSP response status is %s, expected SUCCESSFUL"
                                 % response.response_status.name)
    if response.serial_number != cert.serial_number:
        raise CertificateProblem(path, "the OCSP response is for another certificate (serial "
                                       "%x, expected %x)" % (response.serial_number,
                                                            cert.serial_number))
    next_update = response.next_update_utc
    if next_update is not None and next_update < now:
        raise CertificateProblem(path, "the OCSP response is out of date (next update was %s)"
                                 % next_update.strftime("%Y-%m-%d %H:%M UTC"))
    return data


def load_bundle(cert_path: str, key_path: str = "", passphrase_file: str = "",
                ocsp_path: str = "", now=None) -> CertificateBundle:
    """Read and check one certificate (with its chain) and its key; ``key_path`` "" means the
    key is in the certificate file. ``now`` (an aware datetime) defaults to the current time."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    data = _read(cert_path, "certificate file")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateProblem(cert_path, "no PEM certificate in the file (expected "
                                            "-----BEGIN CERTIFICATE-----)") from None
    key_path = key_path or cert_path
    key_data = data if key_path == cert_path else _read(key_path, "key file")
    key = _load_key(key_path, key_data, passphrase_file)
    if certs[0].public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        if any(c.public_key().public_bytes(*_SPKI) == key.public_key().public_bytes(*_SPKI)
               for c in certs[1:]):
            _check_chain(cert_path, certs)  # the leaf is not first: say so
        raise CertificateProblem(key_path, "the private key does not match the certificate "
                                           "in %s (%s)" % (cert_path,
                                                           certs[0].subject.rfc4514_string()))
    _check_chain(cert_path, certs)
    _check_dates(cert_path, certs[0], now)
    ocsp = load_ocsp(ocsp_path, certs[0], now) if ocsp_path else None
    return CertificateBundle(cert_path, key_path, certs[0], certs[1:], key, ocsp, ocsp_path)
