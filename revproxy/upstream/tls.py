"""TLS to ``https://`` members: the client policy of one pool and why a handshake failed.

``client_policy(pool)`` reads the pool's ``tls_*`` keys once (CA bundle, client certificate
and key, minimum version) and returns a ``ClientTLSPolicy``; ``policy.creator_for(host)`` is
the Twisted connection creator (``IOpenSSLClientConnectionCreator``) for a member whose URL
names ``host``. One OpenSSL context serves the whole pool; the server name (SNI, and the
identity checked against the certificate) is set per connection: the pool's
``tls_server_name`` when given, else the member's host (no SNI for an IP address, which is
then checked against the certificate's IP addresses).

Verification is on unless the pool says ``tls_verify = false``: the chain must lead to the
system trust store or to ``tls_ca``, and the leaf must name the server (service-identity).
A failed check aborts the handshake with an ``UpstreamTLSError`` saying which check failed
(``hostname mismatch``, ``unknown CA``, ``certificate expired``...): the connect attempt
fails like a refused connection (``retry_on = connect-failure``).

This module is what the TLS provider's ``client_policy(pool)`` (``revproxy.interfaces``)
builds on; nothing here touches the network.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname, verify_certificate_ip_address,
)
from twisted.internet import ssl
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from revproxy import gcpressure
from revproxy.upstream.resolve import is_ip

log = Logger(namespace="revproxy.upstream.tls")

__all__ = ["ClientTLSPolicy", "TLSSetupError", "UpstreamTLSError", "client_policy",
           "describe_failure", "has_tls_members"]

_MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_VERIFY_FLAGS = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT

# X509_V_ERR_* codes (OpenSSL's x509_vfy.h) -> which check failed, in words.
_CHAIN_ERRORS = {
    2: "unknown CA (the issuer certificate is not available)",
    7: "bad certificate signature",
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "unknown CA (self-signed certificate)",
    19: "unknown CA (self-signed certificate in the chain)",
    20: "unknown CA (unable to get the local issuer certificate)",
    21: "unknown CA (unable to verify the first certificate)",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "certificate not usable for a TLS server",
}


class TLSSetupError(ValueError):
    """A pool's TLS settings cannot be used: ``key`` (e.g. ``tls_ca``) and ``value`` name the
    setting, ``message`` says what was expected. The caller turns it into a ConfigError."""

    def __init__(self, key: str, value: str, message: str) -> None:
        ValueError.__init__(self, message)
        self.key = key
        self.value = value
        self.message = message


class UpstreamTLSError(Exception):
    """The TLS handshake with a member failed; ``str()`` says which check and why."""


def has_tls_members(pool: Any) -> bool:
    """True when ``pool`` (a config ``Pool``) has an ``https://`` member."""
    return any(url.startswith("https://") for url in pool.members)


# -- reading the files --------------------------------------------------------------------
def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise TLSSetupError(key, path, "cannot read the file: %s" % (exc.strerror or exc)) from None


def _certificates(key: str, path: str) -> List[x509.Certificate]:
    data = _read(key, path)
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise TLSSetupError(key, path, "expected PEM certificates (-----BEGIN CERTIFICATE-----)")
    return found


