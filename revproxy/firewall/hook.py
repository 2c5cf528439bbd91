"""The firewall as a pipeline hook: SecLang phases and Python rules at the request's phases.

```
request_head   Python rules "before" that do not need the body (``needs_body = False``),
               then phase 1 (headers, query, cookies); a request without a body (and no
               Python rule reading one) runs phase 2 right after, on warm caches (so its
               phase-2 matches are logged even when a later hook answers at request_body)
request_body   the body limits (``revproxy.firewall.limits``), Python rules "before" that
               need the body, phase 2 on the body (only read when a rule needs it), Python
               rules "after", then the Python scores added to the engine's anomaly score
response_head  phase 3 (the backend's status and headers; a denial replaces the response)
response_body  phase 4 on a bounded prefix, when response body access is on and the type
               matches: run once the prefix is complete (Content-Length or the limit); a
               denial cuts the response, whose head is already out
request_end    phase 5, counters, one decision line in the log, the ``firewall`` note
```
In detect mode (engine-wide or per route) a denial is logged and counted as "detected" and
the request goes on; the engine then stops evaluating it, as it would have.
"""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from revproxy.firewall.decision import (
    BLOCKED, DETECTED, Outcome, denial, log_text, note_text, python_match,
)
from revproxy.firewall.limits import body_limit, content_type
from revproxy.firewall.verdicts import checked
from revproxy.firewall.view import FirewallRequest, engine_view
from revproxy.gcpressure import firewall_transaction
from revproxy.http1.heads import NO_BODY
from revproxy.interfaces import IRequestHook
from revproxy.pipeline.hooks import Answer, RequestHook

log = Logger(namespace="revproxy.firewall")

STATE = "firewall.state"  # ctx.notes key of the request's _State
NOTE = "firewall"  # ctx.notes key the access log shows


class _State:
    """One request's firewall state (in ``ctx.notes``)."""

    __slots__ = ("mode", "tx", "outcome", "finished", "score", "python", "response",
                 "response_want", "phase2_ran")

    def __init__(self, mode):
        self.mode = mode  # "on" | "detect"
        self.tx = None  # the engine's Transaction
        self.outcome = None  # decision.Outcome once something disruptive happened
        self.finished = False  # no more phases are evaluated (interrupted or allowed)
        self.score = 0  # points from Python rules
        self.python = []  # MatchRecords of Python rules
        self.response = None  # bytearray of the response body prefix, while collecting
        self.response_want = 0  # bytes to collect before phase 4 runs
        self.phase2_ran = False  # phase 2 ran with phase 1 (a request without a body)


