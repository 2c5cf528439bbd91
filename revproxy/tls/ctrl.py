"""OpenSSL's ``SSL_CTX_ctrl``, which pyOpenSSL and cryptography's binding do not expose.

Several OpenSSL calls revproxy needs are macros over it: ``SSL_CTX_set_tlsext_ticket_keys``
(``revproxy.tls.ticketkeys``) and, where the binding lacks the function (cryptography 43 on
PyPy), ``SSL_CTX_set1_groups_list`` (``revproxy.tls.defaults``). cryptography's wheels link
OpenSSL statically into their extension without exporting it, but keep its symbol table: the
function's address in this process is its symbol value plus the load bias, which three
functions cffi does export (``_cffi_d_NAME``) must agree on (one page-aligned value, else
refused). A binding linked to a shared libssl exports the symbol, found through its
dependencies. Resolved once per process; ``ssl_ctx_ctrl()`` says why when it cannot be.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Optional, Tuple

ANCHORS = ("SSL_CTX_new", "SSL_CTX_free", "SSL_CTX_set_options")
_PAGE = 4096
_PROTOTYPE = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                              ctypes.c_void_p)

_resolved = None  # (function or None, reason)


def bias_of(runtime: dict, symbols: dict) -> Optional[int]:
    """The load bias (runtime address minus symbol value) that every anchor function agrees
    on, page-aligned; None when they disagree or one is missing (pure)."""
    biases = {runtime[name] - symbols[name].value for name in runtime if name in symbols}
    if len(biases) != 1 or len(runtime) != len(ANCHORS):
        return None
    bias = biases.pop()
    return bias if bias > 0 and bias % _PAGE == 0 else None


def _binding():
    from cryptography.hazmat.bindings import _rust
    from cryptography.hazmat.bindings._rust import _openssl

    return _openssl.ffi, _openssl.lib, getattr(_openssl, "__file__", None) or _rust.__file__


def _resolve() -> Tuple[Optional[Callable], str]:
    from revproxy.tls.elfsyms import function_symbols

    try:
        ffi, lib, path = _binding()
    except ImportError as e:
        return None, "cryptography's OpenSSL binding is not importable (%s)" % e
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return None, "cannot read %s: %s" % (path, e)
    symbols = function_symbols(data, ("SSL_CTX_ctrl",) + tuple("_cffi_d_" + n for n in ANCHORS))
    if "SSL_CTX_ctrl" in symbols:  # OpenSSL linked in: the symbol value plus the load bias
        runtime = {}
        for name in ANCHORS:
            try:
                runtime["_cffi_d_" + name] = int(ffi.cast("uintptr_t",
                                                          ffi.addressof(lib, name)))
            except Exception:  # cffi's errors vary by version: the anchor is missing
                pass
        bias = bias_of(runtime, symbols)
        if bias is None:
            return None, "the load address of %s is not consistent" % path
        return _PROTOTYPE(bias + symbols["SSL_CTX_ctrl"].value), ""
    try:  # linked to a shared libssl: exported, found through the binding's dependencies
        return _PROTOTYPE(("SSL_CTX_ctrl", ctypes.CDLL(path))), ""
    except (OSError, AttributeError):
        return None, "%s neither exports nor lists SSL_CTX_ctrl" % path


def ssl_ctx_ctrl() -> Tuple[Optional[Callable], str]:
    """``(SSL_CTX_ctrl(ctx_pointer, cmd, larg, parg) or None, why not)``."""
    global _resolved
    if _resolved is None:
        _resolved = _resolve()
    return _resolved


def pointer(context) -> int:
    """The ``SSL_CTX *`` of a pyOpenSSL ``SSL.Context``, as an integer for ``ctypes``."""
    return int(_binding()[0].cast("uintptr_t", context._context))
