"""The access log of a real ``twistd -n revproxy``: JSON lines with the proxy's fields
(route, member, timings, cache outcome, request id), and SIGUSR1 after a rename while
requests keep flowing: every request has exactly one line, in the old file or the new one.
The firewall decision is checked in process (a hook notes it as the firewall does)."""

from __future__ import annotations

import json
import os
import signal

from twisted.internet import defer
from twisted.trial import unittest

from revproxy.pipeline.hooks import HookSet, RequestHook
from tests.integration.support import (
    backend_site, connect, listen, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_cache_live import counted_backend
from tests.integration.test_reload_live import LISTENING
from tests.integration.test_twistd import spawn


def read_lines(path):
    with open(path) as f:
        text = f.read()
    assert text == "" or text.endswith("\n"), "a torn last line in %s" % path
    return [json.loads(line) for line in text.splitlines()]


class Traffic:
    """One keep-alive client sending GET /echo/N one after another until ``stop()``."""

    def __init__(self, port):
        self.port = port
        self.answered = []
        self.failures = []
        self._stopping = False
        self.finished = self._run()

    def stop(self):
        self._stopping = True
        return self.finished

    @defer.inlineCallbacks
    def _run(self):
        client = yield connect(self.port)
        n = 0
        while not self._stopping:
            n += 1
            client.transport.write(b"GET /echo/%d HTTP/1.1\r\nHost: a\r\n\r\n" % n)
            try:
                responses = yield with_timeout(client.responses(n), 10)
            except Exception as e:
                self.failures.append(repr(e))
                return
            if responses[-1][0].status == 200:
                self.answered.append("/echo/%d" % n)
            else:
                self.failures.append(responses[-1][0].status)
        client.transport.loseConnection()
        yield client.closed


class AccessLogLiveTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        self.backend_port = backend.getHost().port
        self.access = os.path.join(self.mktemp_dir, "access.log")

    @defer.inlineCallbacks
    def test_sigusr1_while_requests_flow_loses_no_line(self):
        """Rename the log, SIGUSR1, keep requesting: the old file ends with whole lines, the
        new one starts where it stopped, and every answered request is logged once."""
        config = os.path.join(self.mktemp_dir, "rp.toml")
        with open(config, "w") as f:
            f.write('[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                    '[logging]\naccess_log = "%s"\naccess_format = "json"\n'
                    '[pools.main]\nmembers = ["http://127.0.0.1:%d"]\n'
                    % (self.access, self.backend_port))
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", config)
        port = int((yield proc.wait_for(LISTENING)).group(1))
        traffic = Traffic(port)
        yield with_timeout(self.until(lambda: len(traffic.answered) >= 20), 30)
        os.rename(self.access, self.access + ".1")
        transport.signalProcess(signal.SIGUSR1)
        yield proc.wait_for(rb"log files reopened: " + self.access.encode())
        reopened_at = len(traffic.answered)
        yield with_timeout(self.until(lambda: len(traffic.answered) >= reopened_at + 20), 30)
        yield traffic.stop()
        transport.signalProcess("TERM")
        yield with_timeout(proc.ended, 30)
        self.assertEqual(traffic.failures, [])
        rotated = read_lines(self.access + ".1")
        fresh = read_lines(self.access)
        self.assertTrue(rotated and fresh)
        logged = [line["target"] for line in rotated + fresh]
        self.assertEqual(logged, traffic.answered)  # each once, in order, none lost
        ids = [line["request_id"] for line in rotated + fresh]
        self.assertEqual(len(set(ids)), len(ids))
        line = fresh[-1]
        self.assertEqual((line["route"], line["member"], line["status"], line["cache"]),
                         ("default", "127.0.0.1:%d" % self.backend_port, 200, None))
        self.assertEqual(line["request"], "GET %s HTTP/1.1" % line["target"])
        self.assertGreaterEqual(line["total_time"], line["upstream_time"])

    def until(self, predicate):
        from twisted.internet import reactor, task

        def check():
            if predicate():
                loop.stop()

        loop = task.LoopingCall(check)
        return loop.start(0.02, now=True)

    @defer.inlineCallbacks
    def test_json_lines_carry_cache_outcome_and_firewall_decision(self):
        """A cached route logs miss then hit; a request the firewall noted logs its
        decision (ctx.notes["firewall"])."""
        _, counted_port = counted_backend(self)
        data = proxy_config([self.backend_port],
                            cache={"store": "memory"},
                            routes=[{"name": "cached", "path_prefix": "/c/", "pool": "counted",
                                     "cache": True},
                                    {"name": "other", "pool": "main", "cache": False}])
        data["pools"]["counted"] = {"members": ["http://127.0.0.1:%d" % counted_port]}
        data["logging"] = {"access_log": self.access, "access_format": "json",
                           "error_log": "-"}
        service, port = yield start_proxy(self, data)

        class NoteFirewall(RequestHook):
            name = "note-firewall"

            def request_head(self, ctx):
                if ctx.path.startswith("/echo"):
                    ctx.note("firewall", {"action": "detect", "rules": [942100]})

        service._holder.current.hooks = HookSet((NoteFirewall(),))
        for path in (b"/c/x", b"/c/x", b"/echo/x"):
            client = yield connect(port)
            client.transport.write(b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                                   % path)
            [(head, _)] = yield with_timeout(client.responses(1))
            self.assertEqual(head.status, 200)
            yield client.closed
        lines = read_lines(self.access)
        self.assertEqual([(l["route"], l["cache"], l["firewall"]) for l in lines], [
            ("cached", "miss", None), ("cached", "hit", None),
            ("other", None, {"action": "detect", "rules": [942100]})])
        self.assertTrue(lines[1]["cache_status"].startswith("revproxy; hit"))
        self.assertIsNone(lines[1]["member"])
