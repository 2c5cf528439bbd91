"""``load_waf`` and the per-request ``Transaction`` (the contract is in ``api``).

Evaluation follows ModSecurity v2/v3 and Coraza: rules run by phase in load order; a rule's
targets are expanded (``!`` exclusions and ``ctl:ruleRemoveTarget*`` applied), each value is
transformed (results cached per transaction by (transformation-chain prefix, value)), the
operator runs (negation applied here), and for every match the rule's effects (setvar,
setenv, ctl) run unless the rule is in "detect" mode; when the whole chain matched, the
match is logged (``log``), flow actions (``skip``, ``skipAfter``) apply, and the disruptive
action takes effect only when the engine is On and the rule is not in "detect" mode.
"""

from __future__ import annotations

import bisect
import time
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, \
    Tuple

from . import chainmemo, cleanplan, cleanskip, delta, emptyskip, fastpath, fold, guard, \
    intake, listmemo, prefilter, purity, replay
from .api import Interruption, Match, MatchRecord, RequestView, SecLangError
from .evaluate import Evaluator, removal_concerns
from .loader import Components, Settings, load_sources
from .rules import Rule


def default_components() -> Components:
    """The operators, transformations and body processors shipped in this package."""
    from . import bodies, operators, transforms

    def limits(s: Settings):
        return bodies.BodyLimits(max_args=s.arguments_limit, max_depth=s.json_depth_limit)
    return Components(operators.build_operator, transforms.TRANSFORMS, bodies.process_body,
                      bodies.parse_query, bodies.parse_cookies, limits)


def _shipped_build_operator():
    from . import operators
    return operators.build_operator


def _shipped_transforms():
    from . import transforms
    return transforms.TRANSFORMS


def _shipped_parsers(components: Components) -> bool:
    """Whether ``components`` parse queries, cookies and bodies with the shipped code."""
    from . import bodies
    return components.parse_query is bodies.parse_query and \
        components.parse_cookies is bodies.parse_cookies and \
        components.process_body is bodies.process_body


class RemovalFacts:
    """One ``ctl:ruleRemoveTargetBy*``: the links it concerns, whether one of them is
    folded (fold.py: the transaction must leave the folded lists), the mask of their
    cleanskip bits, and its part of a transaction's removal signature (cleanskip.py)."""

    __slots__ = ("which", "targets", "links", "folded", "cbits", "part")

    def __init__(self, how: str, which, targets, links: FrozenSet, folded: bool) -> None:
        self.which = which  # (kept: the cache is keyed by identity)
        self.targets = targets
        self.links = links
        self.folded = folded
        self.cbits = 0
        for link in links:
            self.cbits |= link.cbit
        self.part = cleanskip.signature([(how, which, targets)])[0]


