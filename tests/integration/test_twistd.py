"""``twistd revproxy`` as a real process: plugin discovery, --help, bad config, quick start,
graceful shutdown on SIGTERM."""

from __future__ import annotations

import os
import re
import sys

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.integration.support import backend_site, connect, listen, with_timeout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = "from twisted.scripts.twistd import run; run()"


class TwistdProcess(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self._waiting = []

    def outReceived(self, data):
        self.output += data
        for pattern, d in list(self._waiting):
            match = re.search(pattern, self.output)
            if match:
                self._waiting.remove((pattern, d))
                d.callback(match)

    errReceived = outReceived

    def wait_for(self, pattern):
        d = defer.Deferred()
        self._waiting.append((pattern, d))
        self.outReceived(b"")
        return with_timeout(d, 20)

    def processEnded(self, reason):
        # twistd re-raises the signal that stopped it, so SIGTERM shows as that signal.
        code = reason.value.exitCode
        self.ended.callback("SIGTERM" if reason.value.signal == 15 else code)


def spawn(testcase, *args):
    proc = TwistdProcess()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    transport = reactor.spawnProcess(
        proc, sys.executable, [sys.executable, "-c", TWISTD] + list(args), env=env, path=testcase.mktemp_dir
    )

    def cleanup():
        if proc.ended.called:
            return None
        try:
            transport.signalProcess("KILL")
        except Exception:
            pass
        return proc.ended

    testcase.addCleanup(cleanup)
    return proc, transport


class TwistdTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    def test_plugin_is_discovered(self):
        """twisted.plugin finds the revproxy service maker."""
        from twisted.plugin import getPlugins
        from twisted.application.service import IServiceMaker

        names = [p.tapname for p in getPlugins(IServiceMaker)]
        self.assertIn("revproxy", names)

    @defer.inlineCallbacks
    def test_help_documents_options(self):
        """--help lists every revproxy option and exits 0."""
        proc, _ = spawn(self, "revproxy", "--help")
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, 0)
        for option in (b"--config", b"--listen", b"--upstream", b"--check"):
            self.assertIn(option, proc.output)

    @defer.inlineCallbacks
    def test_check_validates_example_config(self):
        """--check loads conf/example.toml, prints a summary and exits 0 without serving."""
        proc, _ = spawn(self, "revproxy", "--check", "--config", os.path.join(ROOT, "conf", "example.toml"))
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, 0, proc.output)
        self.assertIn(b"example.toml: OK (", proc.output)

    @defer.inlineCallbacks
    def test_bad_config_names_file_key_and_expectation(self):
        """A bad value fails start-up with file, key and expectation, and no traceback."""
        path = os.path.join(self.mktemp_dir, "bad.toml")
        with open(path, "w") as f:
            f.write('[pools.main]\nmembers = ["http://127.0.0.1:1"]\nconnect_timeout = "soon"\n')
        proc, _ = spawn(self, "-n", "--pidfile=", "revproxy", "--config", path)
        code = yield with_timeout(proc.ended, 30)
        self.assertNotEqual(code, 0)
        self.assertIn(path.encode(), proc.output)
        self.assertIn(b"connect_timeout", proc.output)
        self.assertIn(b"soon", proc.output)
        self.assertIn(b"expected", proc.output)
        self.assertNotIn(b"Traceback", proc.output)

    @defer.inlineCallbacks
    def test_shared_temp_dir_refused_at_start(self):
        """A [buffering] temp_dir that others can read (0755) stops start-up with the file,
        the key, the path and the fix, and no traceback."""
        spool = os.path.join(self.mktemp_dir, "spool")
        os.mkdir(spool)
        os.chmod(spool, 0o755)
        path = os.path.join(self.mktemp_dir, "rp.toml")
        with open(path, "w") as f:
            f.write('[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                    '[buffering]\ntemp_dir = "%s"\n'
                    '[pools.main]\nmembers = ["http://127.0.0.1:1"]\n' % spool)
        proc, _ = spawn(self, "-n", "--pidfile=", "revproxy", "--config", path)
        code = yield with_timeout(proc.ended, 30)
        self.assertNotEqual(code, 0)
        self.assertIn(path.encode(), proc.output)
        self.assertIn(b"[buffering] temp_dir", proc.output)
        self.assertIn(b"chmod 700 " + spool.encode(), proc.output)
        self.assertNotIn(b"listening on", proc.output)
        self.assertNotIn(b"Traceback", proc.output)

    @defer.inlineCallbacks
    def test_quick_start_proxies_and_sigterm_drains(self):
        """--listen/--upstream proxy a real backend; SIGTERM lets the process exit cleanly."""
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        proc, transport = spawn(
            self, "-n", "--pidfile=", "revproxy", "--listen", "tcp:0:interface=127.0.0.1",
            "--upstream", "http://127.0.0.1:%d" % backend.getHost().port,
        )
        match = yield proc.wait_for(rb"listening on IPv4Address\(type='TCP', host='127\.0\.0\.1', port=(\d+)\)")
        port = int(match.group(1))
        client = yield connect(port)
        client.transport.write(b"GET /size/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        [(head, body)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 200)
        self.assertEqual(len(body), 5)
        yield proc.wait_for(rb'"GET /size/5 HTTP/1.1" 200 5 .* upstream=127\.0\.0\.1:\d+')
        transport.signalProcess("TERM")
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, "SIGTERM", proc.output)
        self.assertIn(b"Server Shut Down", proc.output)
        yield with_timeout(client.closed)


    @defer.inlineCallbacks
    def test_pypy_runs_with_a_bigger_nursery(self):
        """Started as the ``twistd`` script, the proxy on PyPy runs itself again with
        PYPY_GC_NURSERY set (revproxy/nursery.py; the same process id), says so in its log
        and serves; on CPython it leaves its environment alone."""
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.assertTrue(os.path.isfile(twistd), "scripts/setup-env installs %s" % twistd)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        proc = TwistdProcess()
        env = {k: v for k, v in os.environ.items() if k != "PYPY_GC_NURSERY"}
        transport = reactor.spawnProcess(
            proc, sys.executable,
            [sys.executable, twistd, "-n", "--pidfile=", "revproxy", "--listen",
             "tcp:0:interface=127.0.0.1", "--upstream",
             "http://127.0.0.1:%d" % backend.getHost().port], env=env, path=self.mktemp_dir)
        def cleanup():
            if not proc.ended.called:
                transport.signalProcess("KILL")
                return proc.ended
        self.addCleanup(cleanup)
        match = yield proc.wait_for(rb"port=(\d+)\)")
        with open("/proc/%d/environ" % transport.pid, "rb") as f:
            seen = dict(item.partition(b"=")[::2] for item in f.read().split(b"\0") if item)
        if sys.implementation.name == "pypy":
            from revproxy.nursery import NURSERY

            self.assertEqual(seen.get(b"PYPY_GC_NURSERY"), NURSERY.encode())
            yield proc.wait_for(rb"gc: PyPy nursery " + NURSERY.encode())
        else:
            self.assertNotIn(b"PYPY_GC_NURSERY", seen)
            self.assertNotIn(b"nursery", proc.output)
        client = yield connect(int(match.group(1)))
        client.transport.write(b"GET /size/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        [(head, body)] = yield with_timeout(client.responses(1))
        self.assertEqual((head.status, len(body)), (200, 5))
        transport.signalProcess("TERM")
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, "SIGTERM", proc.output)


