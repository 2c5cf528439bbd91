"""The pure parts of the supervisor: restart back-off, the worker count, listener
descriptions as sockets, the worker spec file, the reload's binding check."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from dataclasses import replace

from hypothesis import given, strategies as st
from twisted.trial import unittest

from revproxy.workers.backoff import RestartPolicy
from revproxy.workers.count import parse_workers
from revproxy.workers.endpoints import bind_spec, split_description
from revproxy.workers.spec import (
    FIRST_FD, InheritedSocket, WorkerSpec, admin_endpoint, child_fds, read_spec, socket_path,
    write_spec,
)
from revproxy.workers.validate import binding_change


class RestartPolicyTests(unittest.TestCase):
    def test_quick_exits_double_the_delay_up_to_thirty_seconds(self):
        """A worker that keeps dying is restarted after 1, 2, 4, 8, 16, 30, 30 s."""
        policy = RestartPolicy()
        now, delays = 0.0, []
        for _ in range(7):
            policy.started(now)
            now += 0.5
            delay = policy.exited(now)
            delays.append(delay)
            now += delay
        self.assertEqual(delays, [1, 2, 4, 8, 16, 30, 30])
        self.assertEqual(policy.restarts, 7)

    def test_a_stable_minute_resets_the_back_off(self):
        """After running 60 s, the next exit is restarted after 1 s again."""
        policy = RestartPolicy()
        for now in (0.0, 2.0, 5.0):
            policy.started(now)
            policy.exited(now + 0.1)
        policy.started(100.0)
        self.assertEqual(policy.exited(160.0), 1.0)
        policy.started(161.0)
        self.assertEqual(policy.exited(161.5), 2.0)

    def test_fifty_nine_seconds_is_not_stable(self):
        """An exit just before the stable minute keeps doubling."""
        policy = RestartPolicy()
        policy.started(0.0)
        policy.exited(1.0)
        policy.started(2.0)
        self.assertEqual(policy.exited(61.9), 2.0)

    @given(st.lists(st.tuples(st.floats(0, 200), st.floats(0, 200)), max_size=30))
    def test_delay_always_within_bounds(self, runs):
        """Whatever the run lengths, each delay is between 1 and 30 s."""
        policy, now = RestartPolicy(), 0.0
        for run, pause in runs:
            policy.started(now)
            now += run
            delay = policy.exited(now)
            self.assertTrue(1.0 <= delay <= 30.0)
            now += pause


class WorkerCountTests(unittest.TestCase):
    def test_numbers_and_auto(self):
        """A count, its text, or "auto" (the cores; 1 when unknown)."""
        self.assertEqual(parse_workers(3), 3)
        self.assertEqual(parse_workers("4"), 4)
        self.assertEqual(parse_workers("auto", lambda: 8), 8)
        self.assertEqual(parse_workers("AUTO", lambda: None), 1)

    def test_bad_values_say_what_is_expected(self):
        """0, negative, booleans, floats and words are refused with the expectation."""
        for bad in (0, -1, True, 2.5, "two", "", 100000):
            with self.assertRaises(ValueError) as caught:
                parse_workers(bad)
            self.assertIn('or "auto"', str(caught.exception))


class EndpointTests(unittest.TestCase):
    def test_split_honours_escaped_colons(self):
        """``\\:`` is a colon inside a value; keyword and positional parts are told apart."""
        self.assertEqual(split_description(r"tcp6:8080:interface=\:\:1:backlog=7"),
                         ("tcp6", ["8080"], {"interface": "::1", "backlog": "7"}))

    def test_tcp_tcp6_and_port_keyword(self):
        """tcp: binds IPv4 (all interfaces by default), tcp6: IPv6, with the backlog."""
        spec = bind_spec("tcp:8080:interface=127.0.0.1", 100)
        self.assertEqual((spec.family, spec.address, spec.backlog),
                         (socket.AF_INET, ("127.0.0.1", 8080), 100))
        self.assertEqual(bind_spec("tcp:port=81:backlog=5", 100).address, ("", 81))
        self.assertEqual(bind_spec("tcp:port=81:backlog=5", 100).backlog, 5)
        self.assertEqual(bind_spec(r"tcp6:8443:interface=\:\:1", 9).family, socket.AF_INET6)

    def test_tls_descriptions_bind_their_tcp_endpoint(self):
        """An ssl: listener's socket is its plain TCP port and interface."""
        spec = bind_spec("ssl:8443:interface=127.0.0.1:privateKey=k.pem:certKey=c.pem", 10)
        self.assertEqual(spec.address, ("127.0.0.1", 8443))

    def test_proxy_protocol_listeners_bind_their_endpoint(self):
        """haproxy:tcp:... binds the TCP endpoint after the prefix."""
        spec = bind_spec("haproxy:tcp:8081:interface=127.0.0.1", 10)
        self.assertEqual((spec.family, spec.address), (socket.AF_INET, ("127.0.0.1", 8081)))

    def test_other_endpoints_are_refused_with_a_reason(self):
        """unix: and unknown types cannot be shared: the message names the description."""
        for description in ("unix:/tmp/x.sock", "systemd:domain=INET:index=0"):
            with self.assertRaises(ValueError) as caught:
                bind_spec(description, 10)
            self.assertIn(description, str(caught.exception))
        with self.assertRaises(ValueError):
            bind_spec("tcp:http", 10)


