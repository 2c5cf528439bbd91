"""What hooks and the forwarded headers learn about a client's TLS connection.

``PeerFacts`` is built when the TCP connection is accepted, before the TLS handshake: its
``tls`` attribute is a ``TLSFacts`` filled in place when the handshake completes
(``complete`` turns True). Requests are only parsed after the handshake, so every request
hook sees complete facts; a ``connection_made`` hook sees them empty.
"""

from __future__ import annotations

import hashlib

from OpenSSL import crypto


class TLSFacts:
    """``server_name`` (SNI, str or None), ``alpn`` (the negotiated protocol, str or None),
    ``version`` ("TLSv1.3"...), ``cipher``, and the client certificate, verified against
    ``[tls] client_ca`` when one was presented: ``client_subject`` (RFC 4514, e.g.
    ``CN=alice,O=Example``) and ``client_fingerprint`` (hex SHA-256 of its DER), else None."""

    __slots__ = ("complete", "server_name", "alpn", "version", "cipher", "client_subject",
                 "client_fingerprint")

    def __init__(self):
        self.complete = False
        self.server_name = None
        self.alpn = None
        self.version = None
        self.cipher = None
        self.client_subject = None
        self.client_fingerprint = None

    def fill(self, connection) -> None:
        """Read the facts of a finished handshake from ``connection`` (an SSL.Connection).
        A client certificate is only there when it verified: a failing one ends the
        handshake before this is called."""
        raw = connection.get_servername()
        self.server_name = raw.decode("ascii", "replace").lower() if raw else None
        alpn = connection.get_alpn_proto_negotiated()
        self.alpn = alpn.decode("ascii", "replace") if alpn else None
        self.version = connection.get_protocol_version_name()
        self.cipher = connection.get_cipher_name()
        peer = connection.get_peer_certificate()
        if peer is not None:
            self.client_subject = peer.to_cryptography().subject.rfc4514_string()
            self.client_fingerprint = hashlib.sha256(
                crypto.dump_certificate(crypto.FILETYPE_ASN1, peer)).hexdigest()
        self.complete = True

    def __repr__(self):
        return "<TLSFacts %s %s sni=%s alpn=%s client=%s>" % (
            self.version, self.cipher, self.server_name, self.alpn, self.client_subject)


def header_value(text: str) -> bytes:
    """``text`` as a header value: visible ASCII kept, every other byte of its UTF-8
    percent-escaped (a subject may hold any character; a header must not)."""
    out = []
    for byte in text.encode("utf-8"):
        if 0x20 <= byte < 0x7F and byte != 0x25:
            out.append(chr(byte))
        else:
            out.append("%%%02X" % byte)
    return "".join(out).encode("ascii")


def client_cert_headers(tls, subject_header: bytes, fingerprint_header: bytes):
    """The (name, value) pairs a backend gets for a verified client certificate: none when
    there is no TLS, no certificate, or the header name is empty."""
    if tls is None or tls.client_fingerprint is None:
        return []
    headers = []
    if subject_header:
        headers.append((subject_header, header_value(tls.client_subject)))
    if fingerprint_header:
        headers.append((fingerprint_header, tls.client_fingerprint.encode("ascii")))
    return headers
