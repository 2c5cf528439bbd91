"""A multi-pattern prefilter: skip @rx rules that cannot match, without running them.

The CRS applies a hundred regular expressions to the same values (ARGS, cookies, headers)
through the same transformation chains. Rules of one phase with the same transformation
chain form a *group*; their @rx patterns are compiled together into one RE2 set, and the group's values
are the union of its rules' target values *without any exclusion* (a superset of what each
rule reads, whatever ``!`` or ``ctl:ruleRemoveTarget*`` removes). In a transaction, those
values are transformed once and run through the set once, giving the patterns that match some
value; a rule whose pattern is not among them cannot match any of its own values and is
skipped. A rule whose pattern is among them is evaluated as usual (the set only says "maybe":
captures, MATCHED_VAR and actions come from the rule).

Only rules where this is exact take part: @rx (not negated, no macro in the pattern), no
multiMatch, no count (``&``) target, targets whose values cannot change between rules (no TX,
MATCHED_VARS ...). Patterns RE2 refuses stay outside (the operator module then uses Python's
``re``, with its own bounds). Without google-re2 (PyPy) nothing is grouped.

Both the set and the @rx operator compile the pattern text the same way (RE2, Latin-1, ``.``
matches a newline), so "not in the set" implies "the operator would not match".
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .macros import has_macro
from .variables import _VOLATILE

try:  # pragma: no cover - depends on the interpreter
    import re2 as _re2
except ImportError:  # pragma: no cover
    _re2 = None

AVAILABLE = _re2 is not None
_MIN_GROUP = 1  # even one pattern: one C call per value instead of the operator stack


class Group:
    """One RE2 set; ``id`` keys the transaction's cache of its hits; ``targets`` are
    (target, values cache key) pairs covering every member's targets."""

    __slots__ = ("id", "set", "size", "targets", "raw_match")

    def __init__(self, gid: int, rset, size: int, targets) -> None:
        self.id = gid
        self.set = rset
        self.size = size
        self.targets = targets
        # the C set's Match (bytes in, list out) without the wrapper's frame per value
        inner = getattr(rset, "_set", None)
        self.raw_match = inner.Match if inner is not None else rset.Match

    def match(self, value: bytes) -> List[int]:
        return self.set.Match(value) or []


def _options():
    o = _re2.Options()
    o.encoding = _re2.Options.Encoding.LATIN1
    o.dot_nl = True
    o.log_errors = False
    o.max_mem = 64 << 20
    return o


def eligible(rule) -> bool:
    if rule.op_name.lower() != "rx" or rule.negated or rule.multi_match or rule.always:
        return False
    if not rule.plan or has_macro(rule.op_arg):
        return False
    return all(not t.count and t.name not in _VOLATILE for t, _, _ in rule.plan)


def build(rules) -> Tuple[int, int]:
    """Set ``rule.pre = (group, index)`` on every rule (chain links too) that takes part;
    returns (groups, rules grouped). Call after ``Rule.finish``."""
    for r in rules:
        for link in r.chain_rules():
            link.pre = None
    if _re2 is None:
        return 0, 0
    buckets: Dict[Tuple, List] = {}
    for r in rules:
        for link in r.chain_rules():
            if eligible(link):
                key = (link.phase, link.t_ids[-1] if link.t_ids else 0)
                buckets.setdefault(key, []).append(link)
    groups = grouped = 0
    for members in buckets.values():
        if len(members) < _MIN_GROUP:
            continue
        rset = _re2.Set.SearchSet(_options())
        added = []
        for link in members:
            try:
                added.append((link, rset.Add(link.op_arg.encode("utf-8"))))
            except Exception:  # RE2 refuses this pattern: it stays outside
                continue
        if len(added) < _MIN_GROUP:
            continue
        try:
            rset.Compile()
        except Exception:  # too big for the memory budget: no prefilter for this group
            continue
        targets = {}
        for link, _ in added:
            for t, _key, _ in link.plan:
                targets.setdefault(t.text, t)
        group = Group(groups, rset, len(added),
                      tuple((t, text + "|") for text, t in targets.items()))
        groups += 1
        for link, index in added:
            link.pre = (group, index)
            grouped += 1
    return groups, grouped


def hits(group: Group, values_of, transform) -> Tuple[frozenset, int]:
    """(the pattern indexes of ``group`` that match at least one of its transformed values,
    how many values were run through the set); ``values_of(target, cache_key)`` reads a
    target with no exclusion; ``transform`` is the group's chain (None: no transformation)."""
    out: set = set()
    match = group.raw_match
    seen = set()
    for t, key in group.targets:
        for _name, value in values_of(t, key):
            if value in seen:
                continue
            seen.add(value)
            found = match(transform(value) if transform is not None else value)
            if found:  # None or [] when nothing matches
                out.update(found)
                if len(out) == group.size:
                    return frozenset(out), len(seen)
    return frozenset(out), len(seen)