@implementer(IRequestHook)
class FirewallHook(RequestHook):
    """The hook of one ``revproxy.firewall.build.Firewall`` (its runtime's)."""

    name = "firewall"

    def __init__(self, firewall):
        self.fw = firewall

    # -- request ---------------------------------------------------------------------------
    def request_head(self, ctx):
        fw = self.fw
        mode = fw.route_mode(ctx.route)
        if mode == "off":
            return None
        state = _State(mode)
        ctx.note(STATE, state)
        fw.counters.evaluated += 1
        if fw.head_rules:
            answer = self._python(ctx, state, fw.head_rules, FirewallRequest(ctx))
            if answer is not None or state.finished:
                return answer
        if fw.waf is None:
            return None
        firewall_transaction()
        tx = state.tx = fw.waf.transaction(engine_view(ctx))
        answer = self._interrupted(ctx, state, tx.phase1())
        if answer is None and not state.finished and ctx.head.framing == NO_BODY and \
                not fw.body_rules:  # no body to wait for: phase 2 now, on warm caches
            state.phase2_ran = True
            answer = self._interrupted(ctx, state, tx.phase2(None))
        return answer

    def request_body(self, ctx):
        state = _state(ctx)
        if state is None or state.finished:
            return None
        fw = self.fw
        view = ctx.body
        size = view.size if view is not None else 0
        body, truncated = b"", False
        if size and fw.reads_body:
            settings = fw.settings
            if size <= settings.request_body_no_files_limit and \
                    size <= settings.request_body_limit:  # (body_limit's first answer)
                body = view.read(size)
            else:
                limit = body_limit(view.read, size, content_type(ctx.head.headers),
                                   settings.request_body_limit,
                                   settings.request_body_no_files_limit)
                if limit.over is not None:
                    if settings.request_body_limit_action == "reject":
                        return self._decide(ctx, state, Outcome(BLOCKED, 413, "limit",
                                                                limit.over))
                    truncated = limit.read < size
                body = view.read(limit.read)
        request = None
        if fw.body_rules:
            request = FirewallRequest(ctx, body, truncated)
            answer = self._python(ctx, state, fw.body_rules, request)
            if answer is not None or state.finished:
                return answer
        tx = state.tx
        if tx is not None and not state.phase2_ran:
            if truncated:
                interruption = tx.phase2(body, body_truncated=True)
            else:
                interruption = tx.phase2(body if size else None)
            answer = self._interrupted(ctx, state, interruption)
            if answer is not None or state.finished:
                return answer
        if fw.after:
            if request is None:
                request = FirewallRequest(ctx, body, truncated)
            answer = self._python(ctx, state, fw.after, request)
            if answer is not None or state.finished:
                return answer
        if state.score:
            total = state.score + (tx.anomaly_score if tx is not None else 0)
            if total >= fw.settings.inbound_threshold:
                return self._decide(ctx, state, Outcome(
                    BLOCKED, fw.settings.status, "python",
                    "anomaly score %d (Python rules %d) >= inbound_threshold" %
                    (total, state.score)))
        return None

    def _python(self, ctx, state, rules, request):
        """Run Python ``rules`` on ``request``: the first deny decides; scores add up."""
        for rule in rules:
            try:
                verdict = checked(rule.evaluate(request))
            except Exception:
                log.failure("rid={rid} firewall rule {name!r} failed; counted as no objection",
                            rid=request.request_id, name=getattr(rule, "name", rule))
                continue
            if verdict.kind == "allow":
                continue
            if verdict.kind == "score":
                state.score += verdict.points
                state.python.append(python_match(rule.name, verdict.reason, verdict.points,
                                                 False))
                continue
            state.python.append(python_match(rule.name, verdict.reason, 0, True))
            return self._decide(ctx, state, Outcome(BLOCKED, verdict.status,
                                                    "python:%s" % rule.name, verdict.reason))
        return None

    # -- response --------------------------------------------------------------------------
    def response_head(self, ctx, response):
        state = _state(ctx)
        if state is None or state.finished or state.tx is None:
            return None
        answer = self._interrupted(ctx, state, state.tx.phase3(response.status,
                                                                response.headers))
        if answer is not None or state.finished:
            return answer
        want = self.fw.response_prefix(response) if ctx.head.method != b"HEAD" else 0
        if want:
            state.response = bytearray()
            state.response_want = want
        return None

    def response_body(self, ctx, data):
        state = _state(ctx)
        if state is None or state.response is None:
            return None
        buf = state.response
        buf += data[:state.response_want - len(buf)]
        if len(buf) < state.response_want:
            return None
        state.response = None
        if state.finished:
            return None
        answer = self._interrupted(ctx, state, state.tx.phase4(bytes(buf)))
        if answer is not None:
            return "firewall: response denied by rule %s" % (state.outcome.rule,)
        return None

    def request_end(self, ctx, status):
        state = _state(ctx)
        if state is None:
            return None
        tx = state.tx
        if tx is not None:
            if state.response is not None and not state.finished:
                # a response shorter than the announced prefix: inspected now, too late to
                # cut; a denial is logged and counted as detected
                state.mode = "detect"
                self._interrupted(ctx, state, tx.phase4(bytes(state.response)))
            state.response = None
            tx.phase5()
            matches = tx.matches + state.python if state.python else tx.matches
            if not matches and state.outcome is None:
                return None  # (nothing to count, log or note: most requests)
            score = tx.anomaly_score + state.score
        else:
            matches, score = state.python, state.score
        self.fw.record(ctx, state.outcome, matches, score)
        return None

    # -- decisions -------------------------------------------------------------------------
    def _interrupted(self, ctx, state, interruption):
        """The engine's Interruption (or None) as an Answer (or None)."""
        if interruption is None:
            return None
        state.finished = True
        if interruption.action == "allow":
            return None
        reason = _message(state.tx, interruption.rule_id)
        status = self.fw.status_for(interruption.status)
        if interruption.action == "redirect" and interruption.data:
            outcome = Outcome(BLOCKED, 302, interruption.rule_id, reason)
            if state.mode == "detect":
                return self._decide(ctx, state, outcome)
            state.outcome = outcome
            return Answer(302, headers=((b"location", interruption.data),),
                          reason="firewall: rule %s" % interruption.rule_id)
        outcome = Outcome(BLOCKED, status, interruption.rule_id, reason)
        return self._decide(ctx, state, outcome, close=interruption.action == "drop")

    def _decide(self, ctx, state, outcome, close=False):
        """Apply ``outcome`` per the request's mode: an Answer when blocking; in detect mode
        the outcome becomes "detected" and the request goes on."""
        state.finished = True
        if state.mode == "detect":
            state.outcome = outcome._replace(action=DETECTED)
            return None
        state.outcome = outcome
        return denial(outcome.status, ctx.request_id, close, "rule %s" % (outcome.rule,))


def _state(ctx):
    notes = ctx.notes
    return notes.get(STATE) if notes is not None else None


def _message(tx, rule_id) -> str:
    for match in reversed(tx.matches) if tx is not None else ():
        if match.rule_id == rule_id:
            return match.msg.decode("utf-8", "replace")
    return ""


def record_decision(fw, ctx, outcome, matches, score, now):
    """Counters, the decision log line and the access-log note of one request."""
    counters = fw.counters
    if outcome is not None:
        if outcome.action == BLOCKED:
            counters.blocked += 1
        elif outcome.action == DETECTED:
            counters.detected += 1
    if not matches and outcome is None:
        return
    counters.matched += 1
    rid = ctx.request_id.decode("ascii", "replace")
    data_max = fw.settings.log_matched_data_max
    for match in matches:
        value = match.value[:data_max].decode("utf-8", "backslashreplace")
        counters.hit(match.rule_id, now, rid, match.variable, value)
    ctx.note(NOTE, note_text(outcome, matches))
    text = log_text(ctx.request_id, outcome, matches, score, data_max)
    if outcome is not None:
        log.warn("firewall {decision}", decision=text, firewall_action=outcome.action,
                 request_id=rid, rule_ids=[m.rule_id for m in matches], anomaly_score=score)
    else:
        log.info("firewall {decision}", decision=text, firewall_action="logged",
                 request_id=rid, rule_ids=[m.rule_id for m in matches], anomaly_score=score)
