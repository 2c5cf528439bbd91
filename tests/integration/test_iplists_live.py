"""IP lists on loopback: a denied client is closed at accept with no byte sent, an allow list
at accept, a 403 on one route while another serves, list files swapped by SIGHUP under load
with no failed request, a bad list file at start-up, and a 100,000-entry file."""

from __future__ import annotations

import os
import random
import sys
import time

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial import unittest

from revproxy.protection.iplists import build_ip_access
from revproxy.config.load import parse_config
from tests.integration.support import (
    RawClient, backend_site, connect, listen, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_reload_live import LISTENING, Load, pause
from tests.integration.test_twistd import spawn

ECHO = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
ADMIN = b"GET /cookies HTTP/1.1\r\nHost: a\r\n\r\n"


@defer.inlineCallbacks
def connect_from(source, port):
    """A RawClient connected to the proxy from the loopback address ``source``."""
    client = RawClient()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0))
    yield connectProtocol(endpoint, client)
    return client


@defer.inlineCallbacks
def get(source, port, request=ECHO):
    """One request from ``source``: the status, or None when closed without a byte."""
    client = yield connect_from(source, port)
    client.transport.write(request)
    result = yield with_timeout(defer.DeferredList([client.responses(1), client.closed],
                                                   fireOnOneCallback=True, consumeErrors=True))
    client.transport.loseConnection()
    if client.received == b"":
        return None
    [(head, _)] = result[0]
    return head.status


class AcceptLiveTests(unittest.TestCase):
    def setUp(self):
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        self.backend = backend.getHost().port

    @defer.inlineCallbacks
    def start(self, ip_lists, routes=None):
        data = proxy_config([self.backend], routes=routes)
        data["ip_lists"] = ip_lists
        _, port = yield start_proxy(self, data)
        return port

    @defer.inlineCallbacks
    def test_deny_list_at_accept_closes_without_a_byte(self):
        """127.0.0.2 is denied: its connection is closed and it receives nothing, even after
        sending a request; 127.0.0.1 on the same listener gets its 200."""
        port = yield self.start([{"name": "bad", "action": "deny", "addresses": ["127.0.0.2"]}])
        client = yield connect_from("127.0.0.2", port)
        client.transport.write(ECHO)
        received = yield with_timeout(client.closed)
        self.assertEqual(received, b"")
        self.assertEqual((yield get("127.0.0.1", port)), 200)

    @defer.inlineCallbacks
    def test_allow_list_at_accept(self):
        """Only 127.0.0.0/31 may connect: .1 is served, .3 is closed without a byte."""
        port = yield self.start([{"name": "ok", "action": "allow", "addresses": ["127.0.0.0/31"]}])
        self.assertEqual((yield get("127.0.0.1", port)), 200)
        self.assertIsNone((yield get("127.0.0.3", port)))

    @defer.inlineCallbacks
    def test_route_deny_list_403_while_another_route_serves(self):
        """127.0.0.1 is denied on route admin (403) and served on route all, on one
        keep-alive connection; 127.0.0.4 is served on admin."""
        routes = [{"name": "admin", "pool": "main", "path_prefix": "/cookies"},
                  {"name": "all", "pool": "main"}]
        port = yield self.start([{"name": "staff", "action": "deny", "addresses": ["127.0.0.1"],
                                  "routes": ["admin"]}], routes)
        client = yield connect(port)
        client.transport.write(ADMIN + ECHO)
        [(first, _), (second, _)] = yield with_timeout(client.responses(2))
        self.assertEqual((first.status, second.status), (403, 200))
        client.transport.loseConnection()
        self.assertEqual((yield get("127.0.0.4", port, ADMIN)), 200)


