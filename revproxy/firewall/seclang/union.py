"""The per-phase union of the prefilter's groups: one scan of a phase's values joined.

``Union`` (built by ``prefilter.build`` for each phase) holds every group whose chain is
classifiable (``identity``) as two RE2 sets in multi-line mode; ``Union.scan`` runs them
once over the phase's values joined by newlines, ``Union.confirm`` checks a "maybe" on
the group's own values (docs/firewall-engine.md, "Phase unions"). Also here: the RE2
options every prefilter set uses, ``in_text`` (a pattern made to hold at the newlines of
joined values) and the small set helpers ``prefilter`` shares.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

from .identity import SAFE

try:  # pragma: no cover - depends on the interpreter
    import re2 as _re2
except ImportError:  # pragma: no cover
    _re2 = None

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
