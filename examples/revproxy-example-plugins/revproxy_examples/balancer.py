"""``example-weighted-random``: each pick draws a candidate with probability proportional
to its current weight (members at weight 0 only when every candidate is at 0)."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.interfaces import IBalancer


@implementer(IBalancer)
class WeightedRandomBalancer:
    name = "example-weighted-random"

    def __init__(self, random):
        self._random = random  # the seeded random.Random revproxy gives: tests reproduce

    def set_members(self, members):
        pass  # nothing precomputed: weights are read at each pick (slow start changes them)

    def pick(self, candidates, request):
        weights = [max(0.0, float(m.weight)) for m in candidates]
        total = sum(weights)
        if total <= 0:
            chosen = candidates[self._random.randrange(len(candidates))]
            request.note("all weights 0: uniform among %d", len(candidates))
            return chosen
        point = self._random.random() * total
        for member, weight in zip(candidates, weights):
            point -= weight
            if point < 0:
                break
        request.note("weighted draw among %d (total weight %g)", len(candidates), total)
        return member

    def started(self, member):
        pass

    def finished(self, member, ok, duration):
        pass


def build(options, random):
    if options:
        raise ValueError("takes no options (got %s)" % ", ".join(sorted(options)))
    return WeightedRandomBalancer(random)
