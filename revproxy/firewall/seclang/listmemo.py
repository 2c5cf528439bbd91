"""List records: what the rules left in a phase list did, replayed when their inputs return.

When the atoms chose a phase's list (atoms.py), the rules left in it are the ones
cleanskip cannot drop: the CRS's TX set-up and anomaly checks (folded into ``Delta`` and
``Guarded`` entries, fold.py, guard.py), rules that match on nearly every request and act
through ``ctl`` (901340 forces the body variable, 941010 removes ``REQUEST_FILENAME`` from
the XSS rules), chains whose first link matches every request (920440, 920450, chainmemo.py)
and the rules reading TX. Together they cost most of a repeated request's phase. What they
do is a function of what they read, so a list records, per *inputs*, what the phase did:

- the inputs: the values of every request or response target of every link left in the
  list (a whole collection or scalar as one value: ``chainmemo._identity``), what their
  macros read outside TX, ``MATCHED_VAR(_NAME)`` as the phase starts, the engine mode and
  the signature of the target removals in effect (cleanskip.signature) and the TX
  store's name (``Evaluator.tx_token``: 0 when empty, the serial of the record whose
  replay left it, set by ``run_phase``); the store itself is not hashed but kept in the
  record, and compared (keys and order) when it has no name;
- what is replayed: the TX store at the end (keys and order), every ``ctl`` the phase
  applied, in order (``Ctl.apply`` again: removals, body processor, engine mode ...),
  ``MATCHED_VAR``, ``MATCHED_VAR_NAME``, ``MATCHED_VARS``, the rule last evaluated, the
  link that last failed, the work counted and the pure readers cleared (cleanskip.learn
  credits them to the atoms).

A phase without a cleanskip Plan whose whole list reads nothing but TX and the match
variables (the CRS's phase 5: the reporting rules) has records of the same kind
(``WAF.whole_memos``): their inputs are the TX store, compared, and the match state.

A list qualifies (``ListMemo.build``) when every link in it reads only request or response
data, TX and the match variables (never the time, ids or other writable collections),
its effects are ``setvar`` on TX and ``ctl``, and its macros read nothing else either.
A phase is recorded only when it was *quiet*: nothing logged, no interruption or
``allow``, no switch to the unfolded lists, the other collections untouched, the work
limit not reached; a noisy outcome marks the inputs as always evaluated. As chainmemo.py:
a record is made on the second sighting of its inputs (the first keeps the inputs alone),
not used while a ``ctl:ruleRemoveById``/``ByTag``/``ByMsg`` of the transaction is in
effect (the list would not be the one evaluated). Bounds: inputs over ``KEY_MAX`` bytes
(``MATCHED_VAR`` included) are never recorded; a phase's lists together hold at most
``MEMO_MAX`` inputs and ``BYTES_MAX`` bytes (a record counts the TX names and values it
holds; all emptied when either is reached), so new inputs on every request cost one small
entry. Records belong to a loaded WAF.
"""

from __future__ import annotations

from itertools import count
from typing import Dict, Optional

from .actions import SetVar
from .atomkinds import LINE_SCALARS
from .ctl import Ctl
from .macros import _LITERAL, _OTHER, _STORE, compile_macro
from .purity import PURE_OPS
from .rules import CACHED
from .scalars import WRITABLE
from .variables import _COLLECTION_NAMES

ENABLED = True  # tests load rule sets with and without it
KEY_MAX = 8192
MEMO_MAX = 1024
BYTES_MAX = 2 * 1024 * 1024
_NOISY = object()  # inputs whose phase logged or stopped: always evaluated
_ABSENT = object()
_SERIALS = count(1)  # a record's serial names the TX store its replay leaves (0: empty)

# scalars fixed by the request and what the body's intake found (never the time, the
# duration or the request id, which differ on every request)
_NOT_INPUTS = frozenset(("UNIQUE_ID", "DURATION", "TIME_EPOCH", "TIME", "TIME_DAY",
                         "TIME_HOUR", "TIME_MIN", "TIME_MON", "TIME_SEC", "TIME_WDAY",
                         "TIME_YEAR"))
_MATCH_STATE = frozenset(("MATCHED_VAR", "MATCHED_VAR_NAME", "MATCHED_VARS",
                          "MATCHED_VARS_NAMES", "RULE"))


class Budget:
    """The bounds shared by the ListMemos of one phase plan."""

    __slots__ = ("entries", "bytes", "memos")

    def __init__(self) -> None:
        self.entries = 0
        self.bytes = 0
        self.memos: list = []

    def clear(self) -> None:
        for m in self.memos:
            m.memo.clear()
        self.entries = self.bytes = 0


class Whole:
    """What ``ListMemo.run`` reads of a cleanskip.Start, for a phase's whole list (one
    without a Plan, ``WAF.whole_memos``)."""

    __slots__ = ("rules", "markers", "sig", "cleared")

    def __init__(self, rules: list, markers: dict, sig: tuple) -> None:
        self.rules, self.markers, self.sig, self.cleared = rules, markers, sig, 0


