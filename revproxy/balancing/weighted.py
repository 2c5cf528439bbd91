"""The "weighted-round-robin" policy: nginx's smooth weighted round-robin."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.balancing.options import check_options
from revproxy.interfaces import IBalancer


@implementer(IBalancer)
class WeightedRoundRobinBalancer:
    """Each pick adds every candidate's ``weight`` to its running score, chooses the highest
    score (the first one on a tie) and takes the candidates' total weight off it.

    Over any window each member gets its weight's share, interleaved rather than in bursts
    (weights 5, 1, 1 give a a b a c a a). Weights are read at each pick, so slow start and
    load reports take effect at once; members that are not candidates sit out and keep their
    score.
    """

    name = "weighted-round-robin"

    def __init__(self, options=None, random=None):
        check_options(self.name, options, ())
        self._scores = {}  # member name -> running score

    def set_members(self, members):
        names = {m.name for m in members}
        self._scores = {n: s for n, s in self._scores.items() if n in names}

    def pick(self, candidates, request=None):
        scores = self._scores
        best = None
        best_score = 0.0
        total = 0.0
        for candidate in candidates:
            weight = candidate.weight
            score = scores.get(candidate.name, 0.0) + weight
            scores[candidate.name] = score
            total += weight
            if best is None or score > best_score:
                best, best_score = candidate, score
        scores[best.name] = best_score - total
        if request is not None:
            request.note("score %.3g of total weight %.3g", best_score, total)
        return best

    def started(self, member):
        pass

    def finished(self, member, ok, duration):
        pass
