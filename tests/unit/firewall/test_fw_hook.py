"""The firewall hook with a stand-in engine: phases, answers, detect mode, body limits,
Python rules, response inspection, the decision log, counters and the access-log note."""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from revproxy.config.firewall import FirewallSettings, PythonRule
from revproxy.firewall.build import Firewall
from revproxy.firewall.hook import NOTE
from revproxy.firewall.stats import FirewallStats
from revproxy.firewall.verdicts import deny, score
from revproxy.pipeline.hooks import Answer, ResponseView
from revproxy.testing.hooks import RequestHookContractMixin, fake_context
from tests.unit.firewall.fakewaf import (
    FakeWAF, Rule, in_body, in_response, in_target, status_is,
)

ATTACK = b"GET /q?id=1'%20or%201=1 HTTP/1.1\r\nHost: a\r\n\r\n"
BENIGN = b"GET /q?id=42 HTTP/1.1\r\nHost: a\r\n\r\n"


def post(body, ctype=b"application/x-www-form-urlencoded"):
    raw = (b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: " + ctype +
           b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    return fake_context(raw, body=body)


RULES = [
    Rule(942100, 1, in_target(b"or%201=1"), "SQL Injection Attack Detected", deny=True),
    Rule(942200, 2, in_body(b"union select"), "SQLi in body", deny=True),
    Rule(920350, 1, in_target(b"/q"), "Host header is a numeric IP", points=3),
    Rule(951110, 3, status_is(599), "odd status", deny=True),
    Rule(953100, 4, in_response(b"PHP Warning"), "PHP leak", deny=True),
]


class Rec:
    def __init__(self, name, verdict):
        self.name, self.verdict, self.seen = name, verdict, []

    def evaluate(self, request):
        self.seen.append(request)
        return self.verdict


def make(rules=RULES, waf_options=None, before=(), after=(), **settings):
    settings.setdefault("mode", "on")
    waf = FakeWAF(rules, **(waf_options or {})) if rules is not None else None
    fw = Firewall(FirewallSettings(**settings), waf, before, after, FirewallStats(),
                  task.Clock())
    return fw, waf


def run_request(fw, ctx, response=None, pieces=()):
    """Drive the hook's phases like the proxy: the first Answer stops the request phases."""
    hook = fw.hook
    answer = hook.request_head(ctx)
    if answer is None:
        answer = hook.request_body(ctx)
    cut = None
    if answer is None and response is not None:
        answer = hook.response_head(ctx, response)
        if answer is None:
            for piece in pieces:
                cut = hook.response_body(ctx, piece)
                if cut is not None:
                    break
    hook.request_end(ctx, answer.status if answer is not None else 200)
    return answer, cut


class LogCapture:
    def __init__(self, testcase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def firewall(self):
        return [e for e in self.events if e.get("log_namespace") == "revproxy.firewall"]


class HookContractTests(RequestHookContractMixin, unittest.TestCase):
    def make_hook(self):
        return make()[0].hook


class RequestPhaseTests(unittest.TestCase):
    def test_attack_in_query_is_denied_with_request_id_only(self):
        """A phase-1 deny answers 403 with the request id in the body, and no rule id or
        message (never rule internals)."""
        fw, waf = make()
        answer, _ = run_request(fw, fake_context(ATTACK))
        self.assertIsInstance(answer, Answer)
        self.assertEqual(answer.status, 403)
        self.assertIn(b"test-id", answer.body)
        self.assertNotIn(b"942100", answer.body)
        self.assertNotIn(b"SQL", answer.body)
        self.assertEqual(waf.transactions[0].phases, [1, 5])  # stopped at the interruption
        self.assertEqual((fw.counters.evaluated, fw.counters.blocked), (1, 1))

    def test_configured_status_replaces_the_default_403(self):
        """[firewall] status answers denials whose rule named no other status."""
        fw, _ = make(status=406)
        self.assertEqual(run_request(fw, fake_context(ATTACK))[0].status, 406)

    def test_rule_status_other_than_403_is_kept(self):
        """A rule's own status (deny,status:400) wins over [firewall] status."""
        fw, _ = make([Rule(1, 1, in_target(b"/"), deny=True, status=400)], status=406)
        self.assertEqual(run_request(fw, fake_context(BENIGN))[0].status, 400)

    def test_benign_request_passes_all_phases(self):
        """A benign request gets no answer; phases 1, 2, 3 and 5 run."""
        fw, waf = make()
        ctx = fake_context(BENIGN)
        answer, _ = run_request(fw, ctx, ResponseView(200, b"OK", [], 2))
        self.assertIsNone(answer)
        self.assertEqual(waf.transactions[0].phases, [1, 2, 3, 5])
        self.assertEqual(waf.transactions[0].bodies, [None])  # no body: phase2(None)
        self.assertEqual(fw.counters.blocked, 0)
        self.assertEqual(ctx.notes[NOTE], "logged:920350")  # a match under the threshold

    def test_a_request_without_a_body_runs_phase_2_with_phase_1(self):
        """No body to wait for: request_head runs phase 2 right after phase 1 (on warm
        caches), request_body does not run it again; a request with a body, or with
        Python rules that read it, gets phase 2 at request_body."""
        fw, waf = make()
        ctx = fake_context(BENIGN)
        self.assertIsNone(fw.hook.request_head(ctx))
        self.assertEqual(waf.transactions[0].phases, [1, 2])
        self.assertIsNone(fw.hook.request_body(ctx))
        self.assertEqual(waf.transactions[0].phases, [1, 2])
        ctx = post(b"a=1")
        self.assertIsNone(fw.hook.request_head(ctx))
        self.assertEqual(waf.transactions[1].phases, [1])
        self.assertIsNone(fw.hook.request_body(ctx))
        self.assertEqual(waf.transactions[1].phases, [1, 2])
        fw, waf = make(before=(Rec("body", score(1, "x")),))  # (needs the body)
        ctx = fake_context(BENIGN)
        fw.hook.request_head(ctx)
        self.assertEqual(waf.transactions[0].phases, [1])
        fw.hook.request_body(ctx)
        self.assertEqual(waf.transactions[0].phases, [1, 2])

    def test_a_denial_in_phase_2_of_a_request_without_a_body_answers_its_head(self):
        fw, waf = make([Rule(942200, 2, in_target(b"/q"), "phase 2 deny", deny=True)])
        answer = fw.hook.request_head(fake_context(BENIGN))
        self.assertEqual(answer.status, 403)
        self.assertEqual(waf.transactions[0].phases, [1, 2])

    def test_detect_mode_logs_and_counts_but_passes(self):
        """Engine-wide detect mode: no answer, counted as detected, the line says so."""
        logs = LogCapture(self)
        fw, _ = make(mode="detect")
        ctx = fake_context(ATTACK)
        answer, _ = run_request(fw, ctx)
        self.assertIsNone(answer)
        self.assertEqual((fw.counters.blocked, fw.counters.detected), (0, 1))
        self.assertTrue(ctx.notes[NOTE].startswith("detected:942100"))
        lines = [e["decision"] for e in logs.firewall() if "decision" in e]
        self.assertEqual(len(lines), 1)
        self.assertIn("action=detected", lines[0])
        self.assertIn("942100", lines[0])

    def test_route_modes(self):
        """[firewall] routes: "off" skips the firewall, "detect" only logs on that route."""
        fw, waf = make(routes=(("static", "off"), ("api", "detect")))

        class Route:
            def __init__(self, name):
                self.name = name

        for name, expected in (("static", None), ("api", None), ("other", 403)):
            ctx = fake_context(ATTACK)
            ctx.route = Route(name)
            answer, _ = run_request(fw, ctx)
            self.assertEqual(answer.status if answer else None, expected, name)
        self.assertEqual(len(waf.transactions), 2)  # not evaluated at all when off
        self.assertEqual((fw.counters.blocked, fw.counters.detected), (1, 1))

    def test_allow_interruption_ends_evaluation_without_answer(self):
        """An "allow" interruption lets the request through, later phases unevaluated."""
        fw, waf = make([Rule(1, 1, in_target(b"/"), deny=True, action="allow"),
                        Rule(2, 2, in_target(b"/"), deny=True)])
        self.assertIsNone(run_request(fw, fake_context(BENIGN))[0])
        self.assertEqual(waf.transactions[0].phases, [1, 5])

    def test_redirect_and_drop(self):
        """redirect answers 302 with its Location; drop answers and closes."""
        fw, _ = make([Rule(1, 1, in_target(b"/"), deny=True, action="redirect")])
        answer = run_request(fw, fake_context(BENIGN))[0]
        self.assertEqual((answer.status, answer.headers), (302, ((b"location", b"http://x/"),)))
        fw, _ = make([Rule(1, 1, in_target(b"/"), deny=True, action="drop")])
        self.assertTrue(run_request(fw, fake_context(BENIGN))[0].close)


class BodyTests(unittest.TestCase):
    def test_attack_in_body_is_denied(self):
        """Phase 2 gets the body and its deny answers 403."""
        fw, waf = make()
        answer, _ = run_request(fw, post(b"a=1 union select 2"))
        self.assertEqual(answer.status, 403)
        self.assertEqual(waf.transactions[0].bodies, [b"a=1 union select 2"])

    def test_body_over_limit_is_refused_with_413(self):
        """Beyond request_body_limit with action reject: 413, the engine never sees it."""
        fw, waf = make(request_body_limit=10)
        answer, _ = run_request(fw, post(b"x" * 11))
        self.assertEqual(answer.status, 413)
        self.assertEqual(waf.transactions[0].bodies, [])

    def test_partial_inspects_the_prefix_and_flags_truncation(self):
        """With action partial the engine sees the first request_body_limit bytes."""
        fw, waf = make(request_body_limit=10, request_body_limit_action="partial")
        self.assertIsNone(run_request(fw, post(b"0123456789union select"))[0])
        tx = waf.transactions[0]
        self.assertEqual(tx.bodies, [b"0123456789"])
        self.assertTrue(tx.body_truncated)

    def test_body_not_read_when_no_rule_needs_it(self):
        """Without request body access (and no Python rule) the body is never read."""
        fw, waf = make(waf_options={})
        waf.needs_request_body = False
        fw.reads_body = False
        ctx = post(b"a=union select")
        reads = []

        class Spy:
            size = 14

            def read(self, limit):
                reads.append(limit)
                return b""

        ctx.body = Spy()
        run_request(fw, ctx)
        self.assertEqual(reads, [])
        self.assertEqual(waf.transactions[0].bodies, [b""])


    def test_form_over_no_files_limit_is_refused_upload_is_not(self):
        """A URL-encoded body over request_body_no_files_limit: 413 before the engine; a
        multipart upload of the same size whose bytes are a file passes to phase 2."""
        fw, waf = make(request_body_no_files_limit=100)
        answer, _ = run_request(fw, post(b"a=" + b"x" * 200))
        self.assertEqual(answer.status, 413)
        self.assertEqual(waf.transactions[0].bodies, [])
        upload = (b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n"
                  b"\r\n" + b"x" * 200 + b"\r\n--B--\r\n")
        self.assertIsNone(run_request(fw, post(upload, b"multipart/form-data; boundary=B"))[0])
        self.assertEqual(waf.transactions[1].bodies, [upload])

    def test_partial_reads_the_no_files_limit_of_a_form(self):
        fw, waf = make(request_body_no_files_limit=10, request_body_limit_action="partial")
        self.assertIsNone(run_request(fw, post(b"0123456789union select"))[0])
        self.assertEqual(waf.transactions[0].bodies, [b"0123456789"])
        self.assertTrue(waf.transactions[0].body_truncated)


class PythonRuleTests(unittest.TestCase):
    def test_deny_before_seclang(self):
        """A "before" rule's deny answers its status; the engine's phase 2 never runs."""
        rule = Rec("guard", deny(451, "nope"))
        fw, waf = make(before=(rule,))
        ctx = post(b"a=1")
        answer, _ = run_request(fw, ctx)
        self.assertEqual(answer.status, 451)
        self.assertEqual(rule.seen[0].form, (("a", "1"),))
        self.assertEqual(waf.transactions[0].phases, [1, 5])
        self.assertEqual(ctx.notes[NOTE], "blocked:python:guard")
        self.assertEqual(fw.stats()["rules"]["python:guard"]["hits"], 1)

    def test_head_rule_runs_before_phase_1(self):
        """A "before" rule with needs_body = False runs at head time: its deny answers
        before SecLang phase 1 runs (the transaction is never opened)."""
        rule = Rec("head", deny(403, "no"))
        rule.needs_body = False
        fw, waf = make(before=(rule,))
        ctx = post(b"a=1")
        hook = fw.hook
        answer = hook.request_head(ctx)
        self.assertEqual(answer.status, 403)
        self.assertEqual(waf.transactions, [])
        self.assertEqual(rule.seen[0].body, b"")
        hook.request_end(ctx, 403)
        self.assertEqual(ctx.notes[NOTE], "blocked:python:head")

    def test_head_rule_allowing_lets_phase_1_and_body_rules_run(self):
        """An allowing head rule, then phase 1, then a body rule with the body, phase 2."""
        head = Rec("head", None)
        head.needs_body = False
        body = Rec("body", None)
        fw, waf = make(before=(head, body))
        self.assertEqual((fw.head_rules, fw.body_rules), ((head,), (body,)))
        self.assertIsNone(run_request(fw, post(b"a=1"))[0])
        self.assertEqual((len(head.seen), len(body.seen)), (1, 1))
        self.assertEqual(body.seen[0].form, (("a", "1"),))
        self.assertEqual(waf.transactions[0].phases, [1, 2, 5])

    def test_head_rule_score_adds_up_at_body_time(self):
        """A head-time score counts with the engine's score once phase 2 has run."""
        rule = Rec("s", score(2, "meh"))
        rule.needs_body = False
        fw, _ = make(before=(rule,), inbound_threshold=5)
        self.assertEqual(run_request(fw, fake_context(BENIGN))[0].status, 403)

    def test_head_rule_in_detect_mode_stops_evaluation(self):
        rule = Rec("head", deny(403, "no"))
        rule.needs_body = False
        fw, waf = make(before=(rule,), mode="detect")
        self.assertIsNone(run_request(fw, fake_context(BENIGN))[0])
        self.assertEqual(fw.counters.detected, 1)
        self.assertEqual(waf.transactions, [])

    def test_builtin_rules_are_head_rules(self):
        from revproxy.firewall.rules_builtin import DenyHeader, DenyPaths

        self.assertFalse(DenyPaths({"prefixes": "/.git"}).needs_body)
        self.assertFalse(DenyHeader({"header": "x-scan"}).needs_body)

    def test_scores_add_to_the_engine_score(self):
        """Python scores plus the engine's anomaly score reaching inbound_threshold block."""
        fw, _ = make(after=(Rec("a", score(2, "meh")),), inbound_threshold=5)
        # the engine scores 3 (920350) on /q: 3 + 2 = 5 blocks
        self.assertEqual(run_request(fw, fake_context(BENIGN))[0].status, 403)
        fw, _ = make(after=(Rec("a", score(1, "meh")),), inbound_threshold=5)
        self.assertIsNone(run_request(fw, fake_context(BENIGN))[0])

    def test_failing_rule_is_logged_and_ignored(self):
        """A rule that raises counts as no objection; the failure is logged."""
        logs = LogCapture(self)

        class Broken:
            name = "broken"

            def evaluate(self, request):
                raise RuntimeError("bug")

        fw, _ = make(rules=None, before=(Broken(),))
        self.assertIsNone(run_request(fw, fake_context(BENIGN))[0])
        self.assertTrue(any("log_failure" in e for e in logs.firewall()))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bad_return_value_is_a_failure_not_an_answer(self):
        """A rule returning something that is no verdict is logged, not obeyed."""
        fw, _ = make(rules=None, before=(Rec("odd", "deny"),))
        self.assertIsNone(run_request(fw, fake_context(BENIGN))[0])
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_python_only_firewall(self):
        """With no SecLang rules the Python rules still run."""
        fw, _ = make(rules=None, before=(Rec("g", deny(403, "x")),))
        self.assertEqual(run_request(fw, fake_context(BENIGN))[0].status, 403)


class ResponseTests(unittest.TestCase):
    def test_phase3_deny_replaces_the_response(self):
        """A response-head deny is an Answer (the backend's response is dropped)."""
        fw, _ = make()
        answer, _ = run_request(fw, fake_context(b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n"),
                                ResponseView(599, b"X", []))
        self.assertEqual(answer.status, 403)

    def test_phase4_cuts_when_the_prefix_is_complete(self):
        """With response body access, phase 4 runs once Content-Length bytes arrived and a
        deny cuts the response (the head is out)."""
        fw, waf = make(waf_options={"response_body_access": True}, response_body_access=True)
        view = ResponseView(200, b"OK", [(b"content-type", b"text/html")], 20)
        answer, cut = run_request(fw, fake_context(b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n"),
                                  view, [b"PHP Warn", b"ing: oops at"])
        self.assertIsNone(answer)
        self.assertIn("953100", cut)
        self.assertEqual(waf.transactions[0].bodies[-1], b"PHP Warning: oops at")

    def test_phase4_skipped_for_other_types_and_encoded_bodies(self):
        """Only the configured types, unencoded, are inspected."""
        for headers in ([(b"content-type", b"image/png")],
                        [(b"content-type", b"text/html"), (b"content-encoding", b"gzip")]):
            fw, waf = make(waf_options={"response_body_access": True},
                           response_body_access=True)
            view = ResponseView(200, b"OK", headers, 11)
            _, cut = run_request(fw, fake_context(b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n"),
                                 view, [b"PHP Warning"])
            self.assertIsNone(cut)
            self.assertNotIn(4, waf.transactions[0].phases)

    def test_short_chunked_response_inspected_at_end_as_detected(self):
        """Unknown length and a body shorter than the limit: phase 4 at request_end, too
        late to cut: the deny is counted as detected."""
        fw, waf = make(waf_options={"response_body_access": True}, response_body_access=True)
        view = ResponseView(200, b"OK", [(b"content-type", b"text/plain")], None)
        ctx = fake_context(b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n")
        _, cut = run_request(fw, ctx, view, [b"PHP Warning"])
        self.assertIsNone(cut)
        self.assertEqual(waf.transactions[0].phases, [1, 2, 3, 4, 5])
        self.assertEqual(fw.counters.detected, 1)


class DecisionLogTests(unittest.TestCase):
    def test_one_structured_line_per_decision_with_truncated_data(self):
        """A denial logs one line: request id, action, rule ids, msgs, variable, matched
        data cut to log_matched_data_max, anomaly score."""
        logs = LogCapture(self)
        fw, _ = make(log_matched_data_max=8)
        run_request(fw, fake_context(ATTACK))
        events = [e for e in logs.firewall() if "decision" in e]
        self.assertEqual(len(events), 1)
        event = events[0]
        self.assertEqual(event["firewall_action"], "blocked")
        self.assertEqual(event["request_id"], "test-id")
        self.assertIn(942100, event["rule_ids"])
        text = event["decision"]
        self.assertIn("rid=test-id action=blocked status=403 rule=942100", text)
        self.assertIn('REQUEST_URI="/q?id=1\'..."', text)
        self.assertIn("SQL Injection Attack Detected", text)

    def test_no_line_for_a_clean_request(self):
        """A request nothing matched writes no decision line and no note."""
        logs = LogCapture(self)
        fw, _ = make()
        ctx = fake_context(b"GET /clean HTTP/1.1\r\nHost: a\r\n\r\n")
        run_request(fw, ctx)
        self.assertEqual([e for e in logs.firewall() if "decision" in e], [])
        self.assertNotIn(NOTE, ctx.notes or {})
        self.assertEqual(fw.counters.evaluated, 1)

    def test_samples_are_bounded_per_rule(self):
        """Hits keep counting; only the last samples_per_rule samples are kept."""
        fw, _ = make()
        fw.counters.resize(3)
        for _ in range(7):
            run_request(fw, fake_context(ATTACK))
        entry = fw.stats()["rules"]["942100"]
        self.assertEqual(entry["hits"], 7)
        self.assertEqual(len(entry["samples"]), 3)
        self.assertEqual(entry["msg"], "SQL Injection Attack Detected")
        self.assertEqual(entry["mode"], "enforce")
        self.assertEqual(fw.stats()["blocked"], 7)
