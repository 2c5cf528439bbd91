"""A tiny stand-in for the SecLang engine (revproxy.firewall.seclang.api's contract), so the
proxy side is tested without the real engine: a rule is (id, phase, test, msg, deny, points,
tags); ``test(tx, data)`` returns the matched (variable, value) or None."""

from __future__ import annotations

from revproxy.firewall.seclang.api import Interruption, MatchRecord, SecLangError


class Rule:
    def __init__(self, rule_id, phase, test, msg="rule", deny=False, points=0, tags=(),
                 status=403, action="deny"):
        self.id, self.phase, self.test, self.msg = rule_id, phase, test, msg
        self.deny, self.points, self.tags = deny, points, tuple(tags)
        self.status, self.action = status, action


def in_target(needle):
    return lambda tx, data: ("REQUEST_URI", tx.view.uri_raw) if needle in tx.view.uri_raw else None


def in_body(needle):
    return lambda tx, data: ("REQUEST_BODY", data) if data and needle in data else None


def in_response(needle):
    return lambda tx, data: ("RESPONSE_BODY", data) if data and needle in data else None


def status_is(code):
    return lambda tx, data: ("RESPONSE_STATUS", b"%d" % data[0]) if data[0] == code else None


class FakeTx:
    def __init__(self, waf, view):
        self.waf, self.view = waf, view
        self.matches, self.interruption, self.anomaly_score = [], None, 0
        self.phases = []
        self.bodies = []
        self.body_truncated = False

    def _run(self, phase, data):
        self.phases.append(phase)
        for rule in self.waf.rules:
            if rule.phase != phase or self.waf.modes.get(rule.id) == "off":
                continue
            found = rule.test(self, data)
            if found is None:
                continue
            detect = self.waf.modes.get(rule.id) == "detect"
            if not detect:
                self.anomaly_score += rule.points
            disruptive = rule.deny and not detect
            self.matches.append(MatchRecord(rule.id, phase, rule.msg.encode(), b"", "",
                                            rule.tags, found[0], found[1][:128], disruptive))
            if disruptive:
                self.interruption = Interruption(rule.action, rule.status, rule.id,
                                                 b"http://x/" if rule.action == "redirect"
                                                 else b"")
                return self.interruption
        return None

    def phase1(self):
        return self._run(1, None)

    def phase2(self, body, body_truncated=False):
        self.body_truncated = body_truncated
        self.bodies.append(body)
        return self._run(2, body)

    def phase3(self, status, headers):
        return self._run(3, (status, headers))

    def phase4(self, body):
        self.bodies.append(body)
        return self._run(4, body)

    def phase5(self):
        self.phases.append(5)


class FakeWAF:
    engine_mode = "On"

    def __init__(self, rules, modes=None, response_body_access=False):
        self.rules = list(rules)
        self.modes = dict(modes or {})
        self.rule_ids = frozenset(r.id for r in self.rules)
        self.needs_response_body = response_body_access
        self.transactions = []

    def ids_with_tag(self, tag):
        return frozenset(r.id for r in self.rules if tag in r.tags)

    def describe(self):
        return {r.id: (r.phase, r.msg.encode(), r.tags) for r in self.rules}

    def transaction(self, view):
        tx = FakeTx(self, view)
        self.transactions.append(tx)
        return tx


class FakeLoader:
    """``load_waf`` returning a FakeWAF of ``rules``; records the sources and modes; raises a
    SecLangError for a source whose text contains "BROKEN" (at its line)."""

    def __init__(self, rules, **options):
        self.rules, self.options, self.calls = rules, options, []

    def __call__(self, sources, modes=None, directives=()):
        self.calls.append((list(sources), modes))
        for name, text in sources:
            for number, line in enumerate(text.splitlines(), 1):
                if "BROKEN" in line:
                    raise SecLangError(name, number, "unsupported directive BROKEN")
        return FakeWAF(self.rules, modes, **self.options)
