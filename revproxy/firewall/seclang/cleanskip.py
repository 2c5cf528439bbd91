"""Phase lists without the pure rules whose every value an earlier request showed clean.

A rule is *pure* here when its first link reads only request or response collections
(``ARGS``, ``REQUEST_HEADERS:User-Agent``, ``REQUEST_COOKIES_NAMES`` ...; no ``&`` count,
no TX or other writable collection, no ``MATCHED_*``), ``XML:`` (whose values are never
recorded: it is clean only when no document was parsed) or request-line and
response scalars that cannot change during a phase (``REQUEST_FILENAME``,
``REQUEST_LINE``, ``REQUEST_BODY``, ``RESPONSE_STATUS`` ...), and runs a shipped operator
whose argument holds no macro. Whether such a link matches one value is then a function of
the value and its key alone: transformations are functions, the operator reads nothing but
its argument, and ``!`` exclusions are fixed at load. So is whether the chain can start.

A *source* is what emptyskip.py calls one: a collection, one key of it, or a scalar. When
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

Bounds: values longer than ``VALUE_MAX`` bytes are never recorded (their source stays
unclean), and a source's record holds at most ``MEMO_MAX`` values (it is emptied when
full), so a client sending new values on every request costs a set lookup per value and
cannot grow memory. Records belong to a loaded WAF: a reload starts empty.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from . import emptyskip
from .emptyskip import _KEYED, _SCALAR, _WHOLE, _XML
from .variables import _COLLECTION_NAMES

ENABLED = True  # tests load rule sets with and without it
VALUE_MAX = 256
MEMO_MAX = 512
CACHE_MAX = 256  # lists kept per phase, one per (empty sources, clean sources) pair
SIGNATURES_MAX = 16  # sets of target removals with records kept per phase

# operators whose outcome depends only on the value and their argument (shipped ones)
_PURE_OPS = frozenset((
    "rx", "pm", "pmf", "pmfromfile", "streq", "contains", "containsword", "beginswith",
    "endswith", "within", "strmatch", "eq", "ge", "gt", "le", "lt", "detectsqli",
    "detectxss", "validatebyterange", "validateurlencoding", "validateutf8encoding",
    "ipmatch", "ipmatchfromfile", "ipmatchf", "unconditionalmatch", "nomatch"))

# scalars that cannot change while a phase runs
PURE_SCALARS = frozenset((
    "REQUEST_METHOD", "REQUEST_PROTOCOL", "REQUEST_URI_RAW", "REQUEST_URI",
    "REQUEST_FILENAME", "REQUEST_BASENAME", "QUERY_STRING", "REQUEST_LINE", "PATH_INFO",
    "REMOTE_ADDR", "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "REQUEST_BODY",
    "RESPONSE_BODY", "RESPONSE_STATUS", "RESPONSE_PROTOCOL", "STATUS_LINE",
    "RESPONSE_CONTENT_TYPE", "RESPONSE_CONTENT_LENGTH"))


def pure_sources(rule, default_ops: bool) -> Optional[List[Tuple[int, str, Optional[bytes]]]]:
    """The sources of ``rule``'s first link when the rule is pure (module doc), else None."""
    if not default_ops or rule.marker is not None or rule.delta is not None \
            or rule.always or not rule.targets or rule.fast is not None:
        return None
    if rule.op_name.lower() not in _PURE_OPS or "%{" in rule.op_arg:
        return None
    out = []
    for t in rule.targets:
        if t.count:
            return None
        if t.name == "XML":  # clean only when no document was parsed
            out.append((_XML, "XML", None))
        elif t.name in PURE_SCALARS:
            out.append((_SCALAR, t.name, None))
        elif t.name not in _COLLECTION_NAMES:
            return None
        elif t.key is not None and t.regex is None:
            out.append((_KEYED, t.name, t.key_bytes))
        else:
            out.append((_WHOLE, t.name, None))
    return out


class Start:
    """What ``Plan.start`` found on one transaction: the list to run, and for learning the
    sources some of whose readers were not known clean, with their values."""

    __slots__ = ("rules", "markers", "keys", "pending", "cleared", "memo", "removals")

    def __init__(self, listed: tuple, pending: List[Tuple[int, list]], memo: List[dict],
                 removals: int) -> None:
        self.rules, self.markers, self.keys = listed  # keys: targets its groups read
        self.pending = pending  # [(source index, its values)]
        self.memo = memo  # the records of the removals' signature
        self.removals = removals  # how many target removals were in effect
        self.cleared = 0  # the phase loop's mask of the pure rules it cleared


