"""Folding the rules whose outcome is the same for every request, once at load.

A benign GET visits about 170 TX-only rules in the CRS: the paranoia-level gates
(``TX:DETECTION_PARANOIA_LEVEL "@lt 2" ... skipAfter:END-...``), the setup defaults
(``&TX:blocking_paranoia_level "@eq 0" ... setvar``) and the ``SecAction``s that write
constants. Their inputs are TX variables that only configuration rules set, to the same
values for every request, so their outcome is known before any request arrives.

``fold(waf)`` walks phases 1 to 4 in order with the TX state every request has at each
position: each variable either known (a value, or known to be absent) or unknown (some
request-dependent rule may have written it). A rule is *folded* when it is pure (every
target ``TX:key`` or ``&TX:key``, a shipped deterministic operator whose argument reads only
known TX variables, effects that are only ``setvar`` on TX with a constant name and values
from TX, MATCHED_VAR or the rule itself, no capture, no prefilter group), reads only known
variables and, when it matches, neither logs nor disrupts. It is evaluated here, on a real
``Evaluator`` whose TX store is the known state; its writes become known values; when it
matches with ``skipAfter`` the rules it skips are dropped (dead for every request). Runs
of folded rules are replaced by one ``Delta`` that sets their final values (and
MATCHED_VAR) in the transaction's TX store, split at every marker, since a skip from
elsewhere may land there.

A rule that does not fold whose first link's test (targets and operator: TX keys only, a
pure operator, an argument reading only TX) reads only known variables and fails on
them is dead for every request: its chain stops there with nothing done, whatever its
later links or first-link actions read. It is left out of the list, in no ``Delta`` (one
would split the runs guard.py takes as one update); a ``ctl:ruleRemove*`` naming it
changes nothing (a removed target only takes values away), so it needs no unfolding.
The CRS's optional limits (``&TX:MAX_NUM_ARGS "@eq 1"`` then ``&ARGS "@gt
%{tx.max_num_args}"``, 920380 and its kin) and the default collections of 901320 are
such rules when crs-setup leaves them unset.

Everything else is kept as it is; its TX writes make those variables unknown (a write to a
name built from a macro makes all of them unknown: folding stops). A kept ``skipAfter`` may
jump over rules: at its marker, whatever the skipped range writes becomes unknown, and a
folded gate may not drop a range holding such a marker. A phase with a count ``skip:N`` is
not folded (the list changes would move the count). A ``ctl:ruleEngine=Off`` stops a
phase at the next rule that matches: a ``Delta`` holding a matching rule stops it too
(``Delta.matches``), and the TX state no longer matters once the engine is off.

A ``ctl:ruleRemove*`` that names a folded rule (CRS 905100 removes every ``OWASP_CRS``
rule for Apache's internal requests) makes that transaction leave the folded lists: the
evaluator continues on the unfolded list right after the rule that removed (same TX
state up to there, by construction) and keeps it for the later phases.

``test_prefilter_exact.py`` loads the CRS with and without folding and requires the same
logged ids on every PL1 regression request.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from .delta import Delta, compact
from .macros import _MACRO, compile_macro

ENABLED = True  # tests load rule sets with and without folding
FOLDED_PHASES = (1, 2, 3, 4)
_PURE_OPS = frozenset(("eq", "ge", "gt", "le", "lt", "streq", "rx", "pm", "within",
                       "contains", "containsword", "beginswith", "endswith", "strmatch",
                       "unconditionalmatch", "nomatch"))
_ABSENT = object()
_ALL = object()  # "writes every TX variable" (a setvar name starting with a macro)
_DEAD = object()  # _try_fold: a rule that can never pass its first link (left out)


def _macro_refs(text: str):
    """``[(COLLECTION, key or None)]`` referenced by ``%{...}`` in ``text``."""
    return [(m.group(1).upper(), (m.group(2) or "").lower() or None)
            for m in _MACRO.finditer(text)]


def _tx_reads_of_macro(macro, allowed) -> Optional[Set[str]]:
    """TX keys a macro reads, None if it reads anything outside ``allowed`` collections."""
    keys: Set[str] = set()
    for part in macro.parts:
        if isinstance(part, bytes):
            continue
        collection, key = part
        if collection == "TX" and key is not None:
            keys.add(key)
        elif collection not in allowed:
            return None
    return keys


def _test_reads(link, default_ops: bool) -> Optional[Set[str]]:
    """The TX keys a link's test (targets and operator, not its effects) reads, or None
    when that test is not a pure function of TX."""
    if link.pre is not None or link.exclusions:
        return None
    reads: Set[str] = set()
    if not link.always:
        if not default_ops or link.op_name.lower() not in _PURE_OPS or not link.plan:
            return None
        for t in link.targets:
            if t.name != "TX" or t.regex is not None or t.key is None:
                return None
            reads.add(t.key.lower())
        for collection, key in _macro_refs(link.op_arg):
            if collection != "TX" or key is None:
                return None
            reads.add(key)
    return reads


def _link_reads(link, default_ops: bool) -> Optional[Set[str]]:
    """The TX keys a pure link reads, or None when the link is not pure."""
    if link.capture:
        return None
    reads = _test_reads(link, default_ops)
    if reads is None:
        return None
    for e in link.effects:
        if getattr(e, "kind", None) != "setvar" or e.collection.lower() != "tx" or \
                e.name.constant is None:
            return None
        if e.op != "!":
            got = _tx_reads_of_macro(e.value, ("MATCHED_VAR", "MATCHED_VAR_NAME", "RULE"))
            if got is None:
                return None
            reads |= got
        if e.op in ("+", "-"):
            reads.add(e.name.constant.decode("latin-1").lower())
    return reads


def _writes(rule):
    """TX keys ``rule`` (all links) may write: a set of names, where ``prefix*`` stands for
    every name with that prefix (a setvar name with a macro after literal text), or
    ``_ALL`` (a name that starts with a macro)."""
    out: Set[str] = set()
    for link in rule.chain_rules():
        if link.capture:
            out.update(str(i) for i in range(10))
        for e in link.effects:
            if getattr(e, "kind", None) == "setvar" and e.collection.lower() == "tx":
                if e.name.constant is not None:
                    out.add(e.name.constant.decode("latin-1").lower())
                    continue
                first = e.name.parts[0]
                if not isinstance(first, bytes) or not first:
                    return _ALL
                out.add(first.decode("latin-1").lower() + "*")
    return out


class _Walk:
    """The state of the walk over the phases (see the module doc)."""

    def __init__(self, waf):
        from .api import RequestView
        from .evaluate import Evaluator

        self.waf = waf
        self.default_ops = waf.default_ops
        self.known: Dict[str, object] = {}  # key -> value or _ABSENT (absent if not here)
        self.unknown: Set[str] = set()
        self.prefixes: Set[str] = set()  # every name with one of these is unknown
        self.poisoned = False
        view = RequestView("127.0.0.1", 1, "127.0.0.1", 80, b"GET", b"/", b"HTTP/1.1", ())
        self.evaluator = Evaluator(waf, view)
        self.folded = 0

    def knows(self, keys) -> bool:
        if self.poisoned or keys & self.unknown:
            return False
        return not any(k.startswith(p) for p in self.prefixes for k in keys)

    def forget(self, keys) -> None:
        if keys is _ALL:
            self.poisoned = True
            return
        for k in keys:
            if k.endswith("*"):
                self.prefixes.add(k[:-1])
            else:
                self.unknown.add(k)

    def test(self, link) -> bool:
        """Whether ``link`` alone (a chain's first link) matches on the known state."""
        ev = self.evaluator
        ev.stores["tx"] = {k: v for k, v in self.known.items() if v is not _ABSENT}
        ev.work = 0
        ev.vars.matched = []
        return ev._eval_rule(link, True)  # (detect: its effects, if any, are not wanted)

    def evaluate(self, rule) -> Tuple[bool, Dict[str, bytes]]:
        """Run ``rule`` on the known state: (matched, TX store after)."""
        ev = self.evaluator
        ev.stores["tx"] = {k: v for k, v in self.known.items() if v is not _ABSENT}
        ev.work = 0
        matched = ev._eval_chain(rule, rule.id in self.waf.detect_ids)
        return matched, ev.stores["tx"]


def fold(waf) -> Tuple[Dict[int, list], Dict[int, Dict[str, int]], int]:
    """``(phases, markers, folded)``: ``waf.phases`` with folded rules replaced by
    ``Delta``s and dead rules dropped, their marker positions, the number of rules folded.
    Nothing to fold: the WAF's own lists."""
    walk = _Walk(waf)
    phases, markers = dict(waf.phases), dict(waf.markers)
    for phase in FOLDED_PHASES:
        rules = waf.phases[phase]
        if any(r.skip for r in rules if r.marker is None):
            for r in rules:
                if r.marker is None:
                    walk.forget(_writes(r))
            continue
        out = compact(_fold_phase(walk, rules, waf.markers[phase]))
        phases[phase] = out
        markers[phase] = {}
        for i, r in enumerate(out):
            if r.marker is not None:
                markers[phase].setdefault(r.marker, i)
    return phases, markers, walk.folded


def _fold_phase(walk, rules, positions) -> list:
    n = len(rules)
    writes = [None if r.marker is not None else _writes(r) for r in rules]
    pending: Dict[int, object] = {}  # position -> writes becoming unknown on arrival
    entries: Set[int] = set()  # marker positions a kept skip may land on
    out: list = []
    run: List = []  # folded rules of the current run: (rule, MATCHED_VAR pair or None)
    written: Set[str] = set()  # TX keys the run's rules wrote

    def flush():
        if not run:
            return
        known = walk.known
        sets = {k: known[k] for k in written if known.get(k, _ABSENT) is not _ABSENT}
        removes = tuple(sorted(k for k in written if known.get(k, _ABSENT) is _ABSENT))
        written.clear()
        matched = None
        for _, m in run:
            if m is not None:
                matched = m
        out.append(Delta(sets, removes, matched, [r for r, _ in run],
                         any(m is not None for _, m in run)))
        run.clear()

    def arrive(i):
        w = pending.pop(i, None)
        if w is not None:
            walk.forget(w)

    i = 0
    while i < n:
        arrive(i)
        rule = rules[i]
        if rule.marker is not None:
            flush()
            out.append(rule)
            i += 1
            continue
        decision = _try_fold(walk, rule, i, positions, entries, n)
        if decision is _DEAD:  # left out: no Delta, which would split a guarded run
            walk.folded += 1
            i += 1
            continue
        if decision is None:  # kept
            flush()
            out.append(rule)
            _mark_known_macros(walk, rule)
            walk.forget(writes[i])
            if rule.skip_after is not None:
                target = positions.get(rule.skip_after)
                target = target if target is not None and target > i else n
                skipped: Set[str] = set()
                for w in writes[i + 1:target]:
                    if w is _ALL:
                        skipped = _ALL  # type: ignore[assignment]
                        break
                    if w is not None:
                        skipped |= w
                prior = pending.get(target)
                pending[target] = _ALL if _ALL in (prior, skipped) else \
                    (skipped | (prior or set()))
                entries.add(target)
            i += 1
            continue
        store, matched_var, jump = decision
        walk.known = {k: store.get(k, _ABSENT) for k in set(walk.known) | set(store)}
        if matched_var is not None and rule.id not in walk.waf.detect_ids:
            wrote = writes[i]  # a set: a pure rule's names are constants
            written.update(wrote)
            walk.unknown -= wrote
        run.append((rule, matched_var))
        walk.folded += 1
        if jump is not None:  # the rules up to the marker are dead for every request
            for j in range(i + 1, jump):
                if rules[j].marker is not None:
                    flush()
                    out.append(rules[j])
            i = jump
            continue
        i += 1
    arrive(n)
    flush()
    return out


def _try_fold(walk, rule, i, positions, entries, n):
    """``(TX store after, MATCHED_VAR pair or None, dead-range end or None)`` when
    ``rule`` folds, else None (kept)."""
    if walk.poisoned:
        return None
    reads: Set[str] = set()
    for link in rule.chain_rules():
        got = _link_reads(link, walk.default_ops)
        if got is None:
            return _dead(walk, rule)
        reads |= got
    if not walk.knows(reads):
        return _dead(walk, rule)
    before = {k: v for k, v in walk.known.items() if v is not _ABSENT}
    matched, store = walk.evaluate(rule)
    if not matched:
        if store != before:  # a chain's first links wrote, then a later link failed:
            return None      # its writes are in no Delta, so the rule is kept
        return dict(store), None, None
    if rule.log or rule.disruptive in ("deny", "drop", "redirect", "allow"):
        return None
    v = walk.evaluator.vars
    pair = (v.matched_var_name, v.matched_var)
    if rule.skip_after is None:
        return dict(store), pair, None
    target = positions.get(rule.skip_after)
    target = target if target is not None and target > i else n
    if any(i < e < target for e in entries):
        return None  # a kept skip may land inside the range: keep the gate
    return dict(store), pair, target


def _mark_known_macros(walk, rule) -> None:
    """Mark the links of a kept ``rule`` up to its first one with effects (or capture)
    whose operator's argument reads only TX keys known here (``Rule.macro_known``): in the
    folded lists, where cleanskip.py's records are used, those keys hold the same values
    whenever the link runs (the links before it changed nothing), so the operator's
    outcome is a function of the value, as for an argument without a macro."""
    link = rule
    while link is not None:
        if "%{" in link.op_arg:
            keys = _tx_reads_of_macro(compile_macro(link.op_arg), ("TX",))
            if keys and walk.knows(keys):
                link.macro_known = True
        if link.effects or link.capture:
            break
        link = link.child


def _dead(walk, rule):
    """For a rule that does not fold: ``_DEAD`` when its first link's test reads only
    known TX variables and fails on them (the chain stops there, for every request, with
    nothing done), else None."""
    reads = _test_reads(rule, walk.default_ops)
    if reads is None or rule.always or not walk.knows(reads) or walk.test(rule):
        return None
    return _DEAD
