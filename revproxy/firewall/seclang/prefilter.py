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

The groups of a phase also form its ``union.Union``: one scan over the phase's values
joined (union.py).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .macros import has_macro
from .union import Union, _group_set, _mapped, _options, _raw_match, _re2, in_text
from .variables import _VOLATILE

AVAILABLE = _re2 is not None
_MIN_GROUP = 1  # even one pattern: one C call per value instead of the operator stack


class Group:
    """One RE2 set; ``id`` keys the transaction's cache of its hits; ``targets`` are
    (target, values cache key) pairs covering every member's targets; ``cls`` the chain's
    ``identity.Class`` (None: unclassifiable); ``union`` the phase's ``Union`` it takes
    part in (None: values go through ``set`` one by one)."""

    __slots__ = ("id", "set", "size", "targets", "raw_match", "cls", "union", "keys",
                 "patterns", "multi", "memo", "text_match")

    def __init__(self, gid: int, rset, size: int, targets, cls=None, patterns=(),
                 multi: bool = False) -> None:
        self.multi = multi  # multiMatch members: every changed intermediate is matched
        # header value -> its hits: browsers send the same User-Agent, Accept ... on every
        # request, and a value's hits through a fixed chain and set never change
        self.memo: Dict[bytes, Tuple[int, ...]] = {}
        # the set in multi-line mode, run on this group's own values joined: with a union
        # when it (its joined text holds every group's values) says "maybe"; without, first
        self.text_match = None
        self.id = gid
        self.set = rset
        self.size = size
        self.targets = targets
        self.keys = frozenset(key for _t, key in targets)
        self.cls = cls
        self.union = None
        self.patterns = patterns  # (set index, pattern bytes) of the members
        # the C set's Match (bytes in, list out) without the wrapper's frame per value
        self.raw_match = _raw_match(rset)

    def match(self, value: bytes) -> List[int]:
        return self.set.Match(value) or []


MEMO_MAX = 512           # header values remembered per group (bounded memory: at most
#                          ~MEMO_MAX x MEMO_VALUE_MAX bytes per group)
MEMO_VALUE_MAX = 256     # longer header values are not remembered


def eligible(rule) -> bool:
    return pattern_of(rule) is not None


def pattern_of(rule) -> Optional[bytes]:
    """The RE2 pattern that matches exactly where ``rule``'s operator does, or None when
    the rule cannot take part: @rx (its pattern) and @pm / @pmFromFile (an ASCII
    case-insensitive alternation of the phrases; RE2 also folds Latin-1 letters, a
    superset), not negated, no macro, no count (``&``) target, no target whose values
    change between rules (TX, MATCHED_VARS ...)."""
    if rule.negated or rule.always or not rule.plan:
        return None
    if not all(not t.count and t.name not in _VOLATILE for t, _, _ in rule.plan):
        return None
    name = rule.op_name.lower()
    if name == "rx":
        return None if has_macro(rule.op_arg) else rule.op_arg.encode("utf-8")
    if name in ("pm", "pmf", "pmfromfile"):
        phrases = getattr(rule.operator, "phrases", None)
        if not phrases:
            return None
        return b"(?i)(?:" + b"|".join(_literal(p) for p in sorted(phrases)) + b")"
    return None


_LITERAL_SAFE = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _literal(phrase: bytes) -> bytes:
    return b"".join(bytes((c,)) if c in _LITERAL_SAFE else b"\\x%02x" % c for c in phrase)


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
                key = (link.phase, link.t_ids[-1] if link.t_ids else 0, link.multi_match)
                buckets.setdefault(key, []).append(link)
    groups = grouped = 0
    by_phase: Dict[int, List[Group]] = {}
    for members in buckets.values():
        if len(members) < _MIN_GROUP:
            continue
        rset = _re2.Set.SearchSet(_options())
        added = []
        for link in members:
            try:
                added.append((link, rset.Add(pattern_of(link))))
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
                      tuple((t, text + "|") for text, t in targets.items()),
                      members[0].t_class,
                      tuple((index, pattern_of(link)) for link, index in added),
                      members[0].multi_match)
        groups += 1
        by_phase.setdefault(members[0].phase, []).append(group)
        for link, index in added:
            link.pre = (group, index)
            grouped += 1
    for phase_groups in by_phase.values():
        Union.build(phase_groups)
        for g in phase_groups:  # outside a union: its own set for its values joined
            texts = [(i, in_text(p)) for i, p in g.patterns]
            if g.union is None and all(p is not None for _i, p in texts):
                try:
                    g.text_match = _mapped(*_group_set(texts))
                except Exception:  # RE2 refuses it: one value at a time
                    g.text_match = None
    return groups, grouped


def hits(group: Group, values_of, transform) -> Tuple[frozenset, int]:
    """(the pattern indexes of ``group`` that match at least one of its transformed values,
    how many values were run through the set); ``values_of(target, cache_key)`` reads a
    target with no exclusion; ``transform`` is the group's chain (None: no transformation)
    or, for a multiMatch group, a function giving the value's candidates."""
    out: set = set()
    match = group.raw_match
    seen = set()
    multi = group.multi
    for t, key in group.targets:
        for _name, value in values_of(t, key):
            if value in seen:
                continue
            seen.add(value)
            if multi:
                for c in transform(value):
                    found = match(c)
                    if found:
                        out.update(found)
                continue
            found = match(transform(value) if transform is not None else value)
            if found:  # None or [] when nothing matches
                out.update(found)
                if len(out) == group.size:
                    return frozenset(out), len(seen)
    return frozenset(out), len(seen)
