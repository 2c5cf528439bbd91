"""The contract-test mixin for ``IFirewallRule`` plugins, and a request view to feed them.

A rule's tests reuse the contract like this::

    from twisted.trial import unittest
    from revproxy.testing.firewall import FirewallRuleContractMixin

    class MyRuleContractTests(FirewallRuleContractMixin, unittest.TestCase):
        def make_rule(self):
            return MyRule({})
"""

from __future__ import annotations

from zope.interface.verify import verifyObject

from revproxy.firewall.verdicts import Verdict, checked
from revproxy.firewall.view import FirewallRequest
from revproxy.interfaces import IFirewallRule
from revproxy.testing.hooks import fake_context


def fake_firewall_request(raw=b"GET /x?a=1 HTTP/1.1\r\nHost: example.test\r\n"
                              b"Cookie: s=1\r\n\r\n", body=b"", client_ip="192.0.2.1"):
    """The ``FirewallRequest`` a rule sees for the request in ``raw`` (and ``body``)."""
    ctx = fake_context(raw, client_ip=client_ip, body=body)
    target = ctx.head.target
    if b"?" in target:
        ctx.query = target.split(b"?", 1)[1].decode("latin-1")
    return FirewallRequest(ctx, body)


VARIED = (
    fake_firewall_request(),
    fake_firewall_request(b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Type: "
                          b"application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\n",
                          b"u=a&p=b"),
    fake_firewall_request(b"PUT /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json"
                          b"\r\nContent-Length: 9\r\n\r\n", b'{"a": [1]'),  # broken JSON
    fake_firewall_request(b"GET /%ff%00?%zz=%&&= HTTP/1.1\r\nHost: a\r\n"
                          b"Cookie: ;=;a\r\nX: \xff\r\n\r\n"),
)


class FirewallRuleContractMixin:
    """What every ``IFirewallRule`` must do. Mix into a ``TestCase`` and define
    ``make_rule()``; optionally ``requests()`` for more request views to judge."""

    def make_rule(self):
        raise NotImplementedError

    def requests(self):
        return VARIED

    def test_provides_interface(self):
        """The rule provides IFirewallRule with a str name."""
        rule = self.make_rule()
        self.assertTrue(verifyObject(IFirewallRule, rule))
        self.assertIsInstance(rule.name, str)
        self.assertTrue(rule.name)

    def test_returns_a_verdict(self):
        """evaluate answers None or a verdict (allow, deny 400-599, score >= 0) for odd
        requests too (bad escapes, broken JSON, odd cookies), synchronously."""
        rule = self.make_rule()
        for request in self.requests():
            verdict = checked(rule.evaluate(request))
            self.assertIsInstance(verdict, Verdict)
            if verdict.kind == "deny":
                self.assertTrue(400 <= verdict.status <= 599)
            if verdict.kind == "score":
                self.assertGreaterEqual(verdict.points, 0)

    def test_same_request_same_verdict(self):
        """A rule is a function of the request: judging twice gives the same verdict."""
        rule = self.make_rule()
        for request in self.requests():
            self.assertEqual(checked(rule.evaluate(request)), checked(rule.evaluate(request)))

    def test_request_view_is_read_only(self):
        """The view cannot be changed by a rule (the next rule sees the same request)."""
        request = self.requests()[0]
        self.make_rule().evaluate(request)
        with self.assertRaises(AttributeError):
            request.path = "/changed"
