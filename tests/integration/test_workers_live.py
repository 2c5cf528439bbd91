"""``twistd revproxy`` with 2 workers as real processes: both serve, a killed worker is
replaced, SIGHUP under load loses nothing, a bad config reaches no worker, SIGTERM drains,
the admin listener answers for all workers, workers leave with their supervisor."""

from __future__ import annotations

import json
import os
import re
import signal
import sys

from twisted.internet import defer, protocol, reactor, task
from twisted.protocols.policies import WrappingFactory
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool, readBody

from tests.integration.support import backend_site, https_get_blocking, listen, with_timeout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = "from twisted.scripts.twistd import run; run()"

PID_PLUGIN = '''
from __future__ import annotations
import os
from twisted.plugin import IPlugin
from zope.interface import implementer
from revproxy.interfaces import IRequestHook, IRequestHookFactory
from revproxy.pipeline.hooks import RequestHook


@implementer(IRequestHook)
class WorkerPid(RequestHook):
    name = "test-worker-pid"

    def response_head(self, ctx, response):
        response.headers.append((b"x-worker-pid", str(os.getpid()).encode("ascii")))


@implementer(IPlugin, IRequestHookFactory)
class WorkerPidFactory:
    name = "test-worker-pid"
    description = "adds x-worker-pid (tests of revproxy.workers)"

    def build(self, options, reactor):
        return WorkerPid()


worker_pid = WorkerPidFactory()
'''


class Supervised(protocol.ProcessProtocol):
    """The supervisor's output, searchable; ``ended`` fires with the exit code or signal."""

    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self._waiting = []

    def outReceived(self, data):
        self.output += data
        for item in list(self._waiting):
            pattern, count, d = item
            matches = list(re.finditer(pattern, self.output))
            if len(matches) >= count:
                self._waiting.remove(item)
                d.callback(matches)

    errReceived = outReceived

    def wait_for(self, pattern, count=1, timeout=30):
        d = defer.Deferred()
        self._waiting.append((pattern, count, d))
        self.outReceived(b"")
        return with_timeout(d, timeout)

    def processEnded(self, reason):
        value = reason.value
        self.ended.callback("signal %s" % value.signal if value.signal else value.exitCode)


