"""Session ticket keys every process of one supervisor shares, rotated on a common schedule.

OpenSSL encrypts TLS 1.2 and 1.3 session tickets with the keys of the context a connection
was created on (each listener's dispatch context, ``revproxy.tls.contexts``), random per
context unless ``SSL_CTX_set_tlsext_ticket_keys`` sets them. That call is a macro over
``SSL_CTX_ctrl``, which ``revproxy.tls.ctrl`` reaches; where it cannot, ``setter()`` says why
and every context keeps OpenSSL's random keys (a session then resumes on the process that
issued it only).

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

from revproxy.tls import ctrl

SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59  # OpenSSL's ssl.h, stable since 1.0
KEY_BYTES = 80  # key name 16 + HMAC key 32 + AES key 32 (what that control takes)
SECRET_BYTES = 32


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


def setter() -> Tuple[Optional[Callable], str]:
    """``(set_keys(context, keys) or None, why not)``; ``set_keys`` gives a pyOpenSSL
    ``SSL.Context`` the ``KEY_BYTES`` ticket keys (raises ``ValueError`` if OpenSSL
    refuses them)."""
    control, reason = ctrl.ssl_ctx_ctrl()
    if control is None:
        return None, reason

    def set_keys(context, keys):
        if len(keys) != KEY_BYTES:
            raise ValueError("ticket keys are %d bytes, not %d" % (KEY_BYTES, len(keys)))
        buffer = ctypes.create_string_buffer(bytes(keys), KEY_BYTES)
        if control(ctrl.pointer(context), SSL_CTRL_SET_TLSEXT_TICKET_KEYS, KEY_BYTES,
                   buffer) != 1:
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