class SpecTests(unittest.TestCase):
    def test_round_trip_private_file(self):
        """The spec file is 0600 and reads back as written."""
        directory = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(directory))
        path = os.path.join(directory, "w.json")
        spec = WorkerSpec(1, 42, admin_endpoint(directory, 1),
                          (InheritedSocket("proxy", "tcp:80", 3, int(socket.AF_INET)),),
                          bytes(range(32)))
        write_spec(path, spec)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(read_spec(path), spec)
        self.assertEqual(socket_path(spec.admin), os.path.join(directory, "worker-1.sock"))

    def test_unreadable_spec_is_a_value_error(self):
        """A missing or malformed file: ValueError naming it."""
        with self.assertRaises(ValueError) as caught:
            read_spec("/nonexistent/spec.json")
        self.assertIn("/nonexistent/spec.json", str(caught.exception))

    def test_child_fds_number_sockets_from_three(self):
        """The i-th parent socket is fd 3+i in every worker; stdio is piped."""
        mapping, inherited = child_fds([(("proxy", "a"), 17, 2), (("proxy", "b"), 9, 10)])
        self.assertEqual(mapping, {0: "w", 1: "r", 2: "r", FIRST_FD: 17, FIRST_FD + 1: 9})
        self.assertEqual([(s.description, s.fd) for s in inherited], [("a", 3), ("b", 4)])


class BindingChangeTests(unittest.TestCase):
    def setUp(self):
        from revproxy.config.load import load_config

        self.config = load_config(None)

    def test_same_listeners_pass(self):
        """Other changes (pools, routes...) are the workers' to reload."""
        self.assertIsNone(binding_change(self.config, replace(self.config, pools=())))

    def test_changed_listeners_are_refused(self):
        """A new [server] listen, [admin] listen or backlog needs a restart."""
        server = self.config.server
        for changed in (replace(self.config, server=replace(server, listen=("tcp:1",))),
                        replace(self.config, server=replace(server, backlog=12)),
                        replace(self.config, admin=replace(self.config.admin,
                                                           listen=("tcp:2",)))):
            self.assertIn("restart", binding_change(self.config, changed))


class WorkerConfigTests(unittest.TestCase):
    def test_worker_config(self):
        """A worker's config: admin on its private socket, no demo backends, a disk store in
        a directory of its own; a memory store unchanged."""
        from revproxy.config.load import load_config
        from revproxy.workers.compose import worker_loader

        base = load_config(None)
        disk = replace(base, cache=replace(base.cache, store="disk",
                                           store_options=(("max_bytes", 10), ("path", "/c"))))
        spec = WorkerSpec(3, 1, "unix:/run/x/worker-3.sock:mode=600", ())
        config = worker_loader(lambda: disk, spec)()
        self.assertEqual(config.admin.listen, ("unix:/run/x/worker-3.sock:mode=600",))
        self.assertFalse(config.demo.enabled)
        self.assertEqual(dict(config.cache.store_options),
                         {"max_bytes": 10, "path": "/c/worker-3"})
        memory = replace(base, cache=replace(base.cache, store="memory"))
        self.assertEqual(worker_loader(lambda: memory, spec)().cache, memory.cache)


class OptionTests(unittest.TestCase):
    def test_workers_option(self):
        """--workers takes a count or auto and wins over [server] workers; a bad value is a
        usage error naming the option; the arguments are kept for the workers."""
        from twisted.python import usage

        from revproxy.tap import Options
        from revproxy.workers.compose import workers_wanted

        options = Options()
        options.parseOptions(["--workers", "3"])
        self.assertEqual(workers_wanted(options), 3)
        self.assertEqual(options.argv, ["--workers", "3"])
        plain = Options()
        plain.parseOptions([])
        self.assertEqual(workers_wanted(plain), plain.config.server.workers)
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--workers", "0"])
        self.assertIn("--workers", str(caught.exception))
        worker = Options()
        worker.parseOptions(["--workers", "3", "--worker", "/x/spec.json"])
        self.assertEqual(workers_wanted(worker), 1)
