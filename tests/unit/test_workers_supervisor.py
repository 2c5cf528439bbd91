"""The supervisor on a fake reactor (a clock that records spawned processes and signals),
and the admin fan-out with canned worker answers: no process, no socket."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from twisted.internet import defer, error, task
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest

from revproxy.config.load import load_config
from revproxy.workers.fanout import FanOutResource
from revproxy.workers.supervisor import Supervisor


class FakeProcess:
    def __init__(self, proto, argv, child_fds, pid):
        self.proto, self.argv, self.child_fds, self.pid = proto, argv, child_fds, pid
        self.signals = []

    def signalProcess(self, name):
        self.signals.append(name)

    def closeStdin(self):
        pass

    def end(self, signal=None, code=0):
        value = error.ProcessTerminated(exitCode=None if signal else code, signal=signal) \
            if signal or code else error.ProcessDone(0)
        self.proto.processEnded(Failure(value))


class FakeReactor(task.Clock):
    def __init__(self):
        task.Clock.__init__(self)
        self.spawned = []

    def spawnProcess(self, proto, executable, argv, env=None, childFDs=None, **kw):
        process = FakeProcess(proto, argv, childFDs, 1000 + len(self.spawned))
        self.spawned.append(process)
        proto.makeConnection(process)
        return process


class SupervisorTests(unittest.TestCase):
    def setUp(self):
        self.reactor = FakeReactor()
        self.run_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.run_dir, True)
        self.config = self.on_disk = load_config(None)
        self.supervisor = Supervisor(self.reactor, self.config, lambda: self.on_disk,
                                     ["--config", "x.toml"], 2, lambda config: {},
                                     lambda supervisor, config: [], python="/py", env={},
                                     run_dir=self.run_dir, install_signals=False)
        self.supervisor.startService()

    def workers(self):
        return [p for p in self.reactor.spawned if "--worker" in p.argv]

    def test_starts_workers_with_the_same_arguments_and_a_spec(self):
        """Each worker: twistd -n revproxy, the supervisor's arguments, --worker SPEC (a
        file in the private runtime directory)."""
        first, second = self.workers()
        self.assertEqual(first.argv[:6], ["/py", "-c", first.argv[2], "--nodaemon",
                                          "--pidfile=", "revproxy"])
        self.assertEqual(first.argv[6:8], ["--config", "x.toml"])
        spec = first.argv[-1]
        self.assertTrue(spec.startswith(self.supervisor.run_dir))
        with open(spec) as f:
            self.assertEqual(json.load(f)["index"], 0)
        self.assertEqual(oct(os.stat(self.supervisor.run_dir).st_mode & 0o777), "0o700")
        self.assertEqual(first.child_fds[0], "w")  # the pipe a worker watches

    def test_crashed_worker_restarts_with_back_off(self):
        """An exit is followed by a restart after 1 s, then 2 s for the next quick one."""
        first = self.workers()[0]
        first.end(signal=9)
        self.assertEqual(len(self.workers()), 2)
        self.reactor.advance(0.99)
        self.assertEqual(len(self.workers()), 2)
        self.reactor.advance(0.02)
        self.assertEqual(len(self.workers()), 3)
        self.workers()[2].end(code=1)
        self.reactor.advance(1.5)
        self.assertEqual(len(self.workers()), 3)
        self.reactor.advance(0.6)
        self.assertEqual(len(self.workers()), 4)
        self.assertEqual(self.supervisor.slots[0].policy.restarts, 2)

    def test_stop_terms_workers_and_waits(self):
        """Stopping: SIGTERM to each worker, no restart, done when both are gone."""
        d = self.supervisor.stopService()
        first, second = self.workers()
        self.assertEqual((first.signals, second.signals), (["TERM"], ["TERM"]))
        first.end(signal=15)
        self.assertNoResult(d)
        second.end(signal=15)
        self.successResultOf(d)
        self.reactor.advance(60)
        self.assertEqual(len(self.workers()), 2)
        self.assertFalse(os.path.exists(self.supervisor.run_dir))

    def test_stragglers_are_killed_after_the_shutdown_timeout(self):
        """A worker still there shutdown_timeout + 5 s after SIGTERM gets SIGKILL."""
        d = self.supervisor.stopService()
        first, second = self.workers()
        first.end(signal=15)
        self.reactor.advance(self.config.server.shutdown_timeout + 4.9)
        self.assertEqual(second.signals, ["TERM"])
        self.reactor.advance(0.2)
        self.assertEqual(second.signals, ["TERM", "KILL"])
        second.end(signal=9)
        self.successResultOf(d)

    def test_reload_signals_only_after_the_check_passes(self):
        """SIGHUP: --check runs first; its failure signals no worker; its success HUPs all."""
        refused = self.supervisor.reload()
        check = self.reactor.spawned[-1]
        self.assertIn("--check", check.argv)
        check.proto.childDataReceived(1, b"revproxy: bad configuration: x.toml: [limits] ...\n")
        check.end(code=1)
        self.assertEqual(self.successResultOf(refused),
                         (False, "revproxy: bad configuration: x.toml: [limits] ..."))
        self.assertEqual([w.signals for w in self.workers()], [[], []])
        from dataclasses import replace

        newer = replace(self.config, server=replace(self.config.server, shutdown_timeout=7.0))
        self.on_disk = newer
        accepted = self.supervisor.reload()
        self.reactor.spawned[-1].end()
        self.assertEqual(self.successResultOf(accepted), (True, None))
        self.assertIs(self.supervisor.config, newer)
        self.assertEqual([w.signals for w in self.workers()], [["HUP"], ["HUP"]])

    def test_a_failed_spawn_is_retried_with_back_off(self):
        """spawnProcess raising (no more processes): logged, tried again after 1 s."""
        spawn = self.reactor.spawnProcess
        failing = [True]

        def flaky(*args, **kw):
            if failing:
                failing.pop()
                raise OSError(11, "Resource temporarily unavailable")
            return spawn(*args, **kw)

        self.reactor.spawnProcess = flaky
        self.workers()[0].end(signal=9)
        self.reactor.advance(1.0)  # the restart fails
        self.assertEqual(len(self.workers()), 2)
        self.assertFalse(self.supervisor.slots[0].process)
        self.reactor.advance(2.0)  # and is tried again
        self.assertEqual(len(self.workers()), 3)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_stale_runtime_dirs_are_removed(self):
        """A runtime directory whose supervisor is gone is removed at start; one whose
        supervisor runs, or that is not a supervisor's, stays."""
        from revproxy.workers.spec import WorkerSpec, write_spec
        from revproxy.workers.supervisor import remove_stale_run_dirs

        parent = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, parent, True)
        for name, pid in (("revproxy-workers-dead", 999991), ("revproxy-workers-live", 4)):
            os.mkdir(os.path.join(parent, name))
            write_spec(os.path.join(parent, name, "worker-0.json"), WorkerSpec(0, pid, "", ()))
        os.mkdir(os.path.join(parent, "revproxy-workers-empty"))
        self.assertEqual(remove_stale_run_dirs(parent, alive=lambda pid: pid == 4), 1)
        self.assertEqual(sorted(os.listdir(parent)), ["revproxy-workers-empty",
                                                      "revproxy-workers-live"])

    def test_usr1_is_passed_on(self):
        """SIGUSR1 reaches every running worker."""
        self.supervisor.reopen_logs()
        self.assertEqual([w.signals for w in self.workers()], [["USR1"], ["USR1"]])


