"""The safe defaults every server context gets (Mozilla "intermediate", 2024 edition).

- TLS 1.2 and 1.3 only;
- TLS 1.2 ciphers: ECDHE key exchange with AEAD ciphers only (no CBC, no RSA key exchange, no
  DHE); TLS 1.3 suites: OpenSSL's three AEAD suites;
- key-exchange groups X25519, P-256, P-384 only (a client offering only P-521 or X448 fails);
- no compression (CRIME), no renegotiation, and the *client's* cipher preference (Mozilla:
  every listed cipher is strong, and the client knows whether it has AES hardware).

``apply_defaults`` is a pure function of its settings; nothing here reads the config.
"""

from __future__ import annotations

import warnings

from OpenSSL import SSL
from OpenSSL._util import lib as _lib

INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
DEFAULT_GROUPS = ("X25519", "P-256", "P-384")
VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}

# cryptography < 45 (PyPy's) does not expose SSL_CTX_set1_groups_list: the list is then set
# through SSL_CTX_ctrl (revproxy.tls.ctrl), of which that call is a macro. Where even that is
# out of reach, one group is still settable through set_tmp_ecdh: P-256, the one every client
# supports. X25519-only clients then need a HelloRetryRequest; nothing outside the profile is
# ever offered.
FALLBACK_GROUP = "P-256"
SSL_CTRL_SET_GROUPS_LIST = 92  # OpenSSL's ssl.h (SSL_CTX_set1_groups_list)

_OPTIONS = SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 \
    | SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1


def _binding_setter():
    return getattr(_lib, "SSL_CTX_set1_groups_list", None) or getattr(
        _lib, "SSL_CTX_set1_curves_list", None)


def _ctrl_setter():
    """``set1_groups_list(ctx, spec)`` through ``SSL_CTX_ctrl``, or None."""
    from revproxy.tls import ctrl

    control, _ = ctrl.ssl_ctx_ctrl()
    if control is None:
        return None
    import ctypes

    return lambda context, spec: control(ctrl.pointer(context), SSL_CTRL_SET_GROUPS_LIST, 0,
                                         ctypes.c_char_p(spec))


def groups_settable() -> bool:
    """True when a whole group list can be set (else only ``FALLBACK_GROUP``)."""
    return hasattr(SSL.Context, "set_groups") or _binding_setter() is not None or \
        _ctrl_setter() is not None


def set_groups(context: SSL.Context, groups) -> None:
    """Restrict the key-exchange groups of ``context`` to ``groups`` (OpenSSL names, e.g.
    "X25519", "P-256"). Raises ValueError naming the list when OpenSSL refuses it."""
    spec = ":".join(groups)
    if hasattr(context, "set_groups"):
        context.set_groups(spec)
        return
    setter = _binding_setter()
    target = context._context
    if setter is None:
        setter, target = _ctrl_setter(), context
    if setter is not None:
        if setter(target, spec.encode("ascii")) != 1:
            raise ValueError("OpenSSL refused the key-exchange groups %r" % spec)
        return
    from cryptography.hazmat.primitives.asymmetric import ec

    with warnings.catch_warnings():  # pyOpenSSL deprecates passing its own curve objects
        warnings.simplefilter("ignore", DeprecationWarning)
        context.set_tmp_ecdh(ec.SECP256R1())


def tls13_suites_settable() -> bool:
    """True when the TLS 1.3 suites can be set (pyOpenSSL >= 26, or the binding's
    ``SSL_CTX_set_ciphersuites``, which cryptography 43 on PyPy has)."""
    return hasattr(SSL.Context, "set_tls13_ciphersuites") or \
        hasattr(_lib, "SSL_CTX_set_ciphersuites")


def set_tls13_suites(context: SSL.Context, suites: str) -> None:
    """Restrict ``context``'s TLS 1.3 suites (OpenSSL names joined by ``:``). Raises
    ValueError naming the list when OpenSSL refuses it or the bindings cannot set it."""
    if hasattr(context, "set_tls13_ciphersuites"):
        try:
            context.set_tls13_ciphersuites(suites.encode("ascii"))
        except SSL.Error:
            raise ValueError("OpenSSL knows no TLS 1.3 suite in %r" % suites) from None
        return
    setter = getattr(_lib, "SSL_CTX_set_ciphersuites", None)
    if setter is not None:
        if setter(context._context, suites.encode("ascii")) != 1:
            raise ValueError("OpenSSL knows no TLS 1.3 suite in %r" % suites)
        return
    if suites != TLS13_SUITES:
        raise ValueError("these bindings cannot set TLS 1.3 suites: OpenSSL's default "
                         "three AEAD suites are used; remove the setting")


def apply_defaults(context: SSL.Context, min_version="1.2", ciphers=INTERMEDIATE_CIPHERS,
                   tls13_suites=TLS13_SUITES, groups=DEFAULT_GROUPS) -> None:
    """Give ``context`` the versions, ciphers, groups and options above. Raises ValueError
    when OpenSSL refuses a cipher list or group list (the message names which).

    Call it LAST when building a context: pyOpenSSL 25's ``set_cipher_list`` opens a
    throw-away connection on the context, which marks it "used" (later changes warn)."""
    context.set_options(_OPTIONS)
    context.set_min_proto_version(VERSIONS[min_version])
    context.set_max_proto_version(SSL.TLS1_3_VERSION)
    set_groups(context, groups)
    set_tls13_suites(context, tls13_suites)
    try:
        context.set_cipher_list(ciphers.encode("ascii"))
    except SSL.Error:
        raise ValueError("OpenSSL knows no cipher in %r" % ciphers) from None