class ReloadFilesLiveTests(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.mktemp_dir = self.dir
        self.config = os.path.join(self.dir, "rp.toml")
        self.list_file = os.path.join(self.dir, "deny.txt")

    def write(self, path, text):
        with open(path + ".new", "w") as f:
            f.write(text)
        os.rename(path + ".new", path)

    def write_config(self, backend):
        self.write(self.config,
                   '[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                   '[logging]\naccess_log = ""\n'
                   '[pools.main]\nmembers = ["http://127.0.0.1:%d"]\n'
                   '[[ip_lists]]\nname = "blocked"\naction = "deny"\nfiles = ["deny.txt"]\n'
                   % backend)

    @defer.inlineCallbacks
    def test_sighup_swaps_list_files_under_load_without_a_failed_request(self):
        """Under continuous load from 127.0.0.1, SIGHUPs swap the deny file: 127.0.0.2 is
        refused, then served and 127.0.0.3 refused; a file with a bad line refuses the reload
        naming file, line and value and keeps the lists; no load request fails."""
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        self.write_config(backend.getHost().port)
        self.write(self.list_file, "# first\n127.0.0.2\n")
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", self.config)
        port = int((yield proc.wait_for(LISTENING)).group(1))
        self.assertIsNone((yield get("127.0.0.2", port)))
        self.assertEqual((yield get("127.0.0.3", port)), 200)

        load = Load(port)
        yield pause(0.3)
        self.write(self.list_file, "# second\n127.0.0.3/32\n")
        transport.signalProcess("HUP")
        yield proc.wait_for(rb"reload done \(generation 1")
        self.assertEqual((yield get("127.0.0.2", port)), 200)
        self.assertIsNone((yield get("127.0.0.3", port)))
        yield pause(0.3)
        self.write(self.list_file, "127.0.0.2\n127.0.0.300\n")
        transport.signalProcess("HUP")
        yield proc.wait_for(rb'reload refused: .*deny\.txt: line 2 = "127\.0\.0\.300": expected')
        self.assertIsNone((yield get("127.0.0.3", port)))
        yield pause(0.3)
        yield with_timeout(load.stop(), 20)

        self.assertEqual(load.failures, [])
        self.assertGreater(load.done, 50)
        self.assertIn(b"refused at accept on tcp:0:interface=127.0.0.1: in deny list", proc.output)
        transport.signalProcess("TERM")
        code = yield with_timeout(proc.ended, 30)
        self.assertEqual(code, "SIGTERM", proc.output[-3000:])
        self.assertNotIn(b"Traceback", proc.output)

    @defer.inlineCallbacks
    def test_bad_list_file_fails_start_up(self):
        """A list file with a bad line stops start-up naming file, line and value."""
        self.write_config(1)
        self.write(self.list_file, "10.0.0.0/8\n10.0.0.1/8\n")
        proc, _ = spawn(self, "-n", "--pidfile=", "revproxy", "--config", self.config)
        code = yield with_timeout(proc.ended, 30)
        self.assertNotEqual(code, 0)
        self.assertIn(self.list_file.encode() + b': line 2 = "10.0.0.1/8": host bits set: '
                      b'did you mean 10.0.0.0/8?', proc.output)
        self.assertNotIn(b"listening on", proc.output)
        self.assertNotIn(b"Traceback", proc.output)

    @defer.inlineCallbacks
    def test_check_reads_the_list_files(self):
        """--check reads the list files: a bad line exits non-zero naming file and line."""
        self.write_config(1)
        self.write(self.list_file, "10.0.0.0/8\nnot-an-address\n")
        proc, _ = spawn(self, "revproxy", "--check", "--config", self.config)
        code = yield with_timeout(proc.ended, 30)
        self.assertNotEqual(code, 0)
        self.assertIn(self.list_file.encode() + b': line 2 = "not-an-address"', proc.output)
        self.assertNotIn(b"Traceback", proc.output)


class LargeListTests(unittest.TestCase):
    def test_100000_entries_load_and_match(self):
        """A 100,000-line file (IPv4 addresses and blocks, IPv6 blocks) loads and every
        sampled entry matches; the load and lookup times are printed (no timed assertion)."""
        rng = random.Random(7)
        lines, samples = [], []
        for n in range(100000):
            kind = n % 4
            if kind == 3:
                value = rng.getrandbits(64) << 64
                lines.append("%x:%x:%x:%x::/64" % tuple((value >> s) & 0xFFFF
                                                       for s in (112, 96, 80, 64)))
            elif kind == 2:
                value = rng.getrandbits(24) << 8
                lines.append("%d.%d.%d.0/24" % (value >> 24, value >> 16 & 255, value >> 8 & 255))
            else:
                value = rng.getrandbits(32)
                lines.append("%d.%d.%d.%d" % (value >> 24, value >> 16 & 255, value >> 8 & 255,
                                              value & 255))
        samples = [line.split("/")[0] for line in lines[::997]]
        path = os.path.abspath("big.txt")
        with open(path, "w") as f:
            f.write("# generated\n" + "\n".join(lines) + "\n")
        data = proxy_config([1])
        data["ip_lists"] = [{"name": "big", "action": "deny", "files": [path]}]
        config = parse_config(data, "<test>")
        started = time.perf_counter()
        access = build_ip_access(config, reactor)
        loaded = time.perf_counter() - started
        gate = access.accept[config.server.listen[0]]
        started = time.perf_counter()
        for host in samples:
            self.assertFalse(gate.admits_host(host), host)
        for _ in range(100):
            for host in samples:
                gate.admits_host(host)
        per_lookup = (time.perf_counter() - started) / (101 * len(samples))
        self.assertTrue(gate.admits_host("::1"))
        started = time.perf_counter()
        build_ip_access(config, reactor, access)
        reloaded = time.perf_counter() - started
        sys.stdout.write("\n100,000 entries (%s): load %.2f s, reload unchanged %.3f s, "
                         "lookup %.2f us\n" % (sys.implementation.name, loaded, reloaded,
                                               per_lookup * 1e6))


class TLSAcceptLiveTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_deny_list_on_ssl_listener_closes_before_any_handshake(self):
        """On an ssl: listener a denied client (127.0.0.2) is closed without a byte (no
        ServerHello) while 127.0.0.1 completes TLS and gets its 200."""
        from tests.integration.test_tls_listener import ssl_listen, tls_connect, write_self_signed

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        key_path, cert_path, cert_pem = write_self_signed(directory)
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port])
        data["server"]["listen"] = [ssl_listen(key_path, cert_path)]
        data["ip_lists"] = [{"name": "bad", "action": "deny", "addresses": ["127.0.0.2"]}]
        _, port = yield start_proxy(self, data)
        raw = yield connect_from("127.0.0.2", port)
        raw.transport.write(b"\x16\x03\x01\x00\x05hello")  # the start of a TLS record
        self.assertEqual((yield with_timeout(raw.closed)), b"")
        client = yield with_timeout(tls_connect(port, cert_pem))
        client.transport.write(ECHO)
        [(head, _)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 200)
        client.transport.abortConnection()
