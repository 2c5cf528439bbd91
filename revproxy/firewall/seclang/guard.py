"""Guarded folding: runs of pure TX rules whose inputs are usually the same, applied as one
TX update when a runtime check says they are.

``fold.py`` folds a pure rule (TX targets, a deterministic operator, TX ``setvar``s) only
when every TX variable it reads has the same value for every request. The anomaly-score
rules of the CRS do not qualify: the detection rules may add to the scores they read
(``setvar:tx.blocking_inbound_anomaly_score=+%{tx.inbound_anomaly_score_pl1}``, the
threshold checks of 949110/959100, the reporting rules of phase 5). On a benign request no
detection rule matches and the scores keep their initial values, so those rules do the
same work with the same outcome every time.

``guard(waf, phases, markers)`` walks the (folded) phase lists 1 to 5 with the *expected*
TX state: what a request has when no kept rule matches (the folded ``Delta``s applied). A
run of consecutive pure rules (no marker or Delta between them) is evaluated on that
state; when it ends, a ``Guarded`` is inserted before its rules holding the TX keys the
run reads or may write, their expected values, and the TX update and MATCHED_VAR the run
makes from them. At runtime (``Guarded.holds``) the transaction compares those keys' live
values with the expected ones: equal, the update is applied and the run's rules are
stepped over (the outcome of a pure rule depends only on the TX values it reads: the
update is exact); different, the rules run one by one as usual. A run ends at a rule that
would log or disrupt on the expected state (it is not taken) or that jumps there
(``skipAfter``: it is taken, and the Guarded jumps to the same marker).

The rules stay in the lists, so everything unusual still runs them: the engine switched
Off, a ``ctl:ruleRemove*`` or ``ruleRemoveTarget*`` naming one of them, the unfolded lists
(fold.py), phases with a counted ``skip:N`` (never guarded).
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, Optional, Tuple

from .delta import Delta, compact
from .fold import _link_reads, _writes

ENABLED = True  # tests load rule sets with and without guards
GUARDED_PHASES = (1, 2, 3, 4, 5)
MIN_WORK = 2  # a run of one rule that does not match is as cheap as the check


class Guarded:
    """A run of pure rules and what it does when its TX inputs hold the expected values.

    ``keys``/``expected``: the TX keys the run reads or may write and their expected values
    (None: absent); ``sets``/``removes``/``matched``: the update the run makes then;
    ``length``: how many list entries (its rules) follow it; ``jump``: the marker its last
    rule skips to on the expected state, or None."""

    marker = None
    delta = True     # the run_phase loop takes it with the Deltas
    guarded = True
    matches = False  # (read by the loop only for a delta.Delta)

    def __init__(self, rules, keys: Tuple[str, ...], expected: tuple,
                 sets: Dict[str, bytes], removes: Tuple[str, ...], matched,
                 jump: Optional[str]) -> None:
        self.rules = tuple(rules)
        self.ids = frozenset(r.id for r in self.rules)
        self.links: FrozenSet = frozenset(link for r in self.rules for link in r.chain_rules())
        self.keys = keys
        self.expected = expected
        self.sets = sets
        self.removes = removes
        self.matched = matched
        self.length = len(self.rules)
        self.jump = jump

    def holds(self, ev) -> bool:
        """Whether ``ev`` (an Evaluator) may take the update instead of the rules."""
        if ev.engine_mode == "Off":
            return False
        removed = ev._removed_ids
        if removed and not self.ids.isdisjoint(removed):
            return False
        if ev._rt_links and not self.links.isdisjoint(ev._rt_links):
            return False
        return tuple(map(ev.stores["tx"].get, self.keys)) == self.expected

    apply = Delta.apply  # the update: sets, removes, MATCHED_VAR (the same attributes)

    def __repr__(self) -> str:
        return "<Guarded %s>" % ",".join(str(r.id) for r in self.rules)


class _Expected:
    """The walk: an Evaluator whose TX store is the expected state."""

    def __init__(self, waf) -> None:
        from .api import RequestView
        from .evaluate import Evaluator

        self.waf = waf
        view = RequestView("127.0.0.1", 1, "127.0.0.1", 80, b"GET", b"/", b"HTTP/1.1", ())
        self.ev = Evaluator(waf, view)
        self.tx: Dict[str, bytes] = self.ev.stores["tx"]
        self.lost = False  # a rule logs or disrupts on the expected state: stop guarding

    def run(self, rule) -> Tuple[bool, Optional[tuple]]:
        """Evaluate ``rule`` on the expected state: (matched, MATCHED_VAR pair or None)."""
        ev = self.ev
        ev.work = 0
        ev.engine_mode = "On"
        matched = ev._eval_chain(rule, rule.id in self.waf.detect_ids)
        if not matched:
            return False, None
        return True, (ev.vars.matched_var_name, ev.vars.matched_var)


def _pure(rule, default_ops: bool) -> Optional[set]:
    """The TX keys a pure rule (every link) reads or may write, or None."""
    keys: set = set()
    for link in rule.chain_rules():
        got = _link_reads(link, default_ops)
        if got is None:
            return None
        keys |= got
    w = _writes(rule)
    if not isinstance(w, set) or any(k.endswith("*") for k in w):
        return None
    return keys | w


def guard(waf, phases: Dict[int, list], markers: Dict[int, Dict[str, int]]
          ) -> Tuple[Dict[int, list], Dict[int, Dict[str, int]], int]:
    """``(phases, markers, guarded)``: the lists with a ``Guarded`` before each run of
    pure rules worth it, their marker positions, the number of rules in guarded runs."""
    walk = _Expected(waf)
    phases, markers = dict(phases), dict(markers)
    count = 0
    for phase in GUARDED_PHASES:
        rules = phases[phase]
        if walk.lost or any(r.skip for r in rules if r.marker is None and r.delta is None):
            break  # a counted skip: the expected state past it is unknown
        out, n = _guard_phase(walk, compact(rules), waf.default_ops)
        count += n
        phases[phase] = out
        markers[phase] = {}
        for i, r in enumerate(out):
            if r.marker is not None:
                markers[phase].setdefault(r.marker, i)
    return phases, markers, count


def _guard_phase(walk, rules: list, default_ops: bool) -> Tuple[list, int]:
    out: list = []
    count = 0
    run: List = []
    keys: set = set()
    state: Dict[str, bytes] = {}   # the expected state when the run started
    pair = [None]                  # the run's last MATCHED_VAR pair
    positions = {}
    for i, r in enumerate(rules):
        if r.marker is not None:
            positions.setdefault(r.marker, i)

    def flush(jump=None):
        nonlocal count
        worth = len(run) >= MIN_WORK or pair[0] is not None
        if run and worth:
            tx = walk.tx
            ks = tuple(sorted(keys))
            # every key is checked: only those the run changes need writing
            sets = {k: tx[k] for k in ks if k in tx and tx[k] != state.get(k)}
            removes = tuple(k for k in ks if k not in tx and k in state)
            out.append(Guarded(run, ks, tuple(state.get(k) for k in ks), sets, removes,
                               pair[0], jump))
            count += len(run)
        out.extend(run)
        run.clear()
        keys.clear()
        pair[0] = None

    i, n = 0, len(rules)
    while i < n:
        r = rules[i]
        i += 1
        if r.marker is not None:
            flush()
            out.append(r)
            continue
        if r.delta is not None:  # a delta.Delta: every request takes it
            flush()
            out.append(r)
            r.apply(walk.ev)
            continue
        touched = None if walk.lost else _pure(r, default_ops)
        if touched is None:  # kept: on the expected state it does not match
            flush()
            out.append(r)
            continue
        if not run:
            state = dict(walk.tx)
        matched, mv = walk.run(r)
        if matched and (r.log or r.disruptive in ("deny", "drop", "redirect", "allow")):
            walk.lost = True  # the expected state is not a quiet request's
            flush()
            out.append(r)
            continue
        run.append(r)
        keys.update(touched)
        if mv is not None:
            pair[0] = mv
        if matched and r.skip_after is not None:
            flush(r.skip_after)
            pos = positions.get(r.skip_after)
            target = pos if pos is not None and pos >= i else n
            out.extend(rules[i:target])  # jumped over on the expected state
            i = target
    flush()
    return out, count
