"""Session ticket keys every process of one supervisor shares, rotated on a common schedule.

OpenSSL encrypts TLS 1.2 and 1.3 session tickets with the keys of the context a connection
was created on (each listener's dispatch context, ``revproxy.tls.contexts``), random per
context unless ``SSL_CTX_set_tlsext_ticket_keys`` sets them. That call is a macro over
``SSL_CTX_ctrl``, which neither pyOpenSSL nor cryptography's binding exposes; cryptography's
wheels link OpenSSL statically and keep its symbol table, so ``ctrl()`` finds the function in
the running process (``revproxy.tls.elfsyms``); with a binding linked to a shared libssl it
is an ordinary exported symbol. Where neither works, ``setter()`` says why and every context
keeps OpenSSL's random keys (a session then resumes on the process that issued it only).

The keys themselves need no messages between processes: the supervisor draws one random
secret at start and hands it to its workers (the worker spec, 0600 in a 0700 directory); each
process derives the keys of listener ``label`` for rotation period ``floor(now / lifetime)``
with HKDF-SHA256, so all agree on the keys of every period without talking, and a restarted
worker rejoins at once. A worker restarted by a new supervisor gets a new secret (as nginx's
random keys after a restart).
"""

from __future__ import annotations

import ctypes
import os
from typing import Callable, Optional, Tuple

SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59  # OpenSSL's ssl.h, stable since 1.0
KEY_BYTES = 80  # key name 16 + HMAC key 32 + AES key 32 (what that control takes)
SECRET_BYTES = 32
_ANCHORS = ("SSL_CTX_new", "SSL_CTX_free", "SSL_CTX_set_options")
_PAGE = 4096

_resolved = None  # (ctrl function or None, reason): resolved once per process


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def derive(secret: bytes, label: str, period: int) -> bytes:
    """The ``KEY_BYTES`` ticket keys of listener ``label`` in rotation ``period``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = b"revproxy session ticket keys\0%s\0%d" % (label.encode("utf-8"), period)
    return HKDF(hashes.SHA256(), KEY_BYTES, None, info).derive(secret)


def period_of(now: float, lifetime: float) -> int:
    """The rotation period ``now`` falls in (0 forever when ``lifetime`` is 0: no rotation)."""
    return int(now // lifetime) if lifetime else 0


def bias_of(runtime: dict, symbols: dict) -> Optional[int]:
    """The load bias (runtime address minus symbol value) that every anchor function agrees
    on, page-aligned; None when they disagree or one is missing (pure)."""
    biases = {runtime[name] - symbols[name].value for name in runtime if name in symbols}
    if len(biases) != 1 or len(runtime) != len(_ANCHORS):
        return None
    bias = biases.pop()
    return bias if bias > 0 and bias % _PAGE == 0 else None


def _binding():
    from cryptography.hazmat.bindings import _rust
    from cryptography.hazmat.bindings._rust import _openssl

    return _openssl.ffi, _openssl.lib, getattr(_openssl, "__file__", None) or _rust.__file__


def _resolve() -> Tuple[Optional[Callable], str]:
    from revproxy.tls.elfsyms import function_symbols

    prototype = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                                 ctypes.c_void_p)
    try:
        ffi, lib, path = _binding()
    except ImportError as e:
        return None, "cryptography's OpenSSL binding is not importable (%s)" % e
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return None, "cannot read %s: %s" % (path, e)
    symbols = function_symbols(data, ("SSL_CTX_ctrl",) + tuple("_cffi_d_" + n for n in _ANCHORS))
    if "SSL_CTX_ctrl" in symbols:  # OpenSSL linked in: the symbol value plus the load bias
        runtime = {}
        for name in _ANCHORS:
            try:
                runtime["_cffi_d_" + name] = int(ffi.cast("uintptr_t",
                                                          ffi.addressof(lib, name)))
            except (AttributeError, TypeError):
                pass
        bias = bias_of(runtime, symbols)
        if bias is None:
            return None, "the load address of %s is not consistent" % path
        return prototype(bias + symbols["SSL_CTX_ctrl"].value), ""
    try:  # linked to a shared libssl: exported, found through the binding's dependencies
        return prototype(("SSL_CTX_ctrl", ctypes.CDLL(path))), ""
    except (OSError, AttributeError):
        return None, "%s neither exports nor lists SSL_CTX_ctrl" % path


def setter() -> Tuple[Optional[Callable], str]:
    """``(set_keys(context, keys) or None, why not)``; ``set_keys`` gives a pyOpenSSL
    ``SSL.Context`` the ``KEY_BYTES`` ticket keys (raises ``ValueError`` if OpenSSL
    refuses them)."""
    global _resolved
    if _resolved is None:
        _resolved = _resolve()
    ctrl, reason = _resolved
    if ctrl is None:
        return None, reason
    ffi = _binding()[0]

    def set_keys(context, keys):
        if len(keys) != KEY_BYTES:
            raise ValueError("ticket keys are %d bytes, not %d" % (KEY_BYTES, len(keys)))
        pointer = int(ffi.cast("uintptr_t", context._context))
        buffer = ctypes.create_string_buffer(bytes(keys), KEY_BYTES)
        if ctrl(pointer, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, KEY_BYTES, buffer) != 1:
            raise ValueError("OpenSSL refused the session ticket keys")

    return set_keys, ""


class TicketKeys:
    """The keys derived from ``secret``, applied with ``set_keys`` (see ``setter``)."""

    def __init__(self, secret: bytes, set_keys: Callable):
        self.secret = secret
        self.set_keys = set_keys

    def apply(self, context, label: str, period: int) -> None:
        self.set_keys(context, derive(self.secret, label, period))


def shared_keys(secret: Optional[bytes]) -> Tuple[Optional[TicketKeys], str]:
    """``(TicketKeys or None, why not)`` for ``secret`` (None: OpenSSL's random keys)."""
    if secret is None:
        return None, "no shared secret"
    set_keys, reason = setter()
    if set_keys is None:
        return None, reason
    return TicketKeys(secret, set_keys), ""
