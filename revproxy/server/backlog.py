"""The listen backlog of each listener: the system maximum unless the config says otherwise.

Twisted listens with a backlog of 50: a burst of connects beyond what the accept loop drains
overflows the accept queue, and each dropped SYN costs the client a one-second retransmit
(3,000 quick connects took 17 s instead of 0.05 s). The kernel caps any backlog at
``net.core.somaxconn``, so that value is the useful maximum and the default here.

Precedence: an explicit ``backlog=N`` in the endpoint string, then ``[server] backlog`` when
not 0, then the system maximum (``/proc/sys/net/core/somaxconn``; 4096 where unreadable).
"""

from __future__ import annotations

from typing import Tuple

from revproxy.config.values import split_description

SOMAXCONN = "/proc/sys/net/core/somaxconn"
FALLBACK_BACKLOG = 4096


def system_backlog(path: str = SOMAXCONN) -> int:
    """The kernel's cap on listen backlogs, or ``FALLBACK_BACKLOG`` when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            value = int(handle.read().strip())
    except (OSError, ValueError):
        return FALLBACK_BACKLOG
    return value if value > 0 else FALLBACK_BACKLOG


def explicit_backlog(description: str):
    """The ``backlog=N`` of an endpoint string as an int, or None when it names none."""
    for part in split_description(description)[1:]:
        if part.startswith("backlog="):
            return int(part[len("backlog="):])
    return None


def with_backlog(description: str, configured: int, system: int) -> Tuple[str, int]:
    """(endpoint string to listen with, its backlog) for ``description``.

    ``configured`` is ``[server] backlog`` (0: use ``system``). An explicit ``backlog=`` in
    the string wins and the string is left as it is; otherwise ``:backlog=N`` is appended
    (every endpoint type a config may name, tcp:, tcp6:, ssl: and unix:, takes it)."""
    explicit = explicit_backlog(description)
    if explicit is not None:
        return description, explicit
    backlog = configured or system
    return "%s:backlog=%d" % (description, backlog), backlog
