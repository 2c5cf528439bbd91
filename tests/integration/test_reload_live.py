"""SIGHUP on a real ``twistd -n revproxy`` process under load: no failed request, tunnels
survive, a broken config is refused, listeners come and go, the process stays alive."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.trial import unittest

from tests.integration.support import (
    RawClient, backend_site, connect, listen, scripted_factory, with_timeout,
)
from tests.integration.test_twistd import spawn

LISTENING = rb"listening on IPv4Address\(type='TCP', host='127\.0\.0\.1', port=(\d+)\)"
REQUEST = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"


def tunnel_backend(testcase):
    """A backend that answers 101 and then echoes raw bytes prefixed with ``echo:``."""

    def script(proto, head):
        proto.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                              b"Upgrade: websocket\r\n\r\n")
        proto.dataReceived = lambda data: proto.transport.write(b"echo:" + data)

    port = listen(scripted_factory(script, []))
    testcase.addCleanup(port.stopListening)
    return port.getHost().port


class Load:
    """``workers`` clients sending GETs over keep-alive connections (a new connection every
    ``per_connection`` requests) until ``stop()``; counts answers by backend port and failures."""

    def __init__(self, port, workers=4, per_connection=10):
        self.port = port
        self.by_backend = {}
        self.failures = []
        self.done = 0
        self._stopping = False
        self.finished = defer.gatherResults(
            [self._worker(per_connection) for _ in range(workers)])

    def stop(self):
        self._stopping = True
        return self.finished

    @defer.inlineCallbacks
    def _worker(self, per_connection):
        while not self._stopping:
            try:
                client = yield connect(self.port)
                for n in range(1, per_connection + 1):
                    client.transport.write(REQUEST)
                    responses = yield with_timeout(client.responses(n), 10)
                    head, body = responses[-1]
                    if head.status != 200:
                        self.failures.append(head.status)
                        continue
                    backend = json.loads(body)["port"]
                    self.by_backend[backend] = self.by_backend.get(backend, 0) + 1
                    self.done += 1
                client.transport.loseConnection()
                yield client.closed
            except Exception as e:  # refused, reset, closed early, timed out: all failures
                self.failures.append(repr(e))


class ReloadLiveTests(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.mktemp_dir = self.dir
        self.config = os.path.join(self.dir, "rp.toml")
        # AF_UNIX paths are short (108 bytes): not under the trial temp dir
        short = tempfile.mkdtemp(prefix="rp-")
        self.addCleanup(shutil.rmtree, short, True)
        self.socket = os.path.join(short, "rp.sock")

    def write_config(self, main_port, ws_port, extra_listen=(), broken=False):
        listen_list = ", ".join('"%s"' % d for d in ("tcp:0:interface=127.0.0.1",) + extra_listen)
        text = (
            '[server]\nlisten = [%s]\n'
            '[logging]\naccess_log = ""\n'
            '[pools.main]\nmembers = ["http://127.0.0.1:%d"]\n%s'
            '[pools.ws]\nmembers = ["http://127.0.0.1:%d"]\n'
            '[[routes]]\nname = "ws"\npath_prefix = "/ws"\npool = "ws"\n'
            '[[routes]]\nname = "all"\npool = "main"\n'
            % (listen_list, main_port, 'connect_timeout = "soon"\n' if broken else "", ws_port)
        )
        with open(self.config + ".new", "w") as f:
            f.write(text)
        os.rename(self.config + ".new", self.config)

    @defer.inlineCallbacks
    def test_sighup_reloads_under_load_without_a_failed_request(self):
        """Several SIGHUPs with edits between them, under continuous load: every request
        succeeds, traffic moves to the new pool member, an open WebSocket tunnel keeps
        relaying, a broken config is refused, a new unix: listener serves, and the process
        is still alive at the end (SIGHUP used to kill it)."""
        backend_a, backend_b = listen(backend_site()), listen(backend_site())
        self.addCleanup(backend_a.stopListening)
        self.addCleanup(backend_b.stopListening)
        port_a, port_b = backend_a.getHost().port, backend_b.getHost().port
        ws_port = tunnel_backend(self)
        self.write_config(port_a, ws_port)
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", self.config)
        port = int((yield proc.wait_for(LISTENING)).group(1))

        tunnel = yield connect(port)
        tunnel.transport.write(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                               b"Upgrade: websocket\r\n\r\n")
        [(head, _)] = yield with_timeout(tunnel.responses(1))
        self.assertEqual(head.status, 101)

        load = Load(port)
        yield pause(0.3)
        self.write_config(port_b, ws_port)
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload done \(generation 1")
        yield pause(0.3)
        self.write_config(port_a, ws_port, broken=True)
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload refused: .*rp\.toml: \[pools\.main\] connect_timeout")
        yield pause(0.3)
        self.write_config(port_b, ws_port, extra_listen=("unix:" + self.socket,))
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload done \(generation 2")
        yield pause(0.3)
        self.write_config(port_a, ws_port)
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload done \(generation 3")
        yield pause(0.3)
        yield with_timeout(load.stop(), 20)

        self.assertEqual(load.failures, [])
        self.assertGreater(load.done, 100)
        self.assertGreater(load.by_backend.get(port_a, 0), 0)
        self.assertGreater(load.by_backend.get(port_b, 0), 0)
        self.assertIn(b"reload: listener added: unix:" + self.socket.encode(), proc.output)
        self.assertIn(b"reload: listener removed: unix:" + self.socket.encode(), proc.output)
        self.assertIn(b"reload: pool main: member added: http://127.0.0.1:%d" % port_b,
                      proc.output)

        start = len(tunnel.received)
        tunnel.transport.write(b"\x81\x05hello")
        yield with_timeout(tunnel.until(lambda data: data[start:].endswith(b"hello")))
        self.assertEqual(tunnel.received[start:], b"echo:\x81\x05hello")
        tunnel.transport.loseConnection()

        self.assertFalse(proc.ended.called, "alive after four SIGHUPs")
        transport.signalProcess("TERM")
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, "SIGTERM", proc.output[-3000:])
        self.assertNotIn(b"Traceback", proc.output)

    @defer.inlineCallbacks
    def test_listener_added_on_reload_serves_and_a_busy_one_refuses_the_reload(self):
        """A unix: listener added by a reload accepts requests; a reload naming a port
        already in use is refused whole (the unix: listener of that same reload is not
        opened) and the process keeps serving."""
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        busy = listen(backend_site())
        self.addCleanup(busy.stopListening)
        ws_port = tunnel_backend(self)
        self.write_config(backend.getHost().port, ws_port)
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", self.config)
        port = int((yield proc.wait_for(LISTENING)).group(1))

        busy_endpoint = "tcp:%d:interface=127.0.0.1" % busy.getHost().port
        self.write_config(backend.getHost().port, ws_port,
                          extra_listen=("unix:" + self.socket, busy_endpoint))
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload refused: cannot listen on tcp:\d+:interface=127\.0\.0\.1: "
                            rb"Address already in use")
        for _ in range(100):  # the port unlinks its socket file one reactor turn after closing
            if not os.path.exists(self.socket):
                break
            yield pause(0.02)
        self.assertFalse(os.path.exists(self.socket), "the refused reload's listeners closed")

        self.write_config(backend.getHost().port, ws_port, extra_listen=("unix:" + self.socket,))
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload done \(generation 1")
        client = RawClient()
        yield connectProtocol(UNIXClientEndpoint(reactor, self.socket), client)
        client.transport.write(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        [(head, _)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 200)
        tcp = yield connect(port)
        tcp.transport.write(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        [(head, _)] = yield with_timeout(tcp.responses(1))
        self.assertEqual(head.status, 200)
        transport.signalProcess("TERM")
        self.assertEqual((yield with_timeout(proc.ended, 30)), "SIGTERM")


class ReopenLiveTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_sigusr1_reopens_the_access_log_after_logrotate(self):
        """The access log file is renamed, SIGUSR1 sent: the next line goes to a new file at
        the configured path, the renamed one keeps the earlier line."""
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        access = os.path.join(self.mktemp_dir, "access.log")
        config = os.path.join(self.mktemp_dir, "rp.toml")
        with open(config, "w") as f:
            f.write('[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                    '[logging]\naccess_log = "%s"\n'
                    '[pools.main]\nmembers = ["http://127.0.0.1:%d"]\n'
                    % (access, backend.getHost().port))
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", config)
        port = int((yield proc.wait_for(LISTENING)).group(1))

        @defer.inlineCallbacks
        def get(path):
            client = yield connect(port)
            client.transport.write(b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                                   % path)
            [(head, _)] = yield with_timeout(client.responses(1))
            self.assertEqual(head.status, 200)
            yield client.closed

        yield get(b"/echo/before")
        os.rename(access, access + ".1")
        transport.signalProcess(signal.SIGUSR1)
        yield proc.wait_for(rb"log files reopened: " + access.encode())
        yield get(b"/echo/after")
        transport.signalProcess("TERM")
        yield with_timeout(proc.ended, 30)
        with open(access + ".1") as f:
            rotated = f.read()
        with open(access) as f:
            fresh = f.read()
        self.assertIn("/echo/before", rotated)
        self.assertNotIn("/echo/after", rotated)
        self.assertIn("/echo/after", fresh)


def pause(seconds):
    return task.deferLater(reactor, seconds, lambda: None)

