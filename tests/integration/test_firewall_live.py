"""The firewall in a real proxy on loopback with the real engine and a real Core Rule Set:
CRS v4.28.0 from ../shared (tests only) and Debian's modsecurity-crs 3.3.4 when installed.

Attacks in a query, a form, a JSON body, a cookie and a header are answered 403 with the
request id and never reach the backend (it counts what it gets); benign requests pass;
detect mode logs and passes; a reload under load drops nothing; a broken rule file on reload
keeps the old rules; ``twistd --firewall`` and ``--check`` work.
"""

from __future__ import annotations

import json
import os
import re

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from twisted.web import resource, server

from revproxy.config.load import parse_config
from tests.integration.support import (
    connect, listen, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_twistd import ROOT, spawn

CRS4 = os.path.join(os.path.dirname(ROOT), "shared", "crs-v4.28.0")
DEBIAN = "/usr/share/modsecurity-crs"
UA = b"Mozilla/5.0 (X11; Linux x86_64) revproxy-test"
SQLI = b"1' OR '1'='1' UNION SELECT password FROM users--"
SQLI_Q = b"1%27%20OR%20%271%27%3D%271%27%20UNION%20SELECT%20password%20FROM%20users--"


def _engine_missing():
    try:
        import revproxy.firewall.seclang.engine  # noqa: F401
    except ImportError as e:
        return "the SecLang engine is not importable: %s" % e
    return None


class Counting(resource.Resource):
    """A backend that counts requests and echoes the path."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.count = 0

    def render(self, request):
        self.count += 1
        request.setHeader(b"content-type", b"text/plain")
        return b"ok " + request.uri


def request(method, target, headers=(), body=b""):
    lines = [b"%s %s HTTP/1.1" % (method, target), b"Host: localhost", b"User-Agent: " + UA,
             b"Accept: text/html,application/json;q=0.9,*/*;q=0.8"]
    lines += [b"%s: %s" % h for h in headers]
    if body or method == b"POST":
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


ATTACKS = {
    "query": request(b"GET", b"/search?id=" + SQLI_Q),
    "form": request(b"POST", b"/login", [(b"Content-Type",
                                          b"application/x-www-form-urlencoded")],
                    b"user=admin&id=" + SQLI_Q),
    "json": request(b"POST", b"/api", [(b"Content-Type", b"application/json")],
                    json.dumps({"id": SQLI.decode()}).encode()),
    "cookie": request(b"GET", b"/", [(b"Cookie", b"session=" + SQLI_Q)]),
    "header": request(b"GET", b"/", [(b"Referer", b"http://x/?id=" + SQLI_Q)]),
}
BENIGN = [
    request(b"GET", b"/index.html?page=2&sort=name"),
    request(b"POST", b"/login", [(b"Content-Type", b"application/x-www-form-urlencoded")],
            b"user=alice&password=correct-horse-battery"),
    request(b"POST", b"/api", [(b"Content-Type", b"application/json")],
            b'{"name": "Alice", "items": [1, 2, 3]}'),
]


class FirewallLiveMixin:
    crs = None

    def setUp(self):
        missing = _engine_missing()
        if missing:
            raise unittest.SkipTest(missing)
        if not os.path.isdir(os.path.join(self.crs, "rules")):
            raise unittest.SkipTest("no CRS at %s" % self.crs)
        self.backend = Counting()
        site = server.Site(self.backend)
        site.log = lambda r: None
        port = listen(site)
        self.addCleanup(port.stopListening)
        self.backend_port = port.getHost().port
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def config(self, **firewall):
        firewall.setdefault("crs", self.crs)
        return proxy_config([self.backend_port], firewall=firewall)

    @defer.inlineCallbacks
    def exchange(self, port, raw):
        client = yield connect(port)
        client.transport.write(raw)
        (head, body), = yield with_timeout(client.responses(1))
        client.transport.loseConnection()
        return head, body

    def decisions(self):
        return [e for e in self.events if "decision" in e]

    @defer.inlineCallbacks
    def test_attacks_are_blocked_and_never_reach_the_backend(self):
        """SQL injection in a query, a form, JSON, a cookie and a header: 403 with the
        request id in the body, no rule internals, and the backend sees none of them."""
        service, port = yield start_proxy(self, self.config())
        for name, raw in sorted(ATTACKS.items()):
            head, body = yield self.exchange(port, raw)
            self.assertEqual(head.status, 403, "%s: %r" % (name, body))
            rid = re.search(rb"request id ([^)]+)\)", body)
            self.assertIsNotNone(rid, body)
            self.assertNotIn(b"942", body)
            self.assertNotIn(b"SQL", body)
        self.assertEqual(self.backend.count, 0)
        stats = service.runtime.firewall.stats()
        self.assertEqual(stats["blocked"], len(ATTACKS))
        self.assertEqual(len(self.decisions()), len(ATTACKS))
        self.assertTrue(all(e["firewall_action"] == "blocked" for e in self.decisions()))

    @defer.inlineCallbacks
    def test_benign_requests_pass(self):
        """Ordinary GET, form POST and JSON POST reach the backend unchanged."""
        service, port = yield start_proxy(self, self.config())
        for raw in BENIGN:
            head, body = yield self.exchange(port, raw)
            self.assertEqual(head.status, 200, body)
        self.assertEqual(self.backend.count, len(BENIGN))
        self.assertEqual(service.runtime.firewall.stats()["blocked"], 0)

    @defer.inlineCallbacks
    def test_detect_mode_logs_but_passes(self):
        """mode = "detect": the attack reaches the backend; it is logged and counted."""
        service, port = yield start_proxy(self, self.config(mode="detect"))
        head, _ = yield self.exchange(port, ATTACKS["query"])
        self.assertEqual(head.status, 200)
        self.assertEqual(self.backend.count, 1)
        stats = service.runtime.firewall.stats()
        self.assertEqual((stats["blocked"], stats["detected"]), (0, 1))
        self.assertEqual([e["firewall_action"] for e in self.decisions()], ["detected"])

    @defer.inlineCallbacks
    def test_reload_under_load_drops_nothing_and_broken_file_keeps_rules(self):
        """A reload with a changed rules file while requests are in flight: every request
        is answered; the new rule applies after. A broken file: refused, old rules stay."""
        local = os.path.abspath(self.mktemp())
        with open(local, "w") as f:
            f.write("# nothing yet\n")
        data = self.config(rules=[local])
        service, port = yield start_proxy(self, data)
        reload = lambda: service.reloader.reload(lambda: parse_config(data, "<test>"))
        clients = []
        for _ in range(8):
            client = yield connect(port)
            clients.append(client)
        for client in clients:  # all in flight while the reload happens
            client.transport.write(request(b"GET", b"/before"))
        with open(local, "w") as f:
            f.write('SecRule REQUEST_URI "@contains /forbidden-zone" '
                    '"id:10001,phase:1,deny,status:403,log,msg:\'local rule\'"\n')
        self.assertTrue(reload())
        for client in clients:
            (head, _), = yield with_timeout(client.responses(1))
            self.assertEqual(head.status, 200)
            client.transport.loseConnection()
        head, _ = yield self.exchange(port, request(b"GET", b"/forbidden-zone"))
        self.assertEqual(head.status, 403)
        with open(local, "w") as f:
            f.write("# fine\nSecRule REQUEST_URI \"@contains x\" \"id:10002,phase:1,pass\n")
        self.assertFalse(reload())
        refused = [e for e in self.events if "reload refused" in str(e.get("log_format"))]
        self.assertTrue(refused)
        self.assertIn(local + ":", str(refused[-1].get("why")))
        head, _ = yield self.exchange(port, request(b"GET", b"/forbidden-zone"))
        self.assertEqual(head.status, 403)  # the old rules still run


class CRS4LiveTests(FirewallLiveMixin, unittest.TestCase):
    crs = CRS4


class DebianCRSLiveTests(FirewallLiveMixin, unittest.TestCase):
    crs = DEBIAN


class FirewallTwistdTests(unittest.TestCase):
    def setUp(self):
        missing = _engine_missing()
        if missing:
            raise unittest.SkipTest(missing)
        if not os.path.isdir(os.path.join(CRS4, "rules")):
            raise unittest.SkipTest("no CRS at %s" % CRS4)
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def test_firewall_flag_blocks_through_twistd(self):
        """twistd -n revproxy --upstream URL --firewall crs:DIR:pl=1 blocks an attack and
        passes a benign request."""
        backend = Counting()
        site = server.Site(backend)
        site.log = lambda r: None
        bport = listen(site)
        self.addCleanup(bport.stopListening)
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--listen",
                                "tcp:0:interface=127.0.0.1", "--upstream",
                                "http://127.0.0.1:%d" % bport.getHost().port,
                                "--firewall", "crs:%s:pl=1" % CRS4)
        found = yield proc.wait_for(rb"listening on IPv4Address\(type='TCP', "
                                    rb"host='127\.0\.0\.1', port=(\d+)\)")
        port = int(found.group(1))
        self.assertIn(b"firewall: mode on, CRS 4", proc.output)
        for raw, status in ((ATTACKS["query"], 403), (BENIGN[0], 200)):
            client = yield connect(port)
            client.transport.write(raw)
            (head, _), = yield with_timeout(client.responses(1))
            client.transport.loseConnection()
            self.assertEqual(head.status, status)
        self.assertEqual(backend.count, 1)
        transport.signalProcess("TERM")
        yield proc.ended

    @defer.inlineCallbacks
    def test_check_reports_rule_file_error_with_file_and_line(self):
        """--check with a rule file that does not parse: exit 1, the file:line named."""
        rules = os.path.join(self.mktemp_dir, "local.conf")
        with open(rules, "w") as f:
            f.write("# ok\n\nSecNoSuchDirective On\n")
        config = os.path.join(self.mktemp_dir, "rp.toml")
        with open(config, "w") as f:
            f.write('[pools.main]\nmembers = ["http://127.0.0.1:1"]\n'
                    '[firewall]\ncrs = "%s"\nrules = ["%s"]\n' % (CRS4, rules))
        proc, _ = spawn(self, "revproxy", "--check", "--config", config)
        code = yield proc.ended
        self.assertEqual(code, 1)
        self.assertIn(("%s:3:" % rules).encode(), proc.output)
