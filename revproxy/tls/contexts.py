"""OpenSSL contexts: one per group of certificates serving a name, plus the listener's own
"dispatch" context every connection starts on.

How a handshake finds its certificate: each listener's connections are created on its
dispatch context (safe defaults, client-certificate mode, session cache and ticket keys, no
certificate). Its server-name callback runs for every ClientHello, with or without SNI, and
switches the connection to the certificate context ``provider.server_context(name)`` returns.
OpenSSL copies versions, groups, options and the verify mode from the context a connection was
created on, and takes certificates, chains, the CA store, ALPN and OCSP callbacks from the
context it was switched to; session tickets are encrypted with the first one's keys. So:

- ``build_certificate_context`` (per certificate group): certificates with their chains (an
  RSA and an ECDSA certificate for the same names share one context: OpenSSL serves each
  client the one its signature algorithms allow), ALPN selection, OCSP stapling, the CA store
  and CA names for client certificates;
- ``build_dispatch_context`` (per listener): everything else. Rebuilding it is how ticket
  keys rotate; ``revproxy.tls.ticketkeys`` sets the keys it gets.
"""

from __future__ import annotations

import hashlib

from OpenSSL import SSL, crypto

from revproxy.tls.defaults import apply_defaults

CLIENT_AUTH_MODES = ("off", "optional", "required")
_VERIFY = {
    "off": SSL.VERIFY_NONE,
    "optional": SSL.VERIFY_PEER,
    "required": SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
}


class TLSOptions:
    """The protocol settings of every context (``[tls]`` min_version, ciphers, ...)."""

    def __init__(self, min_version="1.2", ciphers=None, tls13_suites=None, groups=None,
                 session_tickets=True, session_timeout=300.0, alpn=("http/1.1",),
                 client_ca=""):
        from revproxy.tls import defaults

        self.min_version = min_version
        self.ciphers = ciphers or defaults.INTERMEDIATE_CIPHERS
        self.tls13_suites = tls13_suites or defaults.TLS13_SUITES
        self.groups = tuple(groups or defaults.DEFAULT_GROUPS)
        self.session_tickets = session_tickets
        self.session_timeout = session_timeout
        self.alpn = tuple(p.encode("ascii") if isinstance(p, str) else p for p in alpn)
        self.client_ca = client_ca

    def apply(self, context):
        apply_defaults(context, self.min_version, self.ciphers, self.tls13_suites, self.groups)


def alpn_chooser(protocols):
    """The ALPN select callback for our ``protocols`` (bytes, in our order of preference):
    our first protocol the client offers; none in common: no ALPN (the client may still
    speak HTTP/1.1), not a failed handshake."""
    ours = tuple(protocols)

    def choose(connection, offered):
        for protocol in ours:
            if protocol in offered:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS

    return choose


# One session id context for every context: a session resumes only on the listener that made
# it anyway (each listener's dispatch context holds its own cache and ticket keys), and a
# connection switched by SNI must keep the id its session was stored under.
SESSION_ID = b"revproxy"


def build_certificate_context(bundles, options: TLSOptions, session_id: bytes = SESSION_ID):
    """An ``SSL.Context`` serving ``bundles`` (at most one RSA and one ECDSA, for the same
    names). Raises ValueError (OpenSSL refused a setting) or ``SSL.Error``."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_session_id(session_id)
    shared_chain = len({tuple(_der(c) for c in b.chain) for b in bundles}) <= 1
    for bundle in bundles:
        if bundle.chain and not shared_chain:
            # different chains in one context: each certificate slot gets its own
            context.use_certificate_chain_file(bundle.cert_path.encode("utf-8"))
        else:
            context.use_certificate(bundle.cert)
        context.use_privatekey(bundle.key)
        context.check_privatekey()
    if shared_chain and bundles:
        for cert in bundles[0].chain:
            context.add_extra_chain_cert(cert)
    if options.alpn:
        context.set_alpn_select_callback(alpn_chooser(options.alpn))
    staples = {b.fingerprint: b.ocsp for b in bundles if b.ocsp}
    if staples:
        context.set_ocsp_server_callback(_stapler(staples))
    if options.client_ca:
        context.load_verify_locations(options.client_ca.encode("utf-8"))
        context.load_client_ca(options.client_ca.encode("utf-8"))  # names sent to clients
    options.apply(context)  # last: see apply_defaults
    return context


def _der(cert):
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.DER)


def _stapler(staples):
    """The OCSP callback: the response for the certificate OpenSSL chose, or nothing."""

    def staple(connection, data):
        cert = connection.get_certificate()
        if cert is None:
            return b""
        fingerprint = hashlib.sha256(crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)) \
            .hexdigest()
        return staples.get(fingerprint, b"")

    return staple


def build_dispatch_context(options: TLSOptions, client_auth: str, select_context,
                           session_id: bytes = SESSION_ID):
    """The context a listener's connections are created on. ``select_context(name)`` (name:
    str or None) returns the certificate context to switch to. ``client_auth`` is one of
    ``CLIENT_AUTH_MODES``; a presented certificate must verify against the CA store of the
    certificate context (``[tls] client_ca``), in both "optional" and "required" modes."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_session_id(session_id)
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    context.set_timeout(int(options.session_timeout))
    if not options.session_tickets:
        context.set_options(SSL.OP_NO_TICKET)
    if client_auth != "off":
        context.set_verify(_VERIFY[client_auth], _keep_verdict)
    if options.alpn:
        context.set_alpn_select_callback(alpn_chooser(options.alpn))

    def switch(connection):
        raw = connection.get_servername()
        name = raw.decode("ascii", "replace") if raw else None
        connection.set_context(select_context(name))

    context.set_tlsext_servername_callback(switch)
    options.apply(context)  # last: see apply_defaults
    return context


def _keep_verdict(connection, cert, errno, depth, ok):
    return bool(ok)