class WAF:
    """Loaded rules and settings, shared read-only by every transaction."""

    def __init__(self, rules: List[Rule], settings: Settings, components: Components,
                 modes: Mapping[int, str], clock: Callable[[], float],
                 work_limit: int) -> None:
        self.settings = settings
        self.components = components
        self.clock = clock
        self.work_limit = work_limit
        self.engine_mode = settings.rule_engine
        # what each transaction's Variables reads (shared): the query and cookie parsers,
        # the clock, the most arguments parsed
        self.vars_env = (components.parse_query, components.parse_cookies, clock,
                         settings.arguments_limit)
        self.warnings: List[str] = []  # load-time notes (e.g. @geoLookup never matches)
        off = {i for i, m in modes.items() if m == "off"}
        for i, m in modes.items():
            if m not in ("off", "detect", "enforce"):
                raise ValueError("rule %s: mode must be off, detect or enforce, not %r"
                                 % (i, m))
        self.detect_ids: FrozenSet[int] = frozenset(i for i, m in modes.items()
                                                    if m == "detect")
        kept = [r for r in rules if r.marker is not None or r.id not in off]
        for r in kept:
            for link in r.chain_rules():
                link.finish()
        self.prefilter_groups, self.prefiltered = prefilter.build(
            [r for r in kept if r.marker is None])
        self.all_rules = [r for r in kept if r.marker is None]
        default_ops = self.default_ops = components.build_operator is _shipped_build_operator()
        # chains left out at a later link too (emptyskip.py, cleanskip.py)
        chains = emptyskip.CHAINS and emptyskip.chains_safe(self.all_rules)
        for r in self.all_rules:
            stops = emptyskip.stop_links(r, chains)
            for link in r.chain_rules():
                link.fast = fastpath.specialise(link, default_ops, link in stops)
        self.phases: Dict[int, List[Rule]] = {}
        self.markers: Dict[int, Dict[str, int]] = {}
        for phase in (1, 2, 3, 4, 5):
            lst = [r for r in kept if r.marker is not None or r.phase == phase]
            self.phases[phase] = lst
            self.markers[phase] = {}
            for i, r in enumerate(lst):
                if r.marker is not None:
                    self.markers[phase].setdefault(r.marker, i)
        self.rule_ids: FrozenSet[int] = frozenset(r.id for r in self.all_rules)
        # what transactions run: the lists above with the rules whose outcome is the same
        # for every request folded into TX updates (fold.py)
        self.run_phases, self.run_markers, self.folded = fold.fold(self) if fold.ENABLED else \
            (self.phases, self.markers, 0)
        # runs of pure rules whose TX inputs are usually the same, taken as one update
        # when a runtime check says they are (guard.py)
        self.run_phases, self.run_markers, self.guarded = \
            guard.guard(self, self.run_phases, self.run_markers) if guard.ENABLED else \
            (self.run_phases, self.run_markers, 0)
        self.folded_links = delta.folded_rules(self.run_phases)
        # the links fold.py found reading only known TX in their argument may be pure
        for r in self.all_rules:
            for link in emptyskip.stop_links(r, chains):
                if link.macro_known and link.fast is not None:
                    link.fast.pure = fastpath.maybe_pure(link, link.plan[0][0], True)
        # per phase: its list without the rules reading only empty collections, chosen
        # by a transaction at the phase's start (emptyskip.py)
        # and without the pure rules whose values earlier requests showed clean
        # (cleanskip.py)
        self.empty_plans: Dict[int, emptyskip.Plan] = {}
        shipped = default_ops and components.transforms is _shipped_transforms()
        parsers = _shipped_parsers(components)
        if cleanskip.ENABLED or emptyskip.ENABLED:
            for phase, lst in self.run_phases.items():
                got = cleanplan.plan(lst, shipped, chains, parsers) if cleanskip.ENABLED \
                    else emptyskip.plan(lst, chains)
                if got is not None:
                    self.empty_plans[phase] = got
        # per phase whose whole list is one TX update (the CRS's phase 3): the update
        # (the engine is not Off when a phase starts: a matching Delta stops nothing)
        self.lone_deltas = {phase: lst[0] for phase, lst in self.run_phases.items()
                            if len(lst) == 1 and lst[0].__class__ is delta.Delta
                            and phase not in self.empty_plans}
        # per phase without a Plan whose whole list reads only TX and the match variables
        # (the CRS's phase 5): its records (listmemo.py)
        self.whole_memos: Dict[int, listmemo.ListMemo] = {}
        if shipped and listmemo.ENABLED:
            for phase, lst in self.run_phases.items():
                if phase not in self.empty_plans and phase not in self.lone_deltas:
                    memo = listmemo.ListMemo.build(lst, listmemo.Budget())
                    if memo is not None and not memo.reads:
                        self.whole_memos[phase] = memo
        self.folded_ids = frozenset(link.id for link in self.folded_links)
        # links whose matches do the same for the same value: recorded per value (replay.py)
        for r in self.all_rules:
            for link in r.chain_rules():
                if replay.replayable(link, purity.pure_sources(link, shipped) is not None):
                    link.replay = replay.Replay()
                    link.fast = None  # the general loop replays (fastpath.py's would not)
        # chains that did not match: what they did per inputs, replayed (chainmemo.py)
        for r in self.all_rules:
            if chainmemo.eligible(r, shipped):
                r.chain_memo = chainmemo.ChainMemo(r)
        self.positions = {phase: {r: i for i, r in enumerate(lst)}
                          for phase, lst in self.phases.items()}
        self._by_tag: Dict[str, FrozenSet[int]] = {}
        self._by_msg: Dict[str, FrozenSet[int]] = {}
        self._links_removed: Dict[tuple, FrozenSet] = {}
        self._removal_facts: Dict[tuple, RemovalFacts] = {}
        self._sorted_ids = sorted(self.rule_ids)
        self.body_limits = components.body_limits(settings) if components.body_limits \
            else None
        self.body_kwargs: Dict[str, dict] = {}  # processor -> process_body's keywords
        self.needs_request_body = settings.request_body_access
        self.needs_response_body = settings.response_body_access

    def links_removed_by(self, how: str, which) -> FrozenSet:
        """The rules and chain links a ``ctl:ruleRemoveTargetBy*`` (``how``, ``which``)
        concerns: a transaction checks membership instead of matching every rule."""
        key = (how, tuple(tuple(r) for r in which) if how == "byid" else which)
        found = self._links_removed.get(key)
        if found is None:
            found = self._links_removed[key] = frozenset(
                link for r in self.all_rules for link in r.chain_rules()
                if removal_concerns(how, which, link))
        return found

    def removal_facts(self, how: str, which, targets) -> "RemovalFacts":
        """What a ``ctl:ruleRemoveTargetBy*`` (``how``, ``which``, ``targets``: a Ctl's,
        fixed at load) means, worked out once per WAF (``RemovalFacts``)."""
        key = (how, id(which), id(targets))
        got = self._removal_facts.get(key)
        if got is None or got.which is not which or got.targets is not targets:
            links = self.links_removed_by(how, which)
            got = self._removal_facts[key] = RemovalFacts(
                how, which, targets, links, not self.folded_links.isdisjoint(links))
        return got

    def ids_with_tag(self, tag: str) -> FrozenSet[int]:
        ids = self._by_tag.get(tag)
        if ids is None:
            ids = self._by_tag[tag] = frozenset(r.id for r in self.all_rules if tag in r.tags)
        return ids

    def ids_in_ranges(self, ranges) -> List[int]:
        """The ids of loaded rules inside the (low, high) ``ranges``."""
        ids = self._sorted_ids
        out: List[int] = []
        for a, b in ranges:
            out.extend(ids[bisect.bisect_left(ids, a):bisect.bisect_right(ids, b)])
        return out

    def ids_with_msg(self, msg: str) -> FrozenSet[int]:
        ids = self._by_msg.get(msg)
        if ids is None:
            ids = self._by_msg[msg] = frozenset(
                r.id for r in self.all_rules if r.msg is not None and r.msg.text == msg)
        return ids

    def describe(self) -> Dict[int, Tuple[int, str, Tuple[str, ...]]]:
        """rule id -> (phase, msg as written, tags): for reload diffs."""
        return {r.id: (r.phase, r.msg.text if r.msg is not None else "", r.tags)
                for r in self.all_rules}

    def transaction(self, view: RequestView) -> "Transaction":
        return Transaction(self, view)


