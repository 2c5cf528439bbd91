"""The "peak-ewma" policy: power of two choices on response time times load."""

from __future__ import annotations

from random import Random

from zope.interface import implementer

from revproxy.balancing.options import check_options, positive_number
from revproxy.interfaces import IBalancer


@implementer(IBalancer)
class PeakEwmaBalancer:
    """Draws two distinct candidates at random and takes the cheaper, where
    ``cost = rtt * (in_flight + 1) / weight`` and ``rtt`` is the member's peak-EWMA.

    A member with no response yet (ewma 0) is costed at the smallest EWMA among the
    candidates, or ``default_rtt`` seconds (option, default 1 ms) when none has one: new
    members get tried without being flooded. Two random choices keep the pick O(1) and,
    unlike always taking the global minimum, avoid every process piling onto one member.
    """

    name = "peak-ewma"

    def __init__(self, options=None, random=None):
        options = check_options(self.name, options, ("default_rtt",))
        default_rtt = options.get("default_rtt", 0.001)
        self.default_rtt = positive_number(self.name, "default_rtt", default_rtt)
        self._random = random if random is not None else Random()

    def set_members(self, members):
        pass

    def pick(self, candidates, request=None):
        count = len(candidates)
        if count == 1:
            return candidates[0]
        randrange = self._random.randrange
        i = randrange(count)
        j = randrange(count - 1)
        if j >= i:
            j += 1
        first, second = candidates[i], candidates[j]
        rtt1, rtt2 = first.ewma, second.ewma
        if not (rtt1 > 0.0 and rtt2 > 0.0):
            floor = self._smallest_ewma(candidates)
            rtt1 = rtt1 if rtt1 > 0.0 else floor
            rtt2 = rtt2 if rtt2 > 0.0 else floor
        cost1 = rtt1 * (first.in_flight + 1) / first.weight
        cost2 = rtt2 * (second.in_flight + 1) / second.weight
        if cost2 < cost1:
            first, second, rtt1, rtt2 = second, first, rtt2, rtt1
        if request is not None:
            request.note(
                "ewma %.1fms×%d/w%g vs %.1fms×%d/w%g",
                rtt1 * 1000, first.in_flight + 1, first.weight,
                rtt2 * 1000, second.in_flight + 1, second.weight,
            )
        return first

    def _smallest_ewma(self, candidates):
        # Only reached while some member has no response yet, so the O(n) scan is rare.
        known = [c.ewma for c in candidates if c.ewma > 0.0]
        return min(known) if known else self.default_rtt

    def started(self, member):
        pass

    def finished(self, member, ok, duration):
        pass
