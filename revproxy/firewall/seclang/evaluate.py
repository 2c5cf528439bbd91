"""Rule evaluation for one transaction: phases, chains, flow, effects, logging, limits.

``Evaluator`` is the state and the algorithm; ``engine.Transaction`` adds the phase entry
points of the api contract. See ``engine`` for the evaluation order.
"""

from __future__ import annotations

from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple

from .actions import to_int
from .api import Interruption, Match, MatchRecord
from .chains import Chains
from .macros import compile_macro
from .phaseloop import run_phase
from .rules import CACHED, LIVE
from .variables import Variables

_REQUEST_PHASES = (1, 2)
_PROCESSOR_BYTES = {n: n.encode() for n in ("URLENCODED", "MULTIPART", "JSON", "XML", "RAW")}
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_CAPTURE_KEYS = tuple(str(i) for i in range(10))  # TX:0 .. TX:9


def removal_concerns(how: str, which, rule) -> bool:
    """Whether a ``ctl:ruleRemoveTargetBy{Id,Tag,Msg}`` (``how``, ``which``) names ``rule``."""
    if how == "byid":
        return any(a <= rule.id <= b for a, b in which)
    if how == "bytag":
        return which in rule.tags
    return rule.msg is not None and rule.msg.text == which


def _none_match(batch, vals, transform, t_class) -> bool:
    """Whether ``batch`` (an operator's ``none_match``) says no value of ``vals`` can
    match once transformed; False when the chain may change a value (each is then
    transformed and tested on its own)."""
    values = [v for _name, v in vals]
    if transform is not None:
        if t_class is None or b"".join(values).translate(None, t_class[0]):
            return False
        if t_class[1]:
            values = [v.lower() for v in values]
    return batch(values)


