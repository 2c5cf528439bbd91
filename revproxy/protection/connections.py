"""Admission of client connections: the total ceiling, the per-client-IP ceiling, and which
idle keep-alive connection gives way when the total ceiling is reached.

``IdleConnections`` keeps idle keep-alive connections in the order they became idle (an
insertion-ordered dict), so the oldest is found, and any one removed, in O(1).
"""

from __future__ import annotations

from collections import OrderedDict

REFUSED_TOTAL = "connection ceiling reached (max_connections)"
REFUSED_PER_IP = "too many connections from this address (max_connections_per_ip)"


class IdleConnections:
    """Idle keep-alive connections, oldest first."""

    def __init__(self):
        self._order = OrderedDict()

    def __len__(self):
        return len(self._order)

    def add(self, conn) -> None:
        """``conn`` waits for its next request: it goes to the young end."""
        self._order.pop(conn, None)
        self._order[conn] = None

    def discard(self, conn) -> None:
        self._order.pop(conn, None)

    def pop_oldest(self):
        """The connection idle the longest, removed; None when there is none."""
        if not self._order:
            return None
        return self._order.popitem(last=False)[0]


class PerAddress:
    """Open connections per client address (entries vanish at zero: bounded by the open
    connections, never by the addresses ever seen)."""

    def __init__(self):
        self._counts = {}

    def count(self, ip: str) -> int:
        return self._counts.get(ip, 0)

    def add(self, ip: str) -> None:
        self._counts[ip] = self._counts.get(ip, 0) + 1

    def remove(self, ip: str) -> None:
        left = self._counts.get(ip, 0) - 1
        if left > 0:
            self._counts[ip] = left
        else:
            self._counts.pop(ip, None)


def admission(open_total: int, max_total: int, from_ip: int, max_per_ip: int,
              idle_available: bool) -> str:
    """What to do with a new connection (pure): ``"admit"``, ``"shed"`` (admit after closing
    the oldest idle keep-alive connection), or a refusal reason (``REFUSED_*``).

    ``max_per_ip`` 0 means no per-address ceiling (also used for trusted proxies)."""
    if max_per_ip and from_ip >= max_per_ip:
        return REFUSED_PER_IP
    if open_total < max_total:
        return "admit"
    if idle_available:
        return "shed"
    return REFUSED_TOTAL
