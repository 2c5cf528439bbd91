"""One transaction's values through transformation chains and the RE2 prefilter.

``Chains(values, kept)`` keeps what a transaction computes once and every rule reuses:
transformation results per (chain prefix, value), multiMatch steps per (transformation,
input), each prefilter group's hits (``hits``: group id -> pattern indexes that may match)
and each phase union's scan. ``values(target, exclusions, cache_key)`` is the
transaction's ``Variables.values``, ``kept`` the dict of values it keeps by cache key.
``clear()`` forgets the hits and scans when a body arrives (transformations of bytes
stay true).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .prefilter import MEMO_MAX, MEMO_VALUE_MAX
from .prefilter import hits as prefilter_hits

CACHE_MAX = 50000       # entries of each per-transaction cache


class Chains:
    def __init__(self, values, kept=None) -> None:
        self._values = values
        self._kept = kept if kept is not None else {}
        self._tcache: Dict[Tuple[int, bytes], bytes] = {}
        self._steps: Dict[Tuple[object, bytes], bytes] = {}  # (transformation, in) -> out
        self.hits: Dict[int, frozenset] = {}  # prefilter group id -> matching patterns
        self._unions: Dict[object, tuple] = {}  # prefilter.Union -> its scan
        self.union_keys = None  # the targets a union scan reads (None: all of them)
        self.scan_skip = None  # target key -> (record, readers): values clean for all

    def clear(self) -> None:
        if self.hits:
            self.hits.clear()
        if self._unions:
            self._unions.clear()

    def _read(self, target, key):
        got = self._kept.get(key)  # Variables.values's kept values, without its call
        return got if got is not None else self._values(target, (), key)

    # --- transformations ----------------------------------------------------------------
    def transform(self, rule, value: bytes) -> bytes:
        cls = rule.t_class
        if cls is not None and not value.translate(None, cls[0]):
            return value.lower() if cls[1] else value  # no byte the chain reacts to
        cache = self._tcache
        ids = rule.t_ids
        r = cache.get((ids[-1], value))
        if r is not None:
            return r
        v = value
        for pid, fn in zip(ids, rule.t_funcs):
            key = (pid, value)
            r = cache.get(key)
            if r is None:
                if len(cache) > CACHE_MAX:
                    cache.clear()
                r = cache[key] = fn(v)
            v = r
        return v

    def candidates(self, rule, value: bytes) -> List[bytes]:
        """multiMatch: the value and each transformation's output that changed it. Each
        step (transformation, input) is cached: the CRS's multiMatch rules share steps
        (934100 and 934160 both base64-decode every argument); a run of transformations
        the value holds no sensitive byte for is stepped over (``identity.step_runs``)."""
        steps = self._steps
        out = [value]
        v = value
        for table, funcs in rule.t_runs:
            if table is not None and not v.translate(None, table):
                continue  # no byte the run reacts to: it adds no intermediate
            for fn in funcs:
                key = (fn, v)
                nv = steps.get(key)
                if nv is None:
                    if len(steps) > CACHE_MAX:
                        steps.clear()
                    nv = steps[key] = fn(v)
                if nv != v:
                    out.append(nv)
                v = nv
        return out

    # --- prefilter ----------------------------------------------------------------------
    def group_hits(self, group, rule) -> Tuple[frozenset, int]:
        """(``group``'s hits, values run through sets) for ``rule``, one of its members
        (they share the chain)."""
        if group.union is not None:
            return self._union_hits(group, rule)
        if group.text_match is not None:
            found = self._joined_hits(group, rule)
            if found is not None:
                return found
        if group.multi:
            expand = lambda value: self.candidates(rule, value)  # noqa: E731
        elif rule.t_funcs:
            expand = lambda value: self.transform(rule, value)  # noqa: E731
        else:
            expand = None
        return prefilter_hits(group, self._read, expand)

    def _joined_hits(self, group, rule) -> Optional[Tuple[frozenset, int]]:
        """No hit, when the group's multi-line set finds nothing in its values as they
        leave the chain (every changed intermediate for multiMatch) joined by newlines:
        a pattern that matches one of them alone matches there too. None ("maybe"): the
        values must go through the set one by one."""
        out: Dict[bytes, None] = {}
        n = 0
        for t, key in group.targets:
            for _name, value in self._read(t, key):
                n += 1
                if group.multi:
                    for c in self.candidates(rule, value):
                        out[c] = None
                elif rule.t_funcs:
                    out[self.transform(rule, value)] = None
                else:
                    out[value] = None
        if out and group.text_match(b"\n".join(out)):
            return None
        return frozenset(), n

    def _union_hits(self, group, rule) -> Tuple[frozenset, int]:
        """``group``'s hits from its phase's union scan (run once per body), confirmed on
        the group's own values, plus its set run one by one on the values dirty for its
        chain (header values' results remembered by the group)."""
        union = group.union
        work = 0
        scan = self._unions.get(union)
        if scan is None:
            scan = self._unions[union] = union.scan(self._read, self.union_keys,
                                                    self.scan_skip)
            work += scan[2]
        found = scan[0].get(group.id)
        if found:  # the union's "maybe" may come from another group's values: confirm
            h, n = union.confirm(group, self._read, found)
            work += n
        else:
            h = set()
        dirty = scan[1].get(group.id)
        if dirty:
            match = group.raw_match
            memo = group.memo
            for value, header in dirty.items():
                got = memo.get(value) if header else None
                if got is None:
                    if group.multi:
                        got = ()
                        for c in self.candidates(rule, value):
                            got += tuple(match(c) or ())
                    else:
                        got = tuple(match(self.transform(rule, value)) or ())
                    if header and len(value) <= MEMO_VALUE_MAX:
                        if len(memo) >= MEMO_MAX:
                            memo.clear()
                        memo[value] = got
                    work += 1
                if got:
                    h.update(got)
        return frozenset(h), work
