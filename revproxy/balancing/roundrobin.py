"""Round-robin member choice: the core's only policy (the load-balancing issue adds the rest)."""

from __future__ import annotations


class RoundRobin:
    """Hands out members in turn; ``pick`` returns None for an empty list."""

    def __init__(self):
        self._next = 0

    def pick(self, members):
        if not members:
            return None
        index = self._next % len(members)
        self._next = index + 1
        return members[index]