class Evaluator:
    """Per-request state. Written by ``ctl`` effects: ``engine_mode``, ``body_processor``,
    ``request_body_access``, ``force_body_variable``, ``response_body_access``,
    ``request_body_limit``, ``response_body_limit`` and the removal sets."""

    _ctl_log: Optional[list] = None  # the ctls applied, while listmemo.py records a phase
    tx_token: object = None  # what names the TX store's content (phaseloop.run_phase)
    # what the removals (ctl:ruleRemove*) give a transaction: empty and shared until its
    # first removal gives it its own (most requests have none or one: fewer objects
    # made and freed per transaction)
    removed_ranges: Sequence[Tuple[int, int]] = ()
    removed_tags: AbstractSet[str] = frozenset()
    removed_msgs: AbstractSet[str] = frozenset()
    _removed_targets: Sequence[Tuple[str, object, list]] = ()
    _removal_facts: Sequence = ()  # engine.RemovalFacts of each of those
    _removed_ids: AbstractSet[int] = frozenset()  # ids of every rule they remove
    _extra_excl: Optional[Dict[object, Tuple[list, str]]] = None  # rule -> removed targets
    _rt_links: frozenset = frozenset()  # links the removals above may concern

    def __init__(self, waf, view) -> None:
        s = waf.settings
        self.waf = waf
        self.view = view
        self.stores: Dict[str, Dict[str, bytes]] = {
            "tx": {}, "ip": {}, "global": {}, "session": {}, "user": {}, "resource": {},
            "env": {}}
        self.vars = Variables(view, self.stores, waf.vars_env)
        self.matches: List[MatchRecord] = []
        self.interruption: Optional[Interruption] = None
        self.engine_mode = waf.engine_mode
        self._processor: Optional[str] = None
        self.request_body_access = s.request_body_access
        self.force_body_variable = False
        self.response_body_access = s.response_body_access
        self.request_body_limit = s.request_body_limit
        self.response_body_limit = s.response_body_limit
        self.allowed = ""          # "", "request" (phases 1-2 skipped), "all" (1-4 skipped)
        self.work = 0
        self.chains = Chains(self.vars.values, self.vars._vcache)
        self._hits = self.chains.hits  # prefilter group id -> matching patterns
        self._transform = self.chains.transform  # (rule, value) -> transformed value
        self._ran: set = set()
        self.known = None  # cleanskip.Start.known of the running phase
        self.failed = None  # the chain link that last did not match (_eval_chain)
        self._removal_sig: tuple = (0, ())  # (removals, cleanskip.signature of them)
        self.unfolded = False  # running the WAF's unfolded lists (fold.py)
        self.unfold = False    # a removal names a folded rule: switch at the next step

    # --- state read by the proxy, ctl and macros ---------------------------------------
    @property
    def variables(self) -> Dict[str, bytes]:
        return self.stores["tx"]

    @property
    def anomaly_score(self) -> int:
        tx = self.stores["tx"]
        v = tx.get("blocking_inbound_anomaly_score") or tx.get("anomaly_score") or b"0"
        return to_int(v)

    @property
    def body_processor(self) -> Optional[str]:
        return self._processor

    @body_processor.setter
    def body_processor(self, name: Optional[str]) -> None:
        self._processor = name
        got = _PROCESSOR_BYTES.get(name)
        self.vars.body_processor = got if got is not None else (name or "").encode()

    def collection_store(self, name: str) -> Dict[str, bytes]:
        return self.stores[name]

    def macro_value(self, collection: str, key: Optional[str]) -> bytes:
        return self.vars.macro_value(collection, key, self)

    def expand_text(self, text: str) -> bytes:
        return compile_macro(text).expand(self)

    def remove_ids(self, ranges) -> None:
        self.removed_ranges = list(self.removed_ranges) + list(ranges)
        self._remove(self.waf.ids_in_ranges(ranges))

    def remove_tag(self, tag: str) -> None:
        self.removed_tags = self.removed_tags | {tag}
        self._remove(self.waf.ids_with_tag(tag))

    def remove_msg(self, msg: str) -> None:
        self.removed_msgs = self.removed_msgs | {msg}
        self._remove(self.waf.ids_with_msg(msg))

    def _remove(self, ids) -> None:
        self._removed_ids = self._removed_ids.union(ids)
        if not self.unfolded and not self.waf.folded_ids.isdisjoint(ids):
            self.unfold = True  # a folded rule must not run: see run_phase

    def remove_target(self, how: str, which, targets) -> None:
        facts = self.waf.removal_facts(how, which, targets)
        self._removed_targets = tuple(self._removed_targets) + ((how, which, targets),)
        self._removal_facts = tuple(self._removal_facts) + (facts,)
        self._extra_excl = None
        links = facts.links
        self._rt_links = self._rt_links | links if self._rt_links else links
        if not self.unfolded and facts.folded:
            self.unfold = True

    # --- phases -------------------------------------------------------------------------
    def done(self, phase: int) -> bool:
        """Whether ``phase`` must not run (ran already, engine off, interrupted, allowed)."""
        if phase in self._ran or self.engine_mode == "Off":
            return True
        if phase == 5:
            return False
        if self.interruption is not None:
            return True
        return (self.allowed == "all" and phase <= 4) or \
            (self.allowed == "request" and phase in _REQUEST_PHASES)

    run_phase = run_phase  # the phase loop (phaseloop.py)

    def _default_processor(self) -> None:
        if self._processor is not None:
            return
        ct = b""
        for k, v in self.view.headers:
            if k == b"content-type":
                ct = v.split(b";", 1)[0].strip().lower()
                break
        if ct == b"application/x-www-form-urlencoded":
            self.body_processor = "URLENCODED"
        elif ct == b"multipart/form-data":
            self.body_processor = "MULTIPART"

    def _interruption(self, rule) -> Interruption:
        act = rule.disruptive
        if act == "redirect":
            status = rule.status if rule.status in _REDIRECT_STATUSES else 302
            return Interruption("redirect", status, rule.id, rule.redirect.expand(self))
        return Interruption(act, rule.status or 403, rule.id)

    def _over_limit(self, phase: int) -> Optional[Interruption]:
        self.matches.append(MatchRecord(0, phase, b"inspection work limit exceeded",
                                        b"%d operator calls" % self.work, "CRITICAL", (),
                                        "", b"", self.engine_mode == "On" and phase < 5))
        if self.engine_mode == "On" and phase < 5:
            self.interruption = Interruption("deny", 403, 0)
        self.engine_mode = "Off"  # stop evaluating this transaction
        return self.interruption

    # --- one rule -----------------------------------------------------------------------
    def _eval_chain(self, rule, detect: bool) -> bool:
        memo = rule.chain_memo
        if memo is not None and not detect:  # what it did on the same inputs (chainmemo.py)
            return memo.run(self, rule)
        return self._eval_links(rule, detect)

    def _eval_links(self, rule, detect: bool) -> bool:
        self.vars.matched = []
        r = rule
        while r is not None:
            fast = r.fast  # _eval_rule, inlined
            if not (fast(self, detect) if fast is not None else self._eval_general(r, detect)):
                self.failed = r  # the link evaluated without a match (cleanskip.py)
                return False
            r = r.child
        self.vars.rule = rule
        return True

    def _eval_rule(self, rule, detect: bool) -> bool:
        fast = rule.fast
        if fast is not None:
            return fast(self, detect)
        return self._eval_general(rule, detect)

    def _extra_for(self, rule) -> Tuple[list, str]:
        """(targets ``ctl:ruleRemoveTarget*`` removed from ``rule``, their cache key)."""
        kept = self._extra_excl
        if kept is None:
            kept = self._extra_excl = {}
        extra = kept.get(rule)
        if extra is None:
            found = self._targets_removed_for(rule)
            extra = kept[rule] = (
                found, "|" + ",".join(x.text for x in found) if found else "")
        return extra

    def _eval_general(self, rule, detect: bool) -> bool:
        v = self.vars
        v.rule = rule
        if rule.always:
            if not detect:
                for e in rule.effects:
                    e.apply(self)
            return True
        values = v.values
        pre = rule.pre
        if pre is not None:
            group, index = pre
            h = self._hits.get(group.id)
            if h is None and not rule.hot:  # (a hot rule would run anyway: no scan for it)
                h, n = self.chains.group_hits(group, rule)
                self._hits[group.id] = h
                self.work += n
            if h is not None and index not in h:
                return False
        excl = rule.exclusions
        extra_key = ""
        if rule in self._rt_links:
            extra = self._extra_for(rule)
            if extra[0]:
                excl = excl + extra[0]
                extra_key = extra[1]
        matched = False
        op = rule.operator
        negated = rule.negated
        expand = self.expand_text
        memo: Optional[Dict[str, bytes]] = None
        if rule.op_memo:  # expanded once per match, not once per value (rules.py)
            memo = {}
            plain = expand

            def expand(text: str) -> bytes:
                got = memo.get(text)
                if got is None:
                    got = memo[text] = plain(text)
                return got
        transform = self._transform if rule.t_funcs else None
        t_class = rule.t_class
        batch = rule.op_batch
        multi = rule.multi_match
        replay = rule.replay if not detect else None  # (replay.py)
        vcache = v._vcache
        stores = self.stores
        known = self.known
        if known is not None:
            bit, csrc = rule.cbit, rule.csrc
            if not bit:
                known = None
        j = -1
        for t, key, kind in rule.plan:
            j += 1
            if extra_key:
                vals = values(t, excl, key + extra_key)
            elif kind is CACHED:
                vals = vcache.get(key)
                if vals is None:
                    vals = values(t, excl, key)
            elif kind is LIVE:
                vals = values(t, excl, key)
            else:  # TX:name and friends: read live from the store
                val = stores[kind[0]].get(kind[1])
                if val is None:
                    continue
                vals = ((kind[2], val),)
            if known is not None:  # leave out the values known clean for it (cleanskip)
                seen = known[csrc[j]]
                if seen is not None:
                    vals = [x for x in vals if not seen.get(x, 0) & bit]
            if not vals:
                continue
            self.work += len(vals)
            if batch is not None and _none_match(batch, vals, transform, t_class):
                continue  # one check over every value: none can match
            if replay is not None:  # values seen before: their recorded outcome
                if replay.run(self, rule, vals, transform, t_class):
                    matched = True
                continue
            for name, value in vals:
                if multi:
                    for tv, m in self._multi(rule, value):
                        matched = True
                        self._matched(rule, name, tv, m, detect)
                    continue
                if transform is None:
                    tv = value
                elif t_class is not None and not value.translate(None, t_class[0]):
                    tv = value.lower() if t_class[1] else value  # Chains.transform's test
                else:
                    tv = transform(rule, value)
                m = op(tv, expand)
                if negated:
                    m = Match(tv) if m is None else None
                if m is not None:
                    matched = True
                    self._matched(rule, name, tv, m, detect)
                    if memo:
                        memo.clear()  # the effects may have changed what it reads
        return matched

    def _matched(self, rule, name: str, tv: bytes, m: Match, detect: bool) -> None:
        """One matched value: MATCHED_VAR(S), captures, then the rule's effects."""
        v = self.vars
        v.matched_var = tv
        v.matched_var_name = name.encode("latin-1", "replace")
        v.matched.append((name, tv))
        if rule.capture:
            self._capture(m)
        if not detect:
            for e in rule.effects:
                e.apply(self)

    def _multi(self, rule, value: bytes) -> List[Tuple[bytes, Match]]:
        """multiMatch: the operator on the value and after every transformation that
        changed it."""
        out = []
        for c in self.chains.candidates(rule, value):
            m = rule.operator(c, self.expand_text)
            if rule.negated:
                m = Match(c) if m is None else None
            if m is not None:
                out.append((c, m))
        return out

    def invalidate(self) -> None:
        """New data arrived (body, response): values and prefilter hits are stale."""
        self.vars.invalidate_body()
        self.chains.clear()

    def _capture(self, m: Match) -> None:
        tx = self.stores["tx"]
        caps = m.captures or (m.data,)
        n = len(caps)
        for i, key in enumerate(_CAPTURE_KEYS):
            c = caps[i] if i < n else None
            if c is not None:
                tx[key] = c
            elif key in tx:  # a stale group of an earlier capture
                del tx[key]

    def _targets_removed_for(self, rule) -> list:
        out = []
        for how, which, targets in self._removed_targets:
            if removal_concerns(how, which, rule):
                out.extend(targets)
        return out

    def _log(self, rule, phase: int, disruptive: bool) -> None:
        if not rule.log and not disruptive:
            return
        v = self.vars
        msg = rule.msg.expand(self) if rule.msg is not None else b""
        logdata = rule.logdata.expand(self)[:512] if rule.logdata is not None else b""
        self.matches.append(MatchRecord(
            rule.id, phase, msg[:512], logdata, rule.severity, rule.tags,
            v.matched_var_name.decode("latin-1"), v.matched_var[:128], disruptive))