class FakeCalls:
    """Canned answers per (method, path): a list of (status, content type, body) per worker."""

    def __init__(self, answers):
        self.answers = answers
        self.seen = []

    def call_all(self, method, uri, headers, body):
        self.seen.append((method, uri, headers, body))
        path = uri.split(b"?")[0]
        result = []
        for index, answer in enumerate(self.answers[(method, path)]):
            status, content_type, data = answer[:3]
            fields = {b"content-type": [content_type]}
            fields.update(answer[3] if len(answer) > 3 else {})
            info = {"index": index, "pid": 100 + index}
            result.append((info, status, Headers(fields) if status is not None else None,
                           data))
        return defer.succeed(result)


class FakeSupervisor:
    def __init__(self, config, reload_outcome=(True, None)):
        self.config = config
        self._outcome = reload_outcome

    def worker_sockets(self):
        return [({"index": 0, "running": True, "restarts": 0}, "/a"),
                ({"index": 1, "running": True, "restarts": 1}, "/b")]

    def check_reload(self):
        return defer.succeed(self._outcome)


def call(resource, method, path, body=b"", headers=None, request=None):
    request = request or DummyRequest(path.lstrip(b"/").split(b"/"))
    request.method, request.path, request.uri = method, path, path
    for name, value in (headers or {}).items():
        request.requestHeaders.setRawHeaders(name, [value])
    from io import BytesIO

    request.content = BytesIO(body)
    resource.render(request)
    return request.responseCode or 200, b"".join(request.written)


JSON = b"application/json"