class ListenFailureTests(unittest.TestCase):
    """A listener that cannot bind ends start-up: non-zero exit, one line naming it and why."""

    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)
        self.busy = listen(protocol.Factory())
        self.addCleanup(self.busy.stopListening)
        self.endpoint = "tcp:%d:interface=127.0.0.1" % self.busy.getHost().port

    @defer.inlineCallbacks
    def assert_refused(self, proc):
        code = yield with_timeout(proc.ended, 30)
        self.assertNotEqual(code, 0, proc.output)
        self.assertNotEqual(code, "SIGTERM", proc.output)
        self.assertRegex(proc.output.decode(), r"cannot listen on %s: Address already in use"
                         % re.escape(self.endpoint))
        self.assertNotIn(b"Traceback", proc.output)

    @defer.inlineCallbacks
    def test_proxy_port_in_use_fails_start_up(self):
        """--listen on a port already bound: the process exits non-zero at once."""
        proc, _ = spawn(self, "-n", "--pidfile=", "revproxy", "--listen", self.endpoint,
                        "--upstream", "http://127.0.0.1:1")
        yield self.assert_refused(proc)

    @defer.inlineCallbacks
    def test_admin_port_in_use_fails_start_up(self):
        """[admin] listen on a port already bound: the same, and the proxy port is not kept."""
        config = os.path.join(self.mktemp_dir, "rp.toml")
        with open(config, "w") as f:
            f.write('[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                    '[admin]\nlisten = ["%s"]\n'
                    '[pools.main]\nmembers = ["http://127.0.0.1:1"]\n' % self.endpoint)
        proc, _ = spawn(self, "-n", "--pidfile=", "revproxy", "--config", config)
        yield self.assert_refused(proc)


