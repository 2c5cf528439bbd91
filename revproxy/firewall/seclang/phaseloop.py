"""The phase loop: one phase's rules in order, with the shortcuts made at load.

``run_phase(evaluator, phase, logging)`` is ``Evaluator.run_phase``: it walks the phase's
list (the folded one of fold.py and guard.py unless the transaction left it, without the
rules that can only read empty collections, emptyskip.py), skips what the prefilter and
the removals exclude, evaluates each rule (one-key TX rules through their fastpath
function), and applies logging, flow and disruptive actions as ``evaluate`` describes.
"""

from __future__ import annotations

from typing import Optional

from .api import Interruption
from .cleanskip import Plan
from .listmemo import ListMemo, Whole, _Record


def run_phase(self, phase: int, logging: bool = False) -> Optional[Interruption]:
    """Run ``phase`` on the Evaluator ``self`` (see the module doc)."""
    ran = self._ran
    if phase in ran or self.interruption is not None or self.allowed or \
            self.engine_mode == "Off":  # (most phases of most requests: not done)
        if self.done(phase):
            return self.interruption
    ran.add(phase)
    if phase == 1:
        self._default_processor()
    # what names the TX store now (listmemo.py): kept only by a record's replay or a lone
    # Delta; any other way through the phase may change the store
    tok = self.tx_token
    self.tx_token = None
    if tok is None and not self.stores["tx"]:
        tok = 0
    waf = self.waf
    self.chains.union_keys = self.chains.scan_skip = self.known = None
    if self.unfolded:
        rules, markers = waf.phases[phase], waf.markers[phase]
    else:
        plan = waf.empty_plans.get(phase)
        if plan is None:
            lone = waf.lone_deltas.get(phase)
            if lone is not None:  # the whole list is one TX update
                lone.apply(self)
                if tok is not None:
                    self.tx_token = (tok, id(lone))
                return None
            rules, markers = waf.run_phases[phase], waf.run_markers[phase]
            memo = waf.whole_memos.get(phase)
            if memo is not None:  # a list reading only TX: its records (listmemo.py)
                sig = _signature(self)[1]
                key = memo.key(self, sig, tok)
                if key is not None:
                    got = memo.memo.get(key)
                    if got.__class__ is _Record and memo.apply(self, got, tok):
                        return None
                return memo.run(self, phase, logging, Whole(rules, markers, sig), _loop,
                                tok, key)
        elif plan.__class__ is Plan:  # without the rules reading only empty or clean sources
            sig = self._removal_sig
            removals = sig[0]
            if removals != len(self._removed_targets):
                sig = _signature(self)
                removals = sig[0]
            chosen = plan.chosen(self.vars, sig[1])
            key = False
            if chosen is not None and plan.list_records:
                memo = chosen[0][3][0]  # the list's records (listmemo.py)
                if memo is None:
                    memo = chosen[0][3][0] = ListMemo.build(chosen[0][0], plan.list_budget) \
                        or False
                if memo:  # a replay that credits no reader needs no Start (nor learning)
                    key = memo.key(self, sig[1], tok)
                    if key is not None:
                        got = memo.memo.get(key)
                        if got.__class__ is _Record and not got.cleared and \
                                memo.apply(self, got, tok):
                            return None
            start = plan.start(self.vars, sig[1], removals, chosen)
            rules, markers = start.rules, start.markers
            self.chains.union_keys = start.keys  # the union scan reads only those
            self.chains.scan_skip = start.scan_skip
            self.known = start.known
            if start.learns:
                try:
                    if start.hits is not None and plan.list_records:
                        memo = start.slot[0]  # the list's records (listmemo.py)
                        if memo is None:
                            memo = start.slot[0] = ListMemo.build(
                                rules, plan.list_budget) or False
                        if memo:
                            return memo.run(self, phase, logging, start, _loop, tok, key)
                    return _loop(self, phase, logging, rules, markers, start)
                finally:
                    if start.hits is None or start.cleared & ~start.drop or self.unfolded:
                        plan.learn(start, self)  # (else nothing to learn: Plan.learn)
        else:  # without the rules that can only read empty collections
            rules, markers = plan.lists(self.vars)
    return _loop(self, phase, logging, rules, markers, None)


