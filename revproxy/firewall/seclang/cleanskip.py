"""Phase lists without the pure rules whose every value an earlier request showed clean.

A rule is *pure* here when its first link is (purity.py): whether it matches one value is
a function of the value and its key alone, and so is whether the chain can start.

A *source* is what emptyskip.py calls one: a collection, one key of it, or a scalar (or
a count, purity.py). When
a phase ran on a request and every pure rule of the phase reading a source had its first
link evaluated over the request's values without a match (or the prefilter proved it
could not match), those values are recorded as *clean* for that source: a (key, value)
pair of a whole collection, a value of a keyed source or of a scalar. On a later request
whose values of a source are all recorded (or none), the source is clean; the pure rules
reading only clean or empty sources cannot match and have no effect, and the phase runs
its list without them (as emptyskip drops the rules reading only empty sources; a clean
source also makes the prefilter scans for those rules' groups unnecessary).

The target removals (``ctl:ruleRemoveTarget*``) in effect when the phase starts decide
which values each rule reads (CRS 941010 removes ``REQUEST_FILENAME`` from the XSS rules
on most requests), so values are recorded per *signature* of those removals and used only
by a phase starting with the same ones. A target removal added during the phase makes
the rules it concerns count as not evaluated. Nothing is recorded from a phase that ran
the unfolded lists (fold.py). A ``ctl:ruleRemove*``
only means the removed rule was not evaluated, so its sources are not recorded. A recorded
value can only make a rule that would not match drop out: what a later request removes
during the phase only takes values or rules away.

Bounds: values longer than ``VALUE_MAX`` bytes (the default
``request_body_no_files_limit``) are never recorded (their source stays unclean), a
source's record holds at most ``MEMO_MAX`` values (it is emptied when full) and a phase's
records together at most ``PLAN_MAX`` values and ``PLAN_BYTES`` bytes of names and values
(all are emptied then), so a client sending new values on every request costs a dict
lookup per value and cannot grow memory beyond a few MiB per phase. Long values matter:
a form's ``REQUEST_BODY`` is read by the CRS's 920260 and 931110, which otherwise stay in
every POST's list and start its union scan. Records belong to a loaded WAF: a reload starts
empty.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from . import atoms as atoms_mod, delta, emptyskip, listmemo
from .emptyskip import _COUNT, _KEYED, _WHOLE, _XML

ENABLED = True  # tests load rule sets with and without it
VALUE_MAX = 131072  # = the default [firewall] request_body_no_files_limit
MEMO_MAX = 512
CACHE_MAX = 256  # lists kept per phase, one per (empty sources, clean sources) pair
SIGNATURES_MAX = 16  # sets of target removals with records kept per phase
PLAN_MAX = 8192  # values recorded per phase over all sources and signatures
PLAN_BYTES = 4 * 1024 * 1024  # bytes of (name, value) recorded per phase, likewise

def signature(removals: list) -> tuple:
    """What tells apart the sets of target removals ``removals``
    (``Evaluator._removed_targets``: (how, which, targets) each)."""
    return tuple((how, str(which), tuple(t.text for t in targets))
                 for how, which, targets in removals)


class Start:
    """What ``Plan.start`` found on one transaction: the list to run, and for learning the
    sources some of whose readers were not known clean, with their values."""

    __slots__ = ("rules", "markers", "keys", "slot", "pending", "cleared", "memo",
                 "removals", "known", "scan_skip", "sig", "drop", "hits", "learns")

    def __init__(self, listed: tuple, pending: List[Tuple[int, list, int]], memo: List[dict],
                 removals: int, known: Optional[list], scan_skip: Optional[tuple],
                 sig: tuple, drop: int, hits: Optional[tuple], learns: bool) -> None:
        # keys: targets its groups read; slot: [the list's listmemo.ListMemo, or None
        # before its first use, or False when it does not qualify]
        self.rules, self.markers, self.keys, self.slot = listed
        self.sig = sig  # the signature of the removals (the records' key)
        self.drop = drop  # the pure readers left out as clean (or reading only empties)
        self.hits = hits  # the atoms' record dicts when they chose the list, else None
        self.learns = learns  # Plan.learn has something to do after the phase
        # [(source index, its values, the readers known clean for all of them)]
        self.pending = pending
        self.memo = memo  # the records of the removals' signature
        self.removals = removals  # how many target removals were in effect
        self.cleared = 0  # the phase loop's mask of the pure rules it cleared
        # per source index: its record when it holds values (a rule skips the values
        # known clean for it), else None; None when no source has one
        self.known = known
        # (known, readers, target key -> source index) for the union scan, which leaves
        # out the values whose record holds every reader of their source
        self.scan_skip = scan_skip


class Plan(emptyskip.Plan):
    """emptyskip's Plan plus the pure links (``pure``: list index -> ``(cbit, mask of the
    sources it reads)`` for each pure link of the rule there), each source's readers (a
    mask of the pure links' ``cbit``) and records: per source, value -> the mask of the
    readers known not to match it."""

    def __init__(self, rules: list, sources: list, needs: Dict[int, tuple],
                 pure: Dict[int, tuple], reps: list, keyidx: Dict[str, int]) -> None:
        super().__init__(rules, sources, needs)
        self.pure = pure
        self.reps = reps  # per source: (a target reading it, its cache key), None for XML
        # cache key (no exclusion) of each pure target that no other prefilter link
        # reads -> its source (the union scan's records, Start.scan_skip)
        self.keyidx = keyidx
        readers = [0] * len(self.sources)
        self.all_bits = 0
        for links in pure.values():
            for cbit, m in links:
                self.all_bits |= cbit
                j = 0
                while m:
                    if m & 1:
                        readers[j] |= cbit
                    m >>= 1
                    j += 1
        self.readers = readers
        # what start() checks per source: (index, kind, name, key, a target reading it,
        # its cache key, readers, bit); XML has no target (its values are never recorded)
        self.checks = tuple(
            (i, kind, name, key) + (reps[i] if reps[i] is not None else (None, ""))
            + (readers[i], 1 << i) for i, (kind, name, key) in enumerate(self.sources))
        self.memos: Dict[tuple, List[dict]] = {}  # removals' signature -> records
        self.atoms: Optional[atoms_mod.Atoms] = None  # the atoms' tier, if the Plan has one
        self.atom_recs: Dict[tuple, tuple] = {}  # removals' signature -> atoms' records
        # header list -> what their atoms gave under a removals' signature (Atoms.start),
        # valid while the atoms' records are at the version noted (bumped by any change)
        self.atom_heads: Dict[tuple, tuple] = {}
        self.atoms_version = 0
        self.entries = 0  # values recorded over all of them (at most PLAN_MAX)
        self.bytes = 0  # their names' and values' lengths (at most PLAN_BYTES)
        self._pairs: Dict[Tuple[int, int], tuple] = {}
        self.list_records = False  # listmemo.py's records (cleanplan.plan: shipped operators)
        self.list_budget = listmemo.Budget()  # the bounds of the lists' records

    def chosen(self, v, sig: tuple = ()) -> Optional[tuple]:
        """(the list's entry of ``_pair``, the pure readers left out, the atoms' record
        dicts) when every atom of the transaction whose ``Variables`` is ``v`` is recorded
        under the removals' signature ``sig`` (the atoms choose the list), else None."""
        atoms = self.atoms
        if atoms is None:
            return None
        recs = self.atom_recs.get(sig)
        if recs is None:
            return None
        got = atoms.start(v, recs, self.atom_heads, self.atoms_version, sig)
        if got is None:
            return None
        empty, drop, hits = got
        return self._pair(empty, drop), drop, hits

    def start(self, v, sig: tuple = (), removals: int = 0, chosen=False) -> Start:
        """The list for the transaction whose ``Variables`` is ``v``; ``sig`` is the
        signature of the ``removals`` target removals in effect (``signature``);
        ``chosen``: what ``chosen`` gave, if asked already."""
        memo = self.memos.get(sig)
        if memo is None:
            if len(self.memos) >= SIGNATURES_MAX:
                self.forget()
                self.memos.clear()
                self.atom_recs.clear()
                self.atom_heads.clear()
            memo = self.memos[sig] = [{} for _ in self.sources]
        atoms = self.atoms
        if atoms is not None:  # every atom recorded: the list from their records
            if chosen is False:
                chosen = self.chosen(v, sig)
            if chosen is not None:
                listed, drop, hits = chosen
                return Start(listed, [], memo, removals, None, None, sig, drop, hits, True)
        empty = 0
        drop = self.all_bits  # the pure rules none of whose values may match
        pending: List[Tuple[int, list, int]] = []
        kept = v._vcache
        colls, index = v._colls, v._index
        filt: Optional[list] = None
        scalar = v.scalar
        for i, kind, name, key, t, ck, mine, bit in self.checks:
            vals = kept.get(ck)  # [(name, value)], as the rules read them
            if vals is None:  # what v.values(t, (), ck) returns (and keeps), inlined:
                # t is the plain collection, one key of it or a scalar (_representative)
                if kind == _KEYED:
                    got = index.get(name)
                    hits = (got if got is not None else v._indexed(name)).get(key)
                    if not hits:
                        empty |= bit
                        continue
                    vals = kept[ck] = [(e[1], e[2]) for e in hits]
                elif kind == _WHOLE:
                    got = colls.get(name)
                    entries = got if got is not None else v.collection(name)
                    if not entries:
                        empty |= bit
                        continue
                    vals = kept[ck] = [(e[1], e[2]) for e in entries]
                elif kind == _XML:
                    if v.body.xml is None:
                        empty |= bit
                    else:
                        drop &= ~mine  # never recorded
                    continue
                elif kind == _COUNT:  # one value, never empty
                    vals = v.values(t, (), ck)
                else:  # a scalar
                    got = scalar(name)
                    if got is None:
                        empty |= bit
                        continue
                    vals = kept[ck] = [(name, got)]
            if not vals:
                empty |= bit
                continue
            if not mine:
                continue
            seen = memo[i]
            known = mine
            for x in vals:
                known &= seen.get(x, 0)
                if not known:
                    break
            if known != mine:
                drop &= ~mine | known
                pending.append((i, vals, known))
            if seen:
                if filt is None:
                    filt = [None] * len(memo)
                filt[i] = seen
        skip = None if filt is None else (filt, self.readers, self.keyidx)
        return Start(self._pair(empty, drop), pending, memo, removals, filt, skip, sig, drop,
                     None, bool(pending) or atoms is not None)

    def _pair(self, empty: int, drop: int) -> tuple:
        pair = (empty, drop)
        got = self._pairs.get(pair)
        if got is None:
            if len(self._pairs) >= CACHE_MAX:
                self._pairs.clear()
                self.list_budget = listmemo.Budget()  # (the lists' records go with them)
            got = self._pairs[pair] = self._build_pair(empty, drop)
        return got

    def lists(self, v) -> Tuple[list, Dict[str, int]]:
        got = self.start(v)
        return got.rules, got.markers

    def _build_pair(self, empty: int, drop: int) -> tuple:
        needs, pure = self.needs, self.pure
        out = []
        for i, r in enumerate(self.rules):
            m = needs.get(i)
            if m is not None and emptyskip.empty_link(m, empty):
                continue
            links = pure.get(i)
            if links is not None and _fails(links, empty, drop):
                continue
            out.append(r)
        out = delta.merge_adjacent(out, self._merged)
        markers: Dict[str, int] = {}
        keys = set()  # what the rules left that the prefilter may skip read
        for i, r in enumerate(out):
            if r.marker is not None:
                markers.setdefault(r.marker, i)
            elif r.delta is None:
                for link in r.chain_rules():
                    if link.pre is not None:  # the cache keys of prefilter.Group.targets
                        keys.update(t.text + "|" for t in link.targets)
        return out, markers, frozenset(keys), [None]

    def forget(self) -> None:
        """Empty every record of every signature (the phase's total bound was reached)."""
        for memo in self.memos.values():
            for record in memo:
                record.clear()
        for recs in self.atom_recs.values():
            for record in recs:
                record.clear()
        self.atoms_version += 1
        self.entries = self.bytes = 0

    def learn(self, start: Start, ev) -> None:
        """After the phase ran on the Evaluator ``ev``: record, for each value of a pending
        source, the readers that were cleared (``start.cleared``, a mask of ``cbit``: first
        link evaluated over all its values without a match, or proved not to match by the
        prefilter)."""
        if ev.unfolded or start.hits is not None and not start.cleared & ~start.drop:
            return  # (the atoms chose the list and no reader outside it ran clean)
        readers, memo = self.readers, start.memo
        cleared = start.cleared
        for facts in ev._removal_facts[start.removals:]:
            cleared &= ~facts.cbits  # its links may have read fewer values than they read
        if start.hits is not None:  # the atoms chose the list: credit them what ran clean
            add = cleared & ~start.drop
            if add:
                self.atoms.credit(start.hits, ev.vars, add)
                self.atoms_version += 1
            return
        for i, vals, known in start.pending:
            add = readers[i] & cleared
            if not add & ~known:  # (every value's record holds these readers already)
                continue
            seen = memo[i]
            for x in vals:
                size = len(x[0]) + len(x[1])
                if size > VALUE_MAX:
                    continue
                old = seen.get(x)
                if old is None:
                    if self.entries >= PLAN_MAX or self.bytes + size > PLAN_BYTES:
                        self.forget()
                    if len(seen) >= MEMO_MAX:
                        self.entries -= len(seen)
                        self.bytes -= sum(len(k[0]) + len(k[1]) for k in seen)
                        seen.clear()
                    seen[x] = add
                    self.entries += 1
                    self.bytes += size
                elif old | add != old:
                    seen[x] = old | add
        if self.atoms is not None:
            recs = self.atom_recs.get(start.sig)
            if recs is None:
                recs = self.atom_recs[start.sig] = ({}, {}, {})
            self.atoms.learn(self, recs, ev.vars, cleared | start.drop,
                             (VALUE_MAX, MEMO_MAX, PLAN_MAX, PLAN_BYTES))
            self.atoms_version += 1

def _fails(links: tuple, empty: int, drop: int) -> bool:
    """Whether one of a rule's pure links (``Plan.pure``) cannot match: every value of its
    sources known clean for it (its bit in ``drop``), or all its sources empty."""
    for cbit, m in links:
        if cbit & drop or not m & ~empty:
            return True
    return False
