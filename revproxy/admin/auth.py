"""Who may call the admin API: the bearer token of ``[admin] token`` / ``token_file``.

Without a token every caller is let in (keep the listener on loopback, or on a Unix socket
with tight permissions). With one, every call must carry ``Authorization: Bearer TOKEN``;
the comparison takes the same time whatever the bytes (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac
import re
from typing import Optional

from revproxy.config.errors import ConfigError

_TOKEN68 = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")


def configured_token(config) -> Optional[bytes]:
    """The token of ``config`` as bytes, None when there is none. ``token_file`` is read now
    (start-up and every reload): its first line, surrounding white space removed. Raises
    ``ConfigError`` naming the key when both are set, the file cannot be read or holds no
    token."""
    admin = config.admin
    if admin.token and admin.token_file:
        raise ConfigError(config.source, "[admin] token_file", admin.token_file,
                          "give either token or token_file, not both")
    if admin.token:
        return admin.token.encode("ascii")
    if not admin.token_file:
        return None
    try:
        with open(admin.token_file, "rb") as f:
            first = f.read(4096).split(b"\n", 1)[0].strip()
    except OSError as e:
        raise ConfigError(config.source, "[admin] token_file", admin.token_file,
                          "cannot read it: %s" % (e.strerror or e))
    if not _TOKEN68.fullmatch(first):
        raise ConfigError(config.source, "[admin] token_file", admin.token_file,
                          "expected a token of letters, digits and -._~+/ on its first line")
    return first


def authorized(token: Optional[bytes], authorization: Optional[bytes]) -> bool:
    """Whether a request with this ``Authorization`` header value may call the API."""
    if token is None:
        return True
    if not authorization:
        return False
    scheme, _, given = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token)