def _signature(self) -> tuple:
    """(how many target removals, cleanskip.signature of them) of the Evaluator ``self``,
    computed again only when a removal was added."""
    removals = len(self._removed_targets)
    sig = self._removal_sig
    if sig[0] != removals:
        sig = self._removal_sig = (removals, tuple([f.part for f in self._removal_facts]))
    return sig


def _loop(self, phase: int, logging: bool, rules: list, markers, start
          ) -> Optional[Interruption]:
    """The loop of ``run_phase``; with ``start`` (cleanskip.Start), ``start.cleared`` gets
    the bit of each pure rule whose first link is evaluated without a match."""
    waf = self.waf
    detect_ids = self.waf.detect_ids
    limit = self.waf.work_limit
    removed = self._removed_ids
    hits = self._hits
    eval_chain = self._eval_chain
    general = self._eval_general
    variables = self.vars
    i, n, skip = 0, len(rules), 0
    while i < n:
        rule = rules[i]
        i += 1
        if rule.marker is not None:
            continue
        if skip:
            skip -= 1
            continue
        if rule.delta is not None:  # rules folded at load (fold.py, guard.py)
            if rule.guarded:  # its rules follow it: taken as one update or run
                if rule.holds(self):
                    rule.apply(self)
                    i += rule.length
                    if rule.jump is not None:
                        pos = markers.get(rule.jump)
                        i = pos + 1 if pos is not None and pos >= i else n
                continue
            if rule.matches and self.engine_mode == "Off":
                if rule.stop_part is not None:  # where the first of them would have
                    rule.stop_part.apply(self)  # stopped the phase
                return None
            rule.apply(self)
            continue
        pre = rule.pre
        if pre is not None:  # the prefilter already says this rule cannot match
            h = hits.get(pre[0].id)
            if h is not None and pre[1] not in h:
                if start is not None:
                    start.cleared |= rule.cbit
                continue
        if removed and rule.id in removed:
            continue
        detect = rule.id in detect_ids
        if rule.child is None:  # what _eval_chain does for one link, without its calls
            variables.matched = []
            fast = rule.fast  # one-key TX rule
            matched = fast(self, detect) if fast is not None else general(rule, detect)
        else:
            matched = eval_chain(rule, detect)
        if pre is not None:  # its first link matched: next time, no prefilter scan for it
            rule.hot = bool(variables.matched)
        if self.unfold:  # leave the folded list right after this rule
            self.unfold, self.unfolded = False, True
            rules, markers = waf.phases[phase], waf.markers[phase]
            i, n = waf.positions[phase][rule] + 1, len(rules)
        if not matched:
            if start is not None:  # the link that did not match (its values all clean)
                start.cleared |= rule.cbit if rule.child is None else self.failed.cbit
            if self.work > limit:
                return self._over_limit(phase)
            continue
        removed = self._removed_ids  # (its ctls may have removed rules: a new set then)
        act = rule.disruptive
        enforce = not detect and not logging and self.engine_mode == "On"
        disrupt = enforce and act in ("deny", "drop", "redirect")
        self._log(rule, phase, disrupt)
        if disrupt:
            self.interruption = self._interruption(rule)
            return self.interruption
        if enforce and act == "allow":
            if rule.allow_scope == "":
                self.allowed = "all"
            elif rule.allow_scope == "request":
                self.allowed = "request"
            return None
        if self.engine_mode == "Off":
            return None
        if rule.skip_after is not None:
            pos = markers.get(rule.skip_after)
            i = pos + 1 if pos is not None and pos >= i else n
        elif rule.skip:
            skip = rule.skip
    return None