class InstalledLayoutTests(unittest.TestCase):
    def test_plugin_found_after_plain_install(self):
        """After a plain (non-editable) install, away from the source tree, twisted.plugin
        finds `revproxy` and the embedded default config loads from the installed package."""
        import subprocess

        target = os.path.abspath(self.mktemp())
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
             "--disable-pip-version-check", "-q", "--target", target, ROOT],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
        )
        self.assertEqual(install.returncode, 0, install.stdout[-3000:])
        self.assertFalse(os.path.exists(os.path.join(target, "twisted", "plugins", "__init__.py")))
        probe = (
            "import revproxy, sys\n"
            "from twisted.plugin import getPlugins\n"
            "from twisted.application.service import IServiceMaker\n"
            "from revproxy.config.load import load_config\n"
            "assert revproxy.__file__.startswith(sys.argv[1]), revproxy.__file__\n"
            "assert 'revproxy' in [p.tapname for p in getPlugins(IServiceMaker)]\n"
            "import twisted.plugins.revproxy_plugin as plugin\n"
            "assert plugin.__file__.startswith(sys.argv[1]), plugin.__file__\n"
            "print(load_config(None).source, load_config(None).demo.enabled)\n"
        )
        env = dict(os.environ, PYTHONPATH=target)
        run = subprocess.run([sys.executable, "-c", probe, target], cwd=target, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout[-3000:])
        self.assertEqual(run.stdout.split(), [b"<embedded>", b"True"])


class TwistdLoggingTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def test_logfile_and_json_access_log(self):
        """twistd's --logfile takes the error log; a JSON access log file gets one object
        per request with the upstream member and the request id."""
        import json

        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        access = os.path.join(self.mktemp_dir, "access.log")
        logfile = os.path.join(self.mktemp_dir, "twistd.log")
        config = os.path.join(self.mktemp_dir, "rp.toml")
        with open(config, "w") as f:
            f.write(
                '[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                '[logging]\naccess_log = "%s"\naccess_format = "json"\n'
                '[pools.main]\nmembers = ["http://127.0.0.1:%d"]\n'
                % (access, backend.getHost().port)
            )
        proc, transport = spawn(self, "-n", "--pidfile=", "--logfile", logfile,
                                "revproxy", "--config", config)
        port = None
        for _ in range(200):  # bounded wait for the log line (the log is a file here)
            if os.path.exists(logfile):
                match = re.search(rb"port=(\d+)\) \(tcp:0", open(logfile, "rb").read())
                if match:
                    port = int(match.group(1))
                    break
            yield deferLater(0.05)
        self.assertIsNotNone(port, "no listening line in the log file")
        client = yield connect(port)
        client.transport.write(b"GET /size/3 HTTP/1.1\r\nHost: a\r\nX-Request-ID: t1\r\n\r\n")
        [(head, body)] = yield with_timeout(client.responses(1))
        client.transport.loseConnection()
        transport.signalProcess("TERM")
        yield with_timeout(proc.ended, 30)
        [line] = open(access).read().splitlines()
        record = json.loads(line)
        self.assertEqual(record["status"], 200)
        self.assertEqual(record["upstream"], "127.0.0.1:%d" % backend.getHost().port)
        self.assertEqual(len(record["request_id"]), 32)


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)