class _Record:
    """What a quiet phase did from the TX store ``tx_start``: the store's changes as the
    fewest operations that give the end state in its order (``pops``: the keys removed,
    moved or re-inserted; ``in_place``: new values of keys that kept their place;
    ``appends``: the keys added at the end, in order), the ctls, the match state."""

    __slots__ = ("tx_start", "keys_start", "pops", "in_place", "appends", "ctls", "state",
                 "cleared", "size", "serial")

    def __init__(self, tx_start: dict, tx_end: dict, ctls: tuple, ev, work: int,
                 cleared: int) -> None:
        self.tx_start = tx_start
        self.keys_start = tuple(tx_start)
        position = {k: i for i, k in enumerate(self.keys_start)}
        end = list(tx_end.items())
        kept, last = 0, -1  # the end's first keys that are the start's, in its order
        for k, _v in end:
            p = position.get(k)
            if p is None or p <= last:
                break
            kept, last = kept + 1, p
        stay = {k for k, _v in end[:kept]}
        self.pops = tuple(k for k in self.keys_start if k not in stay)
        self.in_place = {k: v for k, v in end[:kept] if tx_start[k] != v}
        self.appends = dict(end[kept:])
        self.ctls = ctls
        v = ev.vars
        self.state = (v.matched_var, v.matched_var_name, tuple(v.matched), v.rule,
                      ev.failed, work)
        self.cleared = cleared
        self.serial = next(_SERIALS)
        self.size = 256 + _bytes(tx_start) + _bytes(self.in_place) + _bytes(self.appends) \
            + len(v.matched_var) + len(v.matched_var_name) + sum(
                len(n) + len(x) for n, x in v.matched)


class ListMemo:
    """The records of one phase list (``build`` when the list qualifies)."""

    __slots__ = ("reads", "budget", "memo")

    def __init__(self, reads: tuple, budget: Budget) -> None:
        self.reads = reads  # ev -> one input each
        self.budget = budget
        self.memo: Dict[tuple, object] = {}
        budget.memos.append(self)

    @staticmethod
    def build(rules: list, budget: Budget) -> Optional["ListMemo"]:
        """The ListMemo of ``rules`` (a phase list), or None when it does not qualify."""
        reads: Dict[object, object] = {}
        for r in rules:
            if r.marker is not None or r.delta is not None:
                continue  # (Delta, Guarded: TX alone)
            for link in r.chain_rules():
                if not _link_reads(link, reads):
                    return None
        return ListMemo(tuple(reads.values()), budget)

    def key(self, ev, sig: tuple, tok):
        """The inputs of the phase on ``ev`` (an Evaluator) with the removals' signature
        ``sig`` and the TX store's name ``tok`` (``run_phase``: 0 when empty, the serial
        of the record whose replay left it, a lone Delta's (name, id) after it, None when
        unknown: a phase evaluated it); None while a ``ctl:ruleRemoveById``/``ByTag``/
        ``ByMsg`` is in effect (the list would not be the one evaluated)."""
        if ev._removed_ids or ev.removed_tags or ev.removed_msgs:
            return None
        v = ev.vars
        key = (sig, ev.engine_mode, tok, v.matched_var, v.matched_var_name)
        reads = self.reads
        if reads:
            key += tuple([read(ev) for read in reads])
        return key

    def apply(self, ev, got: "_Record", tok) -> bool:
        """Replay ``got`` (the record of the phase's inputs) on ``ev``; False when it does
        not apply (another TX store than it started from, or the work limit)."""
        tx = ev.stores["tx"]
        # (a known token names the store the record started from: the same key)
        if tok is None and (tx != got.tx_start or tuple(tx) != got.keys_start) or \
                ev.work + got.state[5] > ev.waf.work_limit:
            return False
        for k in got.pops:
            del tx[k]
        if got.in_place:
            tx.update(got.in_place)
        if got.appends:
            tx.update(got.appends)
        for c in got.ctls:
            c.apply(ev)
        v = ev.vars
        v.matched_var, v.matched_var_name, matched, v.rule, ev.failed, work = got.state
        v.matched = list(matched) if matched else []
        ev.work += work
        ev.tx_token = got.serial
        return True

    def run(self, ev, phase: int, logging: bool, start, loop, tok, key=False):
        """The phase on ``ev`` (an Evaluator) through the records, or ``loop`` (phaseloop's
        ``_loop``) evaluating it; ``key``: the inputs (``key``), if computed already."""
        if key is False:
            key = self.key(ev, start.sig, tok)
        if key is None:
            return loop(ev, phase, logging, start.rules, start.markers, start)
        got = self.memo.get(key, _ABSENT)
        if got.__class__ is _Record:
            if self.apply(ev, got, tok):
                start.cleared |= got.cleared
                return None
            return self._record(ev, phase, logging, start, loop, key)
        if got is _ABSENT:  # the first sighting: the inputs alone
            self._store(key, None, 0)
        elif got is None:  # the second: recorded now
            return self._record(ev, phase, logging, start, loop, key)
        return loop(ev, phase, logging, start.rules, start.markers, start)

    def _record(self, ev, phase: int, logging: bool, start, loop, key: tuple):
        tx = ev.stores["tx"]
        tx_start = dict(tx)
        stores = ev.stores
        others = [n for n, s in stores.items() if n != "tx" and s]
        matches, allowed, work = len(ev.matches), ev.allowed, ev.work
        cleared = start.cleared
        log: list = []
        ev._ctl_log = log
        try:
            result = loop(ev, phase, logging, start.rules, start.markers, start)
        finally:
            ev._ctl_log = None
        quiet = result is None and ev.interruption is None and \
            len(ev.matches) == matches and ev.allowed == allowed and not ev.unfold and \
            not ev.unfolded and ev.engine_mode != "Off" and not others and \
            not any(s for n, s in stores.items() if n != "tx")
        if quiet:
            record = _Record(tx_start, dict(tx), tuple(log), ev, ev.work - work,
                             start.cleared & ~cleared)
            self._store(key, record, record.size)
        else:
            self._store(key, _NOISY, 0)
        return result

    def _store(self, key: tuple, record, size: int) -> None:
        from . import chainmemo  # (not at import: chainmemo imports the evaluator)
        memo, budget = self.memo, self.budget
        old = memo.get(key, _ABSENT)
        if old is _ABSENT:
            ksize = chainmemo._size(key[3:]) + 64
            if ksize > KEY_MAX:
                return
            size += ksize
            budget.entries += 1
        elif old.__class__ is _Record:
            size -= old.size
        if budget.entries > MEMO_MAX or budget.bytes + size > BYTES_MAX:
            budget.clear()
            size = chainmemo._size(key[3:]) + 64 + (
                record.size if record.__class__ is _Record else 0)
            budget.entries = 1
        budget.bytes += size
        memo[key] = record


