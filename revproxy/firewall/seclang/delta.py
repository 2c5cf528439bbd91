"""The TX updates fold.py replaces runs of folded rules with (``Delta``), and the list
edits around them: ``compact`` (at load: markers nothing jumps to dropped, adjacent Deltas
merged) and ``merge_adjacent`` (the same on a transaction's list, emptyskip.py and
cleanskip.py). See fold.py for what a Delta stands for.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Tuple

MERGED_MAX = 1024  # merged runs kept per phase plan (merge_adjacent)


class Delta:
    """The effect of a run of folded rules on a transaction: TX values set and removed,
    and MATCHED_VAR(_NAME) as the last matching one left them (or None)."""

    marker = None
    delta = True  # what the run_phase loop checks (a rule's is None)
    guarded = False  # (guard.Guarded)

    def __init__(self, sets: Dict[str, bytes], removes: Tuple[str, ...], matched, rules,
                 matches: bool):
        self.sets = sets
        self.removes = removes
        self.matched = matched
        self.rules = tuple(rules)  # the folded rules
        self.ids = tuple(r.id for r in self.rules)
        self.matches = matches  # one of them matches (for every request)
        self.stop_part: Optional[Delta] = None  # what applies before the first match

    def then(self, other: "Delta") -> "Delta":
        """One Delta doing this one then ``other`` (``stop_part``: what the pair applies
        before its first matching rule, where ``ctl:ruleEngine=Off`` stops a phase)."""
        gone = set(other.removes)
        sets = {k: v for k, v in self.sets.items() if k not in gone}
        sets.update(other.sets)
        removes = tuple(sorted({k for k in self.removes if k not in other.sets} | gone))
        matched = other.matched if other.matched is not None else self.matched
        out = Delta(sets, removes, matched, self.rules + other.rules,
                    self.matches or other.matches)
        if self.matches:
            out.stop_part = self.stop_part
        elif other.matches:
            out.stop_part = self if other.stop_part is None else self.then(other.stop_part)
        return out

    def apply(self, evaluator) -> None:
        tx = evaluator.stores["tx"]
        if self.sets:
            tx.update(self.sets)
        for key in self.removes:
            tx.pop(key, None)
        if self.matched is not None:
            evaluator.vars.matched_var_name, evaluator.vars.matched_var = self.matched


def folded_rules(phases) -> FrozenSet:
    """The rules (chain links included) folded into the ``Delta``s of ``phases``."""
    return frozenset(link for lst in phases.values() for d in lst if isinstance(d, Delta)
                     for r in d.rules for link in r.chain_rules())


def compact(rules: list) -> list:
    """``rules`` without the markers no rule in it skips to (a kept ``skipAfter`` is the
    only way to land on one; every marker of a targeted name stays, so each name keeps its
    first position) and with the Deltas this leaves adjacent merged into one."""
    targets = {r.skip_after for r in rules if r.marker is None and r.delta is None}
    out: list = []
    for r in rules:
        if r.marker is not None and r.marker not in targets:
            continue
        if r.delta is not None and out and out[-1].delta is not None:
            out[-1] = out[-1].then(r)
            continue
        out.append(r)
    return out


def merge_adjacent(rules: list, memo: Dict[tuple, "Delta"]) -> list:
    """``rules`` without the markers nothing in it jumps to (a rule's ``skipAfter``, a
    guard's jump) and with each run of adjacent ``Delta``s merged into one
    (``Delta.then``): emptyskip.py and cleanskip.py build a transaction's list without the
    rules that cannot match, which leaves the Deltas around them adjacent. A run's merged
    Delta is kept in ``memo`` (keyed by the run, at most ``MERGED_MAX``; a phase has a few
    dozen Deltas) and shared by every list holding that run."""
    targets = set()
    for r in rules:
        if r.marker is None:
            if r.delta is None:
                targets.add(r.skip_after)
            elif r.guarded:
                targets.add(r.jump)
    out: list = []
    run: list = []

    def flush():
        if len(run) == 1:
            out.append(run[0])
        elif run:
            key = tuple(run)
            merged = memo.get(key)
            if merged is None:
                merged = run[0]
                for d in run[1:]:
                    merged = merged.then(d)
                if len(memo) >= MERGED_MAX:
                    memo.clear()
                memo[key] = merged
            out.append(merged)
        run.clear()
    for r in rules:
        if r.__class__ is Delta:  # (not a guard.Guarded, which must stay where it is)
            run.append(r)
            continue
        if r.marker is not None and r.marker not in targets:
            continue
        flush()
        out.append(r)
    flush()
    return out
