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

import re
from typing import Dict, List, Optional, Tuple

from .identity import SAFE
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


def _options(max_mem: int = 64 << 20):
    o = _re2.Options()
    o.encoding = _re2.Options.Encoding.LATIN1
    o.dot_nl = True
    o.log_errors = False
    o.max_mem = max_mem
    return o


# A flag group turning multi-line mode off (or any flag): such a pattern stays out.
_FLAG_OFF = re.compile(rb"\(\?[a-zA-Z]*-")


def in_text(pattern: bytes) -> Optional[bytes]:
    """``pattern`` for the joined values (multi-line mode), or None when it cannot be
    made to match wherever it matches one value: ``\\A`` becomes ``^`` and ``\\z``
    becomes ``$``, which in multi-line mode hold at the newlines around each value (and
    elsewhere too: a superset)."""
    if _FLAG_OFF.search(pattern):
        return None
    out = bytearray(b"(?m)")
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x5C and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == 0x41:      # \A
                out += b"^"
            elif nxt == 0x7A:    # \z
                out += b"$"
            else:
                out += pattern[i:i + 2]
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)
_DIRTY_MEMO_MAX = 4096
_MEMO_KEY_MAX = 64
MEMO_MAX = 512           # header values remembered per group (bounded memory: at most
#                          ~MEMO_MAX x MEMO_VALUE_MAX bytes per group)
MEMO_VALUE_MAX = 256     # longer header values are not remembered
CONFIRM_MIN_VALUES = 8   # a union "maybe" on fewer values is not confirmed