class Plan(emptyskip.Plan):
    """emptyskip's Plan plus the pure rules (``pure``: list index -> mask of the sources
    they read), each source's readers (a mask of the pure rules' ``cbit``) and records:
    per source, value -> the mask of the readers known not to match it."""

    def __init__(self, rules: list, sources: list, needs: Dict[int, int],
                 pure: Dict[int, int]) -> None:
        super().__init__(rules, sources, needs)
        self.pure = pure
        readers = [0] * len(self.sources)
        for i, m in pure.items():
            j = 0
            while m:
                if m & 1:
                    readers[j] |= rules[i].cbit
                m >>= 1
                j += 1
        self.readers = readers
        self.all_bits = 0
        for i in pure:
            self.all_bits |= rules[i].cbit
        self.memos: Dict[tuple, List[dict]] = {}  # removals' signature -> records
        self._pairs: Dict[Tuple[int, int], Tuple[list, Dict[str, int], frozenset]] = {}

    def start(self, v, removals: list = ()) -> Start:
        """The list for the transaction whose ``Variables`` is ``v`` and whose target
        removals in effect are ``removals`` (``Evaluator._removed_targets``)."""
        sig = tuple((how, str(which), tuple(t.text for t in targets))
                    for how, which, targets in removals) if removals else ()
        memo = self.memos.get(sig)
        if memo is None:
            if len(self.memos) >= SIGNATURES_MAX:
                self.memos.clear()
            memo = self.memos[sig] = [{} for _ in self.sources]
        empty = 0
        drop = self.all_bits  # the pure rules none of whose values may match
        bit = 1
        pending: List[Tuple[int, list]] = []
        readers = self.readers
        for i, (kind, name, key) in enumerate(self.sources):
            if kind == _KEYED:
                got = v._indexed(name).get(key)
                vals = [e[2] for e in got] if got else None
            elif kind == _WHOLE:
                got = v.collection(name)
                vals = [(e[0], e[2]) for e in got] if got else None
            elif kind == _XML:
                vals = None if v.body.xml is None else False
            else:
                got = v.scalar(name)
                vals = None if got is None else [got]
            if vals is None:
                empty |= bit
            else:
                mine = readers[i]
                if mine:
                    if vals is False:
                        drop &= ~mine
                    else:
                        known = mine
                        seen = memo[i]
                        for x in vals:
                            known &= seen.get(x, 0)
                            if not known:
                                break
                        if known != mine:
                            drop &= ~mine | known
                            pending.append((i, vals))
            bit <<= 1
        pair = (empty, drop)
        got = self._pairs.get(pair)
        if got is None:
            if len(self._pairs) >= CACHE_MAX:
                self._pairs.clear()
            got = self._pairs[pair] = self._build_pair(empty, drop)
        return Start(got, pending, memo, len(removals))

    def lists(self, v) -> Tuple[list, Dict[str, int]]:
        got = self.start(v)
        return got.rules, got.markers

    def _build_pair(self, empty: int, drop: int) -> Tuple[list, Dict[str, int], frozenset]:
        needs, pure = self.needs, self.pure
        out = []
        for i, r in enumerate(self.rules):
            m = needs.get(i)
            if m is not None and not m & ~empty:
                continue
            m = pure.get(i)
            if m is not None and (r.cbit & drop or not m & ~empty):
                continue
            out.append(r)
        markers: Dict[str, int] = {}
        keys = set()  # what the rules left that the prefilter may skip read
        for i, r in enumerate(out):
            if r.marker is not None:
                markers.setdefault(r.marker, i)
            elif r.delta is None:
                for link in r.chain_rules():
                    if link.pre is not None:  # the cache keys of prefilter.Group.targets
                        keys.update(t.text + "|" for t in link.targets)
        return out, markers, frozenset(keys)

    def learn(self, start: Start, ev) -> None:
        """After the phase ran on the Evaluator ``ev``: record, for each value of a pending
        source, the readers that were cleared (``start.cleared``, a mask of ``cbit``: first
        link evaluated over all its values without a match, or proved not to match by the
        prefilter)."""
        if ev.unfolded:
            return
        readers, memo = self.readers, start.memo
        cleared = start.cleared
        for how, which, _targets in ev._removed_targets[start.removals:]:
            for link in ev.waf.links_removed_by(how, which):
                cleared &= ~link.cbit  # it may have read fewer values than it reads
        for i, vals in start.pending:
            add = readers[i] & cleared
            if not add:
                continue
            seen = memo[i]
            for x in vals:
                if len(x) > VALUE_MAX if x.__class__ is bytes \
                        else len(x[0]) + len(x[1]) > VALUE_MAX:
                    continue
                old = seen.get(x)
                if old is None:
                    if len(seen) >= MEMO_MAX:
                        seen.clear()
                    seen[x] = add
                elif old | add != old:
                    seen[x] = old | add


def plan(rules: list, default_ops: bool) -> Optional[Plan]:
    """The Plan of a phase list, or None (nothing to skip, or a counted ``skip:N``)."""
    if any(r.skip for r in rules if r.marker is None and r.delta is None):
        return None
    index: Dict[tuple, int] = {}
    needs: Dict[int, int] = {}
    pure: Dict[int, int] = {}
    cbit = 1
    for i, r in enumerate(rules):
        got = emptyskip._sources(r) if emptyskip.ENABLED else None
        if got is not None:
            m = 0
            for s in got:
                m |= 1 << index.setdefault(s, len(index))
            needs[i] = m
        got = pure_sources(r, default_ops)
        if got is not None:
            m = 0
            for s in got:
                m |= 1 << index.setdefault(s, len(index))
            pure[i] = m
            r.cbit = cbit
            cbit <<= 1
    if not needs and not pure:
        return None
    return Plan(rules, sorted(index, key=index.get), needs, pure)
