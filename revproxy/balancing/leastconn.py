"""The "least-connections" policy: the member with the fewest requests in flight per weight."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.balancing.options import check_options
from revproxy.interfaces import IBalancer


@implementer(IBalancer)
class LeastConnectionsBalancer:
    """Chooses the lowest ``(in_flight + 1) / weight``; among equal lowest costs it takes
    them in turn, so an idle pool is not all sent to its first member."""

    name = "least-connections"

    def __init__(self, options=None, random=None):
        check_options(self.name, options, ())
        self._turn = 0

    def set_members(self, members):
        pass

    def pick(self, candidates, request=None):
        best_cost = None
        tied = []
        runner_up = None  # the cheapest member costing more than the best, for the note
        for candidate in candidates:
            cost = (candidate.in_flight + 1) / candidate.weight
            if best_cost is None or cost < best_cost:
                if tied:
                    runner_up = tied[0]
                best_cost, tied = cost, [candidate]
            elif cost == best_cost:
                tied.append(candidate)
            elif runner_up is None or cost < (runner_up.in_flight + 1) / runner_up.weight:
                runner_up = candidate
        self._turn += 1
        chosen = tied[self._turn % len(tied)]
        if request is not None:
            self._note(request, chosen, tied, runner_up)
        return chosen

    @staticmethod
    def _note(request, chosen, tied, runner_up):
        other = runner_up
        if len(tied) > 1:
            other = tied[0] if tied[0] is not chosen else tied[1]
        if other is None:
            request.note("conns %d/w%g, the only candidate", chosen.in_flight, chosen.weight)
        else:
            request.note(
                "conns %d/w%g vs %d/w%g",
                chosen.in_flight, chosen.weight, other.in_flight, other.weight,
            )

    def started(self, member):
        pass

    def finished(self, member, ok, duration):
        pass