def load_trust_root(path: str) -> Any:
    """The trust root of ``tls_ca``: every certificate of a PEM bundle."""
    certs = _certificates("tls_ca", path)
    return ssl.trustRootFromCertificates(
        [ssl.Certificate(crypto.X509.from_cryptography(cert)) for cert in certs])


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_client_identity(cert_path: str, key_path: str) -> Dict[str, Any]:
    """``CertificateOptions`` arguments for a client certificate: the leaf (first in the
    file), the chain after it, and the key, which must match the leaf."""
    certs = _certificates("tls_client_cert", cert_path)
    data = _read("tls_client_key", key_path)
    try:
        key = serialization.load_pem_private_key(data, None)
    except TypeError:
        raise TLSSetupError("tls_client_key", key_path,
                            "expected an unencrypted PEM private key (this one needs a "
                            "passphrase)") from None
    except (ValueError, crypto.Error):
        raise TLSSetupError("tls_client_key", key_path,
                            "expected a PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    if _public_der(key.public_key()) != _public_der(certs[0].public_key()):
        raise TLSSetupError("tls_client_key", key_path,
                            "expected the private key of %s (the first certificate there has "
                            "another public key)" % cert_path)
    return {
        "privateKey": crypto.PKey.from_cryptography_key(key),
        "certificate": crypto.X509.from_cryptography(certs[0]),
        "extraCertChain": [crypto.X509.from_cryptography(c) for c in certs[1:]],
    }


# -- the policy -----------------------------------------------------------------------------
class ClientTLSPolicy:
    """How one pool talks TLS to its members: one OpenSSL context, creators by server name.

    ``verify`` (bool), ``server_name`` (the pool's override, "" for none) and ``min_version``
    are the pool's settings; ``creator_for(host)`` returns the (cached) connection creator
    for members named ``host`` in their URL.
    """

    def __init__(self, pool: Any) -> None:
        self.pool_name = pool.name
        self.verify = pool.tls_verify
        self.server_name = pool.tls_server_name
        self.min_version = pool.tls_min_version
        self.client_certificate = bool(pool.tls_client_cert)
        options: Dict[str, Any] = {"raiseMinimumTo": _MIN_VERSIONS[pool.tls_min_version]}
        if pool.tls_client_cert:
            options.update(load_client_identity(pool.tls_client_cert, pool.tls_client_key))
        if self.verify:
            options["trustRoot"] = (load_trust_root(pool.tls_ca) if pool.tls_ca
                                    else ssl.platformTrust())
        else:
            options["verify"] = False
        try:
            self.context = ssl.CertificateOptions(**options).getContext()
        except SSL.Error as exc:
            key = "tls_client_cert" if pool.tls_client_cert else "tls_ca"
            raise TLSSetupError(key, getattr(pool, key), "OpenSSL refused it: %s"
                                % _ssl_reasons(exc)) from None
        self._creators: Dict[str, _MemberCreator] = {}

    def creator_for(self, host: str) -> "_MemberCreator":
        """The ``IOpenSSLClientConnectionCreator`` for a member whose URL names ``host``."""
        name = self.server_name or host
        creator = self._creators.get(name)
        if creator is None:
            creator = self._creators[name] = _MemberCreator(self.context, name, self.verify)
        return creator


def client_policy(pool: Any) -> Optional[ClientTLSPolicy]:
    """The ``ClientTLSPolicy`` of ``pool`` (a config ``Pool``), or None when it has no
    ``https://`` member. Reads the pool's files now; raises ``TLSSetupError``."""
    if not has_tls_members(pool):
        return None
    return ClientTLSPolicy(pool)


@implementer(IOpenSSLClientConnectionCreator)
class _MemberCreator:
    """Makes the client ``SSL.Connection`` of one server name: SNI (not for an IP address)
    and, when verifying, a verify callback that checks the chain result and the name."""

    def __init__(self, context: Any, server_name: str, verify: bool) -> None:
        self.server_name = server_name
        self._context = context
        self._verify = verify
        self._is_ip = is_ip(server_name)
        self._sni = None if self._is_ip else server_name.encode("idna")

    def clientConnectionForTLS(self, tls_protocol: Any) -> Any:  # noqa: N802 (Twisted's name)
        connection = SSL.Connection(self._context, None)
        gcpressure.tls_connection_created()
        connection.set_app_data(tls_protocol)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        if self._verify:
            connection.set_verify(_VERIFY_FLAGS, self._check)
        return connection

    def _check(self, connection: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
        """OpenSSL's verify callback: once per certificate of the chain, root first."""
        try:
            if not ok:
                self._fail(connection, _chain_reason(errno, depth, cert))
                return False
            if depth == 0:
                problem = self._name_problem(cert.to_cryptography())
                if problem is not None:
                    self._fail(connection, problem)
                    return False
            return True
        except Exception:  # an exception inside OpenSSL's callback would be lost
            log.failure("verifying a member's certificate")
            return False

    def _name_problem(self, cert: x509.Certificate) -> Optional[str]:
        try:
            if self._is_ip:
                verify_certificate_ip_address(cert, self.server_name)
            else:
                verify_certificate_hostname(cert, self.server_name)
        except (VerificationError, CertificateError):
            return "hostname mismatch: the certificate (%s) is not valid for %s" % (
                _names(cert), self.server_name)
        return None

    def _fail(self, connection: Any, reason: str) -> None:
        # The TLS protocol reports this Failure to connectionLost instead of OpenSSL's
        # generic "certificate verify failed".
        connection.get_app_data().failVerification(Failure(UpstreamTLSError(reason)))


def _chain_reason(errno: int, depth: int, cert: Any) -> str:
    what = _CHAIN_ERRORS.get(errno, "certificate verify failed (X509 error %d)" % errno)
    subject = cert.to_cryptography().subject.rfc4514_string() or "no subject"
    return "%s: %s (depth %d)" % (what, subject, depth)


def _names(cert: x509.Certificate) -> str:
    """The certificate's DNS and IP names, at most five, for an error line."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        return "no subject alternative names; %s" % (cert.subject.rfc4514_string() or "-")
    shown = ", ".join(names[:5])
    return "names " + shown + (" and %d more" % (len(names) - 5) if len(names) > 5 else "")


def _ssl_reasons(exc: Exception) -> str:
    """OpenSSL's reason strings from an ``SSL.Error`` (a list of (lib, func, reason))."""
    parts: List[str] = []
    for item in (exc.args[0] if exc.args and isinstance(exc.args[0], list) else []):
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(parts) or str(exc) or type(exc).__name__


def describe_failure(failure: Failure) -> str:
    """Why a TLS connection to a member ended before its handshake completed, in words."""
    value = failure.value
    if isinstance(value, UpstreamTLSError):
        return "TLS: %s" % value
    if isinstance(value, SSL.Error):
        return "TLS handshake failed: %s" % _ssl_reasons(value)
    if isinstance(value, (ConnectionDone, ConnectionLost)):
        return "TLS: the member closed the connection during the handshake"
    return "TLS: %s" % (str(value).strip() or type(value).__name__)


def policy_summary(policy: ClientTLSPolicy) -> Tuple[str, ...]:
    """What the start-up log says about a pool's TLS (verification off is a warning); a
    provider's own policy object may have only ``verify``."""
    parts = ["verify " + ("on" if policy.verify else "OFF")]
    if getattr(policy, "min_version", None):
        parts.append("min TLS " + policy.min_version)
    if getattr(policy, "server_name", None):
        parts.append("server name " + policy.server_name)
    if getattr(policy, "client_certificate", None):
        parts.append("client certificate")
    return tuple(parts)