class FanOutTests(unittest.TestCase):
    def setUp(self):
        self.config = load_config(None)

    def fan(self, answers, outcome=(True, None)):
        calls = FakeCalls(answers)
        return FanOutResource(None, FakeSupervisor(self.config, outcome), calls), calls

    def test_status_is_merged_with_worker_detail(self):
        """/api/status sums the workers' documents; the token header reaches them."""
        doc = lambda n: json.dumps({"connections": {"total": n},
                                    "listeners": {"admin": ["unix:/x"]}}).encode()
        fan, calls = self.fan({(b"GET", b"/api/status"): [(200, JSON, doc(2)),
                                                          (200, JSON, doc(3))]})
        status, body = call(fan, b"GET", b"/api/status",
                            headers={b"authorization": b"Bearer t"})
        merged = json.loads(body)
        self.assertEqual(status, 200)
        self.assertEqual(merged["connections"]["total"], 5)
        self.assertEqual(merged["workers"]["up"], 2)
        self.assertEqual(merged["listeners"]["admin"], list(self.config.admin.listen))
        self.assertEqual(calls.seen[0][2], {b"authorization": [b"Bearer t"]})

    def test_same_refusal_everywhere_is_relayed(self):
        """A 401 from every worker is the answer, as it is, with its WWW-Authenticate."""
        refusal = b'{"error": "a valid bearer token is required"}'
        fan, _ = self.fan({(b"GET", b"/api/stats"): [
            (401, JSON, refusal, {b"www-authenticate": [b"Bearer"]})] * 2})
        request = DummyRequest([b""])
        self.assertEqual(call(fan, b"GET", b"/api/stats", request=request), (401, refusal))
        self.assertEqual(request.responseHeaders.getRawHeaders(b"www-authenticate"),
                         [b"Bearer"])

    def test_wrong_method_keeps_allow(self):
        """A 405 every worker gave for a POST keeps its Allow header."""
        fan, _ = self.fan({(b"POST", b"/api/stats"): [
            (405, JSON, b'{"error": "method not allowed"}', {b"allow": [b"GET, HEAD"]})] * 2})
        request = DummyRequest([b""])
        status, _ = call(fan, b"POST", b"/api/stats", request=request)
        self.assertEqual(status, 405)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"allow"), [b"GET, HEAD"])

    def test_no_worker_answering_is_503(self):
        """Every worker down: 503 with each one's error."""
        fan, _ = self.fan({(b"GET", b"/api/stats"): [(None, JSON, "not running")] * 2})
        status, body = call(fan, b"GET", b"/api/stats")
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["workers"][0]["error"], "not running")

    def test_metrics_are_combined_with_the_supervisor_families(self):
        """/metrics sums the samples and adds revproxy_workers."""
        from prometheus_client.parser import text_string_to_metric_families

        text = b"# TYPE revproxy_requests counter\nrevproxy_requests_total 4\n"
        fan, _ = self.fan({(b"GET", b"/metrics"): [(200, b"text/plain", text)] * 2})
        status, body = call(fan, b"GET", b"/metrics")
        samples = {s.name + str(s.labels): s.value for f in
                   text_string_to_metric_families(body.decode()) for s in f.samples}
        self.assertEqual(samples["revproxy_requests_total{}"], 8)
        self.assertEqual(samples["revproxy_workers{'state': 'running'}"], 2)

    def test_actions_go_to_every_worker(self):
        """A member action is sent to each worker; same status: the first answer + each."""
        path = b"/api/members/main/a:1/drain"
        fan, calls = self.fan({(b"POST", path): [(200, JSON, b'{"state": "draining"}')] * 2})
        status, body = call(fan, b"POST", path, body=b"{}")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["state"], "draining")
        self.assertEqual(len(doc["workers"]), 2)
        self.assertEqual(calls.seen[0][3], b"{}")

    def test_refused_reload_reaches_no_worker(self):
        """POST /api/reload with a config the supervisor refuses: 409, no worker called."""
        fan, calls = self.fan({}, outcome=(False, "x.toml: [limits] bad"))
        status, body = call(fan, b"POST", b"/api/reload")
        self.assertEqual(status, 409)
        self.assertEqual(json.loads(body), {"reloaded": False, "error": "x.toml: [limits] bad",
                                            "workers": []})
        self.assertEqual(calls.seen, [])

    def test_other_paths_come_from_the_first_worker(self):
        """/openapi.json (and the dashboard) are relayed as the first running worker sent them."""
        fan, _ = self.fan({(b"GET", b"/openapi.json"): [(None, JSON, "down"),
                                                        (200, JSON, b'{"openapi": "3.0.3"}')]})
        self.assertEqual(call(fan, b"GET", b"/openapi.json"), (200, b'{"openapi": "3.0.3"}'))
