"""Traffic splitting of a route between pools by weight (canary releases), pure.

``Split.choose`` picks a pool name for one request:

* not sticky: weighted at random with the injected ``random()`` (so a seeded rng converges to
  the weights: 95/5 gives 95% and 5%);
* ``sticky = "ip"``: a stable hash of the client address (CRC-32, the same in every process
  and after a restart) picks the pool, so one address always lands on the same side while
  the weights do not change;
* ``sticky = "cookie:NAME"``: a cookie ``NAME`` naming one of the split's pools keeps the
  client there; otherwise the pool is drawn at random and the response sets the cookie
  (``Set-Cookie: NAME=pool; Path=/; HttpOnly; SameSite=Lax``), as Traefik's weighted sticky
  services do. A cookie naming a pool no longer in the split is ignored (drawn again).
"""

from __future__ import annotations

import bisect
import zlib
from typing import Optional, Sequence, Tuple

from revproxy.routing.matchers import cookie_value


class Split:
    __slots__ = ("pools", "weights", "_bounds", "_total", "sticky_ip", "cookie", "_names")

    def __init__(self, arms: Sequence[Tuple[str, int]], sticky: str = "") -> None:
        self.pools = tuple(pool for pool, _ in arms)
        self.weights = tuple(weight for _, weight in arms)
        bounds, total = [], 0
        for weight in self.weights:
            total += weight
            bounds.append(total)
        self._bounds = bounds
        self._total = total
        self.sticky_ip = sticky == "ip"
        self.cookie = sticky[len("cookie:"):] if sticky.startswith("cookie:") else None
        self._names = frozenset(self.pools)

    def _at(self, point: int) -> str:
        """The pool owning ``point`` in [0, total)."""
        return self.pools[bisect.bisect_right(self._bounds, point)]

    def choose(self, random, client_ip: str, headers) -> Tuple[str, Optional[bytes]]:
        """(pool name, Set-Cookie value to send or None)."""
        if self.sticky_ip:
            return self._at(zlib.crc32(client_ip.encode("ascii", "replace")) % self._total), None
        if self.cookie is not None:
            kept = cookie_value(headers, self.cookie)
            if kept in self._names:
                return kept, None
            pool = self._at(int(random() * self._total))
            return pool, b"%s=%s; Path=/; HttpOnly; SameSite=Lax" % (
                self.cookie.encode("ascii"), pool.encode("ascii"))
        return self._at(int(random() * self._total)), None