def _link_reads(link, reads: dict) -> bool:
    """Add what ``link`` reads to ``reads`` (tag -> ev -> input); False when something it
    reads or does cannot be an input or replayed (module doc)."""
    from . import chainmemo  # (not at import: chainmemo imports the evaluator)
    if not link.always and link.op_name.lower() not in PURE_OPS:
        return False  # (an operator reading more than its value and argument)
    for t in link.targets:
        name = t.name
        if name == "TX":
            continue
        if name in WRITABLE or name in _NOT_INPUTS:
            return False
        if name in _MATCH_STATE:
            if name in ("MATCHED_VARS", "MATCHED_VARS_NAMES"):
                reads.setdefault("matched", lambda ev: tuple(ev.vars.matched))
            continue  # (MATCHED_VAR(_NAME): in every key; RULE: the rule itself)
        if not t.count and name in LINE_SCALARS:  # functions of the request line
            reads.setdefault("line", _line)
            continue
        if not t.count and name in _STATE_SCALARS:  # (an exclusion only takes it away)
            reads.setdefault(("scalar", name), lambda ev, name=name: ev.vars.scalar(name))
            continue
        got = chainmemo._identity(t) if not t.count else None
        if got is not None:
            reads.setdefault(got[0], got[1])
            continue
        if name not in _COLLECTION_NAMES and name != "XML" and \
                name not in _STATE_SCALARS:
            return False
        plan = [p for p in link.plan if p[0] is t]
        if not plan:
            return False
        _t, ckey, kind = plan[0]
        excl = link.exclusions
        if kind is CACHED:
            reads.setdefault(("values", ckey), lambda ev, t=t, excl=excl, ckey=ckey: tuple(
                ev.vars.values(t, excl, ckey)))
        else:
            reads.setdefault(("live", ckey), lambda ev, t=t, excl=excl: tuple(
                ev.vars.values(t, excl, None)))
    macros = [link.op_arg]
    for e in link.effects:
        if e.__class__ is SetVar:
            if e.collection != "tx":
                return False
            macros += [e.name.text, e.value.text]
        elif e.__class__ is not Ctl:
            return False
    for text in macros:
        for kind, a, b in compile_macro(text).steps:
            if kind is _LITERAL or kind is _STORE and a == "tx":
                continue
            if kind is _OTHER and a in _MATCH_STATE:
                if a in ("MATCHED_VARS", "MATCHED_VARS_NAMES"):
                    reads.setdefault("matched", lambda ev: tuple(ev.vars.matched))
                continue
            if kind is _OTHER and (a in _COLLECTION_NAMES or a in _STATE_SCALARS):
                reads.setdefault(("macro", a, b),
                                 lambda ev, a=a, b=b: ev.vars.macro_value(a, b, ev))
                continue
            return False
    return True


def _bytes(store: dict) -> int:
    """What a copy of a TX store's items holds (64 bytes an entry, names, values)."""
    return sum(64 + len(k) + len(v) for k, v in store.items())


def _line(ev) -> tuple:
    view = ev.vars.view
    return view.method, view.uri_raw, view.protocol


def _state_scalars() -> frozenset:
    from .scalars import SCALARS
    return frozenset(SCALARS) - _NOT_INPUTS - _MATCH_STATE


_STATE_SCALARS = _state_scalars()