def load_waf(sources: Sequence[Tuple[str, str]], *, modes: Optional[Mapping[int, str]] = None,
             directives: Iterable[str] = (), components: Optional[Components] = None,
             clock: Callable[[], float] = time.time, work_limit: int = 1000000) -> WAF:
    """Compile ``sources`` ((file name, text) pairs) then ``directives`` (named
    "<config>"); raise ``SecLangError`` on any problem. ``components`` (tests) replaces the
    shipped operators / transformations / body processors; ``work_limit`` bounds the
    operator calls of one transaction (beyond it the transaction stops evaluating and, with
    the engine On, is denied with 403 by pseudo-rule 0)."""
    if isinstance(directives, str):
        directives = [directives]
    comps = components if components is not None else default_components()
    loader = load_sources(sources, list(directives), comps)
    waf = WAF(loader.rules, loader.settings, comps, modes or {}, clock, work_limit)
    waf.warnings = list(loader.warnings)
    return waf


class Transaction(Evaluator):
    """One request's evaluation; see ``api.Transaction`` for the contract."""

    def phase1(self) -> Optional[Interruption]:
        return self.run_phase(1)

    def phase2(self, body: Optional[bytes], body_truncated: bool = False
               ) -> Optional[Interruption]:
        if 2 in self._ran or self.interruption is not None or self.allowed or \
                self.engine_mode == "Off":  # (run_phase's check, before the intake)
            if self.done(2):
                return self.interruption
        refused = intake.take_request_body(self, body, body_truncated)
        if refused is not None:
            return refused
        return self.run_phase(2)

    def phase3(self, status: int, headers: Sequence[Tuple[bytes, bytes]]
               ) -> Optional[Interruption]:
        self.vars.response_status = status
        self.vars.response_headers = [(k.lower(), v) for k, v in headers]
        self.invalidate()
        return self.run_phase(3)

    def phase4(self, body: bytes) -> Optional[Interruption]:
        if self.response_body_access and intake.response_type_inspected(self):
            limit = self.response_body_limit
            self.vars.response_body = body[:limit]
            self.invalidate()  # what phase 3 read of RESPONSE_BODY (nothing) is stale
        return self.run_phase(4)

    def phase5(self) -> None:
        saved = self.interruption
        self.run_phase(5, logging=True)
        self.interruption = saved


__all__ = ["load_waf", "WAF", "Transaction", "SecLangError", "Match", "MatchRecord",
           "default_components"]