class Union:
    """Every group of one phase whose chain is classifiable (``identity``), as two RE2
    sets: the patterns of the chains that keep case (``raw``) and of those that
    lower-case (``low``), each compiled in multi-line mode.

    In a transaction, the phase's values are joined by newlines and each set runs once
    on the joined text (the ``low`` one on its lower-case form). For a value holding none
    of a group's sensitive bytes the chain's output is the value itself (or its
    lower-case), so a pattern matching it also matches the joined text: in multi-line
    mode ``^`` and ``$`` hold at the newlines around it (``in_text`` turns ``\\A`` and
    ``\\z`` into them; a ``(?-m)`` flag keeps the group out of the union). A match across two
    values is a false "maybe" the rule itself then refutes. Values holding sensitive bytes
    of a group (*dirty* for it) still go through that group's chain and set one by one."""

    __slots__ = ("groups", "targets", "raw_match", "low_match", "raw_map", "low_map",
                 "_dirty")

    def __init__(self, groups, raw, raw_map, low, low_map) -> None:
        self.groups = groups
        seen: Dict[str, object] = {}
        for g in groups:
            for t, key in g.targets:
                seen.setdefault(key, t)
        # (target, cache key, whether its values repeat across requests: header values)
        self.targets = tuple((t, key, key.startswith("REQUEST_HEADERS"))
                             for key, t in seen.items())
        self.raw_match = _raw_match(raw) if raw is not None else None
        self.low_match = _raw_match(low) if low is not None else None
        self.raw_map = raw_map
        self.low_map = low_map
        self._dirty: Dict[bytes, Tuple] = {}

    @classmethod
    def build(cls, groups) -> Optional["Union"]:
        members = [g for g in groups if g.cls is not None
                   and all(in_text(p) is not None for _i, p in g.patterns)]
        if not members:
            return None
        try:
            raw, raw_map = _union_set([g for g in members if not g.cls[1] or g.multi])
            low, low_map = _union_set([g for g in members if g.cls[1]])
            text_sets = [_group_set([(i, in_text(p)) for i, p in g.patterns])
                         for g in members]
        except Exception:  # RE2 refuses the union or a set: each group on its own
            return None
        union = cls(tuple(members), raw, raw_map, low, low_map)
        for g, (tset, tmap) in zip(members, text_sets):
            g.union = union
            g.text_match = _mapped(tset, tmap)
        return union

    def dirty_groups(self, residue: bytes) -> Tuple:
        """((group, its values' cache keys), ...) for which a value whose non-SAFE bytes
        are ``residue`` holds a sensitive byte."""
        found = self._dirty.get(residue)
        if found is None:
            found = tuple((g, g.keys) for g in self.groups
                          if residue.translate(None, g.cls[0]))
            if len(residue) <= _MEMO_KEY_MAX:
                if len(self._dirty) >= _DIRTY_MEMO_MAX:
                    self._dirty.clear()
                self._dirty[residue] = found
        return found

    @staticmethod
    def confirm(group, values_of, found) -> Tuple[set, int]:
        """The union said the patterns ``found`` of ``group`` may match some value of the
        phase: which of them match the joined values of the group's own targets (clean
        values as they leave the chain; dirty ones raw, a superset: their own pass is
        ``chains.Chains._union_hits``'s). With a few values only, ``found`` as it is: the
        rules then cost less than the confirmation."""
        own: Dict[bytes, None] = {}
        for t, key in group.targets:
            for _name, value in values_of(t, key):
                own[value] = None
        if not own:
            return set(), 0
        if len(own) <= CONFIRM_MIN_VALUES:
            return set(found), 0
        out: set = set()
        lowers = group.cls[1]
        match = group.text_match
        if match is not None:
            text = b"\n".join(own)
            if not lowers or group.multi:
                out.update(match(text) or ())
            if lowers:
                out.update(match(text.lower()) or ())
        return out, len(own)

    def scan(self, values_of, only=None, skip=None
             ) -> Tuple[Dict[int, set], Dict[int, dict], int]:
        """({group id: pattern indexes maybe matching}, {group id: {dirty value: whether
        it is a header value}}, values read); ``values_of(target, cache_key)`` reads with
        no exclusion. With ``only``, only the targets of those cache keys are read: the
        hits are then a superset for the rules reading only those targets. With ``skip``
        (cleanskip.Start.scan_skip: records, readers, cache key -> source), a value whose
        record holds every reader of its source is left out: no rule evaluates it."""
        seen: Dict[bytes, None] = {}
        dirty: Dict[int, dict] = {}
        for t, key, header in self.targets:
            if only is not None and key not in only:
                continue
            got = values_of(t, key)
            if skip is not None:
                i = skip[2].get(key)
                record = skip[0][i] if i is not None else None
                if record is not None:
                    mine = skip[1][i]
                    got = [x for x in got if record.get(x, 0) & mine != mine]
            for _name, value in got:
                residue = value.translate(None, SAFE)
                if residue:
                    for g, keys in self.dirty_groups(residue):
                        if key in keys:
                            d = dirty.get(g.id)
                            if d is None:
                                d = dirty[g.id] = {}
                            d[value] = header or d.get(value, False)
                seen[value] = None
        found: Dict[int, set] = {}
        if seen:
            text = b"\n".join(seen)
            for match, mapping, data in ((self.raw_match, self.raw_map, text),
                                         (self.low_match, self.low_map, None)):
                if match is None:
                    continue
                for i in match(data if data is not None else text.lower()) or ():
                    gid, index = mapping[i]
                    s = found.get(gid)
                    if s is None:
                        s = found[gid] = set()
                    s.add(index)
        return found, dirty, len(seen)


def _raw_match(rset):
    inner = getattr(rset, "_set", None)
    return inner.Match if inner is not None else rset.Match


def _group_set(patterns):
    """(RE2 set of ``patterns`` [(group index, pattern)], set index -> group index), or
    (None, None) when there are none."""
    if not patterns:
        return None, None
    rset = _re2.Set.SearchSet(_options())
    mapping = {}
    for index, pattern in patterns:
        mapping[rset.Add(pattern)] = index
    rset.Compile()
    return rset, mapping


def _mapped(rset, mapping):
    """``match(text) -> [group indexes]`` for a set made by ``_group_set``, or None."""
    if rset is None:
        return None
    inner = _raw_match(rset)
    if all(k == v for k, v in mapping.items()):
        return inner
    return lambda text: [mapping[i] for i in inner(text) or ()]


def _union_set(groups):
    if not groups:
        return None, None
    rset = _re2.Set.SearchSet(_options(256 << 20))
    mapping: Dict[int, Tuple[int, int]] = {}
    for g in groups:
        for index, pattern in g.patterns:
            mapping[rset.Add(in_text(pattern))] = (g.id, index)
    rset.Compile()
    return rset, mapping


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
