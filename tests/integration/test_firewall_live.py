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

from tests.integration.support import (
    connect, listen, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_twistd import ROOT, spawn

CRS4 = os.path.join(os.path.dirname(ROOT), "shared", "crs-v4.28.0")
DEBIAN = "/usr/share/modsecurity-crs"
UA = b"Mozilla/5.0 (X11; Linux x86_64) revproxy-test"
SQLI = b"1' OR '1'='1' UNION SELECT password FROM users--"
LISTENING = rb"listening on IPv4Address\(type='TCP', host='127\.0\.0\.1', port=(\d+)\)"
SQLI_Q = b"1%27%20OR%20%271%27%3D%271%27%20UNION%20SELECT%20password%20FROM%20users--"


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


class Load:
    """``workers`` clients sending benign GETs in a loop over keep-alive connections (a new
    one every ``per_connection`` requests) until ``stop()``: counts the 200s, records every
    other outcome in ``failures`` and when each request was sent and answered (``mark``
    names moments)."""

    def __init__(self, port, workers=4, per_connection=5):
        self.port = port
        self.done = 0
        self.failures = []
        self.times = []  # (moment sent, moment answered) per answered request
        self.marks = {}
        self._moment = 0
        self._waiting = []
        self._stopping = False
        self.finished = defer.gatherResults(
            [self._worker(per_connection) for _ in range(workers)])

    def mark(self, name):
        self._moment += 1
        self.marks[name] = self._moment

    def in_flight(self, first, second):
        """Requests in flight at some time between mark ``first`` and mark ``second``: sent
        before ``second``, answered after ``first``."""
        return sum(1 for sent, answered in self.times
                   if sent < self.marks[second] and answered >= self.marks[first])

    def reached(self, count):
        """A Deferred firing once ``count`` requests were answered 200."""
        d = defer.Deferred()
        self._waiting.append((count, d))
        self._check()
        return d

    def _check(self):
        for count, d in list(self._waiting):
            if self.done >= count:
                self._waiting.remove((count, d))
                d.callback(None)

    def stop(self):
        self._stopping = True
        return self.finished

    @defer.inlineCallbacks
    def _worker(self, per_connection):
        raw = request(b"GET", b"/index.html?page=2")
        while not self._stopping:
            try:
                client = yield connect(self.port)
                for n in range(1, per_connection + 1):
                    sent = self._moment
                    client.transport.write(raw)
                    responses = yield with_timeout(client.responses(n), 30)
                    self.times.append((sent, self._moment))
                    if responses[-1][0].status != 200:
                        self.failures.append(responses[-1][0].status)
                        continue
                    self.done += 1
                    self._check()
                client.transport.loseConnection()
                yield client.closed
            except Exception as e:  # refused, reset, closed early, timed out: all failures
                self.failures.append(repr(e))


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
    def test_default_body_limits(self):
        """The default limits (ModSecurity's recommended): a 2 MiB multipart upload (more
        than the old 1 MiB default) reaches the backend; a 200 KiB URL-encoded form (over
        request_body_no_files_limit, 128 KiB) is refused with 413 before the backend."""
        service, port = yield start_proxy(self, self.config())
        payload = bytes(range(32, 127)) * (2 * 1024 * 1024 // 95)
        upload = (b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nholiday"
                  b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; "
                  b"filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                  + payload + b"\r\n--XyZ--\r\n")
        head, body = yield self.exchange(port, request(
            b"POST", b"/upload", [(b"Content-Type", b"multipart/form-data; boundary=XyZ")],
            upload))
        self.assertEqual(head.status, 200, body[:300])
        self.assertEqual(self.backend.count, 1)
        form = b"a=" + b"x" * (200 * 1024)
        head, body = yield self.exchange(port, request(
            b"POST", b"/login", [(b"Content-Type", b"application/x-www-form-urlencoded")],
            form))
        self.assertEqual(head.status, 413)
        self.assertIn(b"request id", body)
        self.assertEqual(self.backend.count, 1)

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

    def write(self, path, text):
        with open(path + ".new", "w") as f:
            f.write(text)
        os.rename(path + ".new", path)

    @defer.inlineCallbacks
    def test_sighup_under_continuous_load_and_broken_file_keeps_rules(self):
        """``twistd -n revproxy`` with the CRS and a local rules file, clients sending
        requests in a loop the whole time: SIGHUP with a new rule in the file (every request
        answered 200, all four clients had requests in flight while the rules were being
        compiled; the new rule blocks after), then SIGHUP with a broken file (refused with
        file:line, still no failed request, the rule from before still blocks)."""
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        self.mktemp_dir = work
        local = os.path.join(work, "local.conf")
        self.write(local, "# nothing yet\n")
        config = os.path.join(work, "rp.toml")
        self.write(config, '[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                   '[logging]\naccess_log = ""\n'
                   '[pools.main]\nmembers = ["http://127.0.0.1:%d"]\n'
                   '[firewall]\ncrs = "%s"\nrules = ["%s"]\n'
                   % (self.backend_port, self.crs, local))
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", config)
        port = int((yield proc.wait_for(LISTENING)).group(1))
        head, _ = yield self.exchange(port, request(b"GET", b"/forbidden-zone"))
        self.assertEqual(head.status, 200)

        load = Load(port)
        self.addCleanup(load.stop)
        yield with_timeout(load.reached(20), 60)
        self.write(local, 'SecRule REQUEST_URI "@contains /forbidden-zone" '
                   '"id:10001,phase:1,deny,status:403,log,msg:\'local rule\'"\n')
        load.mark("hup")
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload done \(generation 1")
        load.mark("done")
        yield with_timeout(load.reached(load.done + 20), 60)
        self.assertIn(b"rules added: 10001", proc.output)
        head, _ = yield self.exchange(port, request(b"GET", b"/forbidden-zone"))
        self.assertEqual(head.status, 403)

        self.write(local, "# fine\nSecRule REQUEST_URI \"@contains x\" \"id:10002,phase:1,pass\n")
        transport.signalProcess("HUP")
        refused = yield proc.wait_for(rb"reload refused: ([^\n]*)")
        self.assertIn((local + ":2").encode(), refused.group(1))
        yield with_timeout(load.reached(load.done + 20), 60)
        yield load.stop()
        self.assertEqual(load.failures, [])
        self.assertGreaterEqual(load.in_flight("hup", "done"), 4)  # all 4 clients were busy
        head, _ = yield self.exchange(port, request(b"GET", b"/forbidden-zone"))
        self.assertEqual(head.status, 403)  # the old rules still run
        self.assertEqual(self.backend.count, load.done + 1)
        transport.signalProcess("TERM")
        yield proc.ended


class CRS4LiveTests(FirewallLiveMixin, unittest.TestCase):
    crs = CRS4


class DebianCRSLiveTests(FirewallLiveMixin, unittest.TestCase):
    crs = DEBIAN


class FirewallTwistdTests(unittest.TestCase):
    def setUp(self):
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
