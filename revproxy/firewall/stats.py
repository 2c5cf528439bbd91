"""The firewall's counters: requests evaluated, blocked, detected; hits and the last few
matched samples per rule. Bounded: one entry per rule that exists (SecLang ids of the loaded
rule set, Python rule names), ``samples`` samples each, values truncated.

One ``FirewallStats`` outlives reloads (the firewall hands it on), so a rule watched in
detect mode keeps its counts when it is then enforced; rules a reload removed are left out
of the document.
"""

from __future__ import annotations

from collections import deque
from typing import Dict


class RuleCounter:
    """One rule's ``hits`` and its last samples (time, request id, variable, value)."""

    __slots__ = ("hits", "samples")

    def __init__(self, samples: int):
        self.hits = 0
        self.samples = deque(maxlen=samples)


class FirewallStats:
    """Counters of one proxy process. ``evaluated``: requests the firewall looked at;
    ``blocked``: answered with a denial; ``detected``: would have been blocked (detect mode,
    engine-wide, per route or per rule); ``matched``: requests with at least one match."""

    def __init__(self, samples: int = 5):
        self.samples = samples
        self.evaluated = 0
        self.blocked = 0
        self.detected = 0
        self.matched = 0
        self.rules: Dict[object, RuleCounter] = {}

    def resize(self, samples: int) -> None:
        """Keep ``samples`` samples per rule from now on (a reload changed it)."""
        if samples != self.samples:
            self.samples = samples
            for counter in self.rules.values():
                counter.samples = deque(counter.samples, maxlen=samples)

    def hit(self, key, now: float, request_id: str, variable: str, value: str) -> None:
        counter = self.rules.get(key)
        if counter is None:
            counter = self.rules[key] = RuleCounter(self.samples)
        counter.hits += 1
        if self.samples:
            counter.samples.append((now, request_id, variable, value))

    def document(self, describe=None, modes=None, known=None) -> dict:
        """Plain data for the admin status: totals and, per rule, ``hits``, ``mode`` and
        ``samples`` (newest last); ``describe(key)`` adds the rule's message; ``known``
        (a set) leaves out rules no longer loaded (their counters stay, unchanged, in case
        a refused reload goes back to them)."""
        rules = {}
        for key, counter in sorted(self.rules.items(), key=lambda item: str(item[0])):
            if known is not None and key not in known:
                continue
            entry = {
                "hits": counter.hits,
                "samples": [{"time": t, "request_id": rid, "variable": var, "value": val}
                            for t, rid, var, val in counter.samples],
            }
            if modes is not None:
                entry["mode"] = modes(key)
            if describe is not None:
                entry["msg"] = describe(key)
            rules[str(key)] = entry
        return {"evaluated": self.evaluated, "blocked": self.blocked,
                "detected": self.detected, "matched": self.matched, "rules": rules}
