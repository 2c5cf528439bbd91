"""The "round-robin" policy: members in turn, in the order ``set_members`` gave them."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.balancing.options import check_options
from revproxy.interfaces import IBalancer


@implementer(IBalancer)
class RoundRobinBalancer:
    """Cycles through the members; a member that is not a candidate is skipped, and the turn
    goes on from the member chosen, so the remaining candidates share its turns evenly.

    Before any ``set_members`` call it rotates over the candidates as given (the core's
    original ``pick(members)`` use), and ``pick`` of an empty sequence returns None.
    """

    name = "round-robin"

    def __init__(self, options=None, random=None):
        check_options(self.name, options, ())
        self._random = random
        self._members = []
        self._positions = {}  # member name -> index in _members
        self._next = 0  # index in _members (or in the candidates, before set_members)

    def set_members(self, members):
        first = not self._members
        self._members = list(members)
        self._positions = {m.name: i for i, m in enumerate(self._members)}
        count = len(self._members)
        if first and count and self._random is not None:
            # Processes started together should not all send their first request to member 0.
            self._next = self._random.randrange(count)
        elif count:
            self._next %= count

    def pick(self, candidates, request=None):
        if not candidates:
            return None
        members = self._members
        count = len(members)
        if not count:
            index = self._next % len(candidates)
            self._next = index + 1
            return candidates[index]
        start = self._next
        if len(candidates) == count and candidates[start] is members[start]:
            self._next = (start + 1) % count
            return candidates[start]
        return self._pick_subset(candidates, start, count)

    def _pick_subset(self, candidates, start, count):
        # The candidate that comes first walking the member ring from the cursor.
        positions = self._positions
        best = None
        best_distance = count
        for candidate in candidates:
            position = positions.get(candidate.name)
            distance = count if position is None else (position - start) % count
            if best is None or distance < best_distance:
                best, best_distance = candidate, distance
        if best_distance < count:
            self._next = (start + best_distance + 1) % count
        return best

    def started(self, member):
        pass

    def finished(self, member, ok, duration):
        pass