class Held(resource.Resource):
    """``/held``: answers only when the test releases it; ``arrived`` fires on each request."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.arrived = defer.Deferred()
        self.waiting = []

    def render_GET(self, request):
        self.waiting.append(request)
        arrived, self.arrived = self.arrived, defer.Deferred()
        arrived.callback(request)
        return server.NOT_DONE_YET

    def release(self):
        for request in self.waiting:
            request.write(b"released")
            request.finish()
        self.waiting = []


class Load:
    """``concurrency`` clients, each sending GET requests on new connections until stopped:
    counts answers, failures, and the worker pids seen."""

    def __init__(self, port, concurrency=4, path=b"/echo"):
        self._agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        self._url = b"http://127.0.0.1:%d%s" % (port, path)
        self._concurrency = concurrency
        self._running = False
        self._loops = []
        self.ok = 0
        self.failures = []
        self.pids = {}

    def start(self):
        self._running = True
        self._loops = [self._loop() for _ in range(self._concurrency)]

    def stop(self):
        self._running = False
        return defer.gatherResults(self._loops)

    @defer.inlineCallbacks
    def once(self):
        response = yield self._agent.request(b"GET", self._url)
        yield readBody(response)
        pid = (response.headers.getRawHeaders(b"x-worker-pid") or [b"?"])[0].decode()
        if response.code != 200:
            raise AssertionError("status %d" % response.code)
        return int(pid)

    @defer.inlineCallbacks
    def _loop(self):
        while self._running:
            try:
                pid = yield with_timeout(self.once(), 10)
            except Exception as e:
                self.failures.append(repr(e))
            else:
                self.ok += 1
                self.pids[pid] = self.pids.get(pid, 0) + 1

    @defer.inlineCallbacks
    def until(self, predicate, limit=20.0):
        waited = 0.0
        while not predicate():
            yield task.deferLater(reactor, 0.05, lambda: None)
            waited += 0.05
            if waited > limit:
                raise AssertionError("load: condition not met in %gs (ok %d, failures %r)"
                                     % (limit, self.ok, self.failures[:3]))


@defer.inlineCallbacks
def http(method, url, body=None, headers=None):
    from io import BytesIO

    from twisted.web.client import FileBodyProducer

    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    producer = FileBodyProducer(BytesIO(body)) if body is not None else None
    response = yield with_timeout(agent.request(method, url, headers, producer), 20)
    data = yield readBody(response)
    return response.code, response.headers, data


class SupervisorCase(unittest.TestCase):
    """A backend (with ``/held``), a config with 2 workers and the pid hook; ``start()``."""

    timeout = 120

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        plugins = os.path.join(self.dir, "plugins", "revproxy", "plugins")
        os.makedirs(plugins)
        with open(os.path.join(plugins, "test_worker_pid.py"), "w") as f:
            f.write(PID_PLUGIN)
        self.held = Held()
        site = backend_site()
        site.resource.putChild(b"held", self.held)
        wrapped = WrappingFactory(site)  # tracks the connections to close at the end
        self.backend = listen(wrapped)
        self.addCleanup(self.backend.stopListening)

        @defer.inlineCallbacks
        def close_backend_connections():  # the workers' pooled ones, killed or not
            def open_ones():
                return [p.transport for p in list(wrapped.protocols)
                        if p.transport is not None and p.transport.connected]

            for transport in open_ones():
                transport.abortConnection()
            for _ in range(100):  # aborts complete on a later reactor turn
                if not open_ones():
                    break
                yield task.deferLater(reactor, 0.02, lambda: None)

        self.addCleanup(close_backend_connections)
        self.config = os.path.join(self.dir, "rp.toml")
        self.write_config()

    def write_config(self, extra="", members=None, listen="tcp:0:interface=127.0.0.1",
                     admin="tcp:0:interface=127.0.0.1"):
        members = members or ['"http://127.0.0.1:%d"' % self.backend.getHost().port]
        with open(self.config, "w") as f:
            f.write('[server]\nlisten = ["%s"]\nworkers = 2\n'
                    'shutdown_timeout = 10\n'
                    '[admin]\nlisten = ["%s"]\n'
                    '[pools.main]\nmembers = [%s]\n'
                    '[[hooks]]\nplugin = "test-worker-pid"\n%s'
                    % (listen, admin, ", ".join(members), extra))

    @defer.inlineCallbacks
    def start(self):
        """The supervisor and its two workers, ready; sets self.port, self.admin."""
        proc = self.proc = Supervised()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [ROOT, os.path.join(self.dir, "plugins"), os.environ.get("PYTHONPATH", "")]),
            TMPDIR=self.run_parent())  # a killed supervisor's runtime directory goes with it
        self.transport = reactor.spawnProcess(
            proc, sys.executable, [sys.executable, "-c", TWISTD, "-n", "--pidfile=",
                                   "revproxy", "--config", self.config], env=env, path=self.dir)
        self.addCleanup(self.kill_all)
        [bound] = yield proc.wait_for(rb"bound \('127\.0\.0\.1', (\d+)\) \((tcp|ssl):0")
        self.port = int(bound.group(1))
        [admin] = yield proc.wait_for(rb"port=(\d+)\) \((tcp|ssl):0:interface=127\.0\.0\.1[^)]*"
                                      rb", admin\)")
        scheme = b"https" if admin.group(2) == b"ssl" else b"http"
        self.admin = b"%s://127.0.0.1:%d" % (scheme, int(admin.group(1)))
        yield proc.wait_for(rb"\[worker \d pid \d+\] .*shared with the other workers", count=2)
        self.worker_pids = self.started_pids()

    def run_parent(self):
        """A short private directory for the supervisor's runtime directory (Unix socket
        paths must stay under 108 bytes: not under the trial temp dir), removed at the end."""
        import shutil
        import tempfile

        parent = tempfile.mkdtemp(prefix="rpw-")
        self.addCleanup(shutil.rmtree, parent, True)
        return parent

    def started_pids(self):
        return {int(m.group(1)): int(m.group(2)) for m in
                re.finditer(rb"worker (\d) started \(pid (\d+)\)", self.proc.output)}

    def kill_all(self):
        pids = list(self.started_pids().values())
        if not self.proc.ended.called:
            self.transport.signalProcess("KILL")
        for pid in pids:  # the workers stop on their own when the supervisor dies; be sure
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return None if self.proc.ended.called else self.proc.ended

    @defer.inlineCallbacks
    def gone(self, pid, limit=20.0):
        waited = 0.0
        while True:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            try:  # a zombie until its parent (init) reaps it: not running either
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        return
            except OSError:
                return
            yield task.deferLater(reactor, 0.1, lambda: None)
            waited += 0.1
            if waited > limit:
                self.fail("worker %d still running %gs after its supervisor died" % (pid, limit))


class WorkersTests(SupervisorCase):
    @defer.inlineCallbacks
    def test_requests_are_served_by_both_workers(self):
        """New connections are accepted by both workers from the one shared socket; the
        admin status lists both workers with their pids."""
        yield self.start()
        load = Load(self.port, concurrency=4)
        load.start()
        yield load.until(lambda: len(load.pids) == 2 and load.ok >= 20)
        yield load.stop()
        self.assertEqual(load.failures, [])
        self.assertEqual(set(load.pids), set(self.worker_pids.values()))
        code, _, body = yield http(b"GET", self.admin + b"/status")
        self.assertEqual(code, 200, body)
        workers = json.loads(body)["workers"]
        self.assertEqual((workers["count"], workers["up"]), (2, 2))
        self.assertEqual({w["pid"] for w in workers["workers"]}, set(load.pids))

    @defer.inlineCallbacks
    def test_killed_worker_is_replaced(self):
        """kill -9 of a worker under load: the supervisor starts a new one after 1 s; the
        clients see at most their in-flight requests fail; the new worker serves."""
        yield self.start()
        load = Load(self.port, concurrency=4)
        load.start()
        yield load.until(lambda: load.ok >= 10)
        victim = self.worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        yield self.proc.wait_for(rb"worker 0 \(pid %d\) exited: killed by signal 9; "
                                 rb"restarting it in 1s" % victim)
        [_, restarted] = yield self.proc.wait_for(rb"worker 0 started \(pid (\d+)\)", count=2)
        new_pid = int(restarted.group(1))
        yield load.until(lambda: new_pid in load.pids)
        yield load.stop()
        self.assertLessEqual(len(load.failures), 4, load.failures)
        self.assertNotEqual(new_pid, victim)

    @defer.inlineCallbacks
    def test_sighup_under_load_loses_no_request(self):
        """A good config on SIGHUP: checked by the supervisor, reloaded by both workers,
        while clients keep sending: not one request fails."""
        yield self.start()
        load = Load(self.port, concurrency=4)
        load.start()
        yield load.until(lambda: load.ok >= 10)
        port = self.backend.getHost().port
        self.write_config(members=['"http://127.0.0.1:%d"' % port,
                                   '"http://localhost:%d"' % port])
        self.transport.signalProcess("HUP")
        yield self.proc.wait_for(rb"reload: the configuration checks out; signalling 2 workers")
        yield self.proc.wait_for(rb"\[worker \d pid \d+\] .*reload done \(generation 1", count=2)
        before = load.ok
        yield load.until(lambda: load.ok >= before + 10)
        yield load.stop()
        self.assertEqual(load.failures, [])

    @defer.inlineCallbacks
    def test_bad_config_on_sighup_reaches_no_worker(self):
        """A config that fails --check is refused by the supervisor (logged with its reason);
        no worker reloads; the next good config is generation 1 in each worker."""
        yield self.start()
        self.write_config(extra='[limits]\nmax_body_size = "lots"\n')
        self.transport.signalProcess("HUP")
        [refused] = yield self.proc.wait_for(rb"reload refused: (.*); no worker was signalled")
        self.assertIn(b"max_body_size", refused.group(1))
        self.assertNotIn(b"reloading the configuration", self.proc.output)
        self.write_config()
        self.transport.signalProcess("HUP")
        yield self.proc.wait_for(rb"\[worker \d pid \d+\] .*reload done \(generation 1", count=2)
        self.assertEqual(len(re.findall(rb"reloading the configuration", self.proc.output)), 2)
        # the workers kept serving
        code, headers, _ = yield http(b"GET", b"http://127.0.0.1:%d/echo" % self.port)
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_listener_change_is_refused(self):
        """A reload that changes [server] listen is refused by the supervisor: restart."""
        yield self.start()
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write(text.replace('listen = ["tcp:0:interface=127.0.0.1"]\nworkers',
                                 'listen = ["tcp:0:interface=127.0.0.2"]\nworkers'))
        self.transport.signalProcess("HUP")
        [refused] = yield self.proc.wait_for(rb"reload refused: (.*); no worker was signalled")
        self.assertIn(b"[server] listen changed", refused.group(1))

    @defer.inlineCallbacks
    def test_sigterm_lets_requests_in_flight_finish(self):
        """SIGTERM: every worker stops accepting and drains; a request in flight gets its
        whole answer; the supervisor exits once both workers are gone."""
        yield self.start()
        arrived = self.held.arrived
        pending = http(b"GET", b"http://127.0.0.1:%d/held" % self.port)
        yield with_timeout(arrived, 20)
        self.transport.signalProcess("TERM")
        yield self.proc.wait_for(rb"stopping 2 workers")
        self.held.release()
        code, _, body = yield pending
        self.assertEqual((code, body), (200, b"released"))
        result = yield with_timeout(self.proc.ended, 30)
        self.assertIn(result, (0, "signal 15"))
        self.assertEqual(len(re.findall(rb"worker \d \(pid \d+\) stopped", self.proc.output)), 2)
        self.assertNotIn(b"restarting", self.proc.output)

    @defer.inlineCallbacks
    def test_workers_stop_when_the_supervisor_dies(self):
        """kill -9 of the supervisor: its workers notice the closed pipe and exit."""
        yield self.start()
        self.transport.signalProcess("KILL")
        yield with_timeout(self.proc.ended, 20)
        for pid in self.worker_pids.values():
            yield self.gone(pid)


def tls_get(port, context, session):
    """One HTTPS GET on a new connection offering ``session``: (status, worker pid, reused,
    the connection's session). Blocking: run in a thread."""
    head, _, reused, session = https_get_blocking(port, context, session)
    pid = int(re.search(r"(?im)^x-worker-pid: (\d+)", head).group(1))
    return int(head.split()[1]), pid, reused, session


class WorkersTLSTests(SupervisorCase):
    """HTTPS with 2 workers: each worker wraps the connections it accepts from the shared
    socket, with session ticket keys derived from the supervisor's secret (docs/workers.md):
    a session issued by one worker resumes on every worker."""

    def setUp(self):
        SupervisorCase.setUp(self)
        from revproxy.testing.certs import CertificateAuthority

        ca = CertificateAuthority("workers CA", key_type="ec")
        self.ca_path = ca.write_cert(os.path.join(self.dir, "ca.pem"))
        cert, key = ca.issue(["site.test"], key_type="ec").write(self.dir, "site")
        ssl = "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (key, cert)
        self.write_config(listen=ssl, admin=ssl)

    @defer.inlineCallbacks
    def test_https_sessions_across_workers(self):
        """40 HTTPS connections offering one worker's session, 4 at a time: all answered,
        by both workers, and every one resumed."""
        import ssl

        from twisted.internet import threads

        yield self.start()
        context = ssl.create_default_context(cafile=self.ca_path)
        status, issuer, _, session = yield threads.deferToThread(tls_get, self.port, context,
                                                                 None)
        self.assertEqual(status, 200)
        results = []

        def batch():
            for _ in range(10):
                results.append(tls_get(self.port, context, session))

        yield defer.gatherResults([threads.deferToThread(batch) for _ in range(4)])
        self.assertEqual([r[0] for r in results], [200] * 40)
        self.assertEqual({r[1] for r in results}, set(self.worker_pids.values()))
        self.assertEqual([(pid, reused) for _, pid, reused, _ in results],
                         [(pid, True) for _, pid, _, _ in results])
        self.assertIn(issuer, {r[1] for r in results})

    @defer.inlineCallbacks
    def test_admin_listener_over_tls(self):
        """An ssl: admin listener is served by the supervisor over revproxy's TLS, with the
        workers' merged status behind it."""
        import ssl

        from twisted.internet import threads

        yield self.start()
        context = ssl.create_default_context(cafile=self.ca_path)
        context.check_hostname = False  # the certificate names site.test; verified by the CA
        port = int(self.admin.rsplit(b":", 1)[1])

        def get_status():
            import http.client

            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
            try:
                conn.request("GET", "/api/status")
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        status, body = yield threads.deferToThread(get_status)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["workers"]["up"], 2)
