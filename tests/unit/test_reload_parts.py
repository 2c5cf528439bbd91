"""The pieces of reload: config diff (pure), log file reopening, signal handlers."""

from __future__ import annotations

import os
import signal

from twisted.logger import LogPublisher
from twisted.trial import unittest

from revproxy.config.diff import MEMBERS, REBUILD, SAME, describe_changes, pool_change
from revproxy.config.load import parse_config
from revproxy.server.logfiles import LogFiles
from revproxy.server.signals import SignalHandlers


def config(pools=None, routes=None, listen=("tcp:8080",), **sections):
    data = {"server": {"listen": list(listen)},
            "pools": pools or {"main": {"members": ["http://10.0.0.1:80"]}}}
    if routes is not None:
        data["routes"] = routes
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data, "t.toml")


class PoolChangeTests(unittest.TestCase):
    def test_kinds(self):
        """Same pool: SAME; only members/weights: MEMBERS; any other key: REBUILD."""
        base = config().pool("main")
        more = config({"main": {"members": ["http://10.0.0.1:80",
                                            {"url": "http://10.0.0.2:80", "weight": 3}]}}
                      ).pool("main")
        slower = config({"main": {"members": ["http://10.0.0.1:80"],
                                  "connect_timeout": 9}}).pool("main")
        self.assertEqual(pool_change(base, config().pool("main")), SAME)
        self.assertEqual(pool_change(base, more), MEMBERS)
        self.assertEqual(pool_change(base, slower), REBUILD)


class DescribeChangesTests(unittest.TestCase):
    def test_nothing_changed(self):
        """The same file twice: no line."""
        self.assertEqual(describe_changes(config(), config()), [])

    def test_every_kind_of_change_has_its_line(self):
        """Listeners, pools, members, weights, routes and section keys, one line each."""
        old = config(
            pools={"main": {"members": ["http://10.0.0.1:80", "http://10.0.0.2:80"]},
                   "gone": {"members": ["http://10.0.0.9:80"]}},
            routes=[{"name": "a", "pool": "main"}, {"name": "b", "pool": "gone",
                                                     "path_prefix": "/b/"}],
        )
        new = config(
            pools={"main": {"members": [{"url": "http://10.0.0.1:80", "weight": 2},
                                        "http://10.0.0.3:80"]},
                   "fresh": {"members": ["http://10.0.0.7:80"], "balance": "least-connections"}},
            routes=[{"name": "c", "pool": "fresh", "path_prefix": "/c/"},
                    {"name": "a", "pool": "main", "path_prefix": "/"}],
            listen=("tcp:8080", "tcp:8081"),
            limits={"idle_timeout": 5},
        )
        self.assertEqual(describe_changes(old, new), [
            "listener added: tcp:8081",
            "pool main: member added: http://10.0.0.3:80",
            "pool main: member removed: http://10.0.0.2:80",
            "pool main: weight of http://10.0.0.1:80 1 -> 2",
            "pool added: fresh (http://10.0.0.7:80)",
            "pool removed: gone",
            "route added: c -> pool fresh",
            "route a changed: path_prefix",
            "route removed: b",
            "[limits] changed: idle_timeout 60.0 -> 5.0",
        ])

    def test_rebuilt_pool_names_its_changed_keys(self):
        old = config()
        new = config({"main": {"members": ["http://10.0.0.1:80"], "retries": 3}})
        self.assertEqual(describe_changes(old, new), [
            "pool main changed: retries (rebuilt: its balancer state and idle connections "
            "start afresh)"])


class LogFilesTests(unittest.TestCase):
    def test_reopen_follows_logrotate(self):
        """After the file is renamed (logrotate), reopen() sends new lines to a new file at
        the path; the renamed file keeps the earlier lines."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "access.log")
        logs = LogFiles(publisher=LogPublisher())
        self.addCleanup(logs.close)
        handle = logs.open(path)
        self.assertIs(logs.open(path), handle, "one handle per path")
        handle.write("one\n")
        os.rename(path, path + ".1")
        handle.write("two\n")
        logs.reopen()
        handle.write("three\n")
        self.assertEqual(open(path + ".1").read(), "one\ntwo\n")
        self.assertEqual(open(path).read(), "three\n")

    def test_error_log_observer_follows_the_path(self):
        """set_error_log sends events to the file; another path moves them there."""
        directory = self.mktemp()
        os.makedirs(directory)
        publisher = LogPublisher()
        logs = LogFiles(publisher=publisher)
        self.addCleanup(logs.close)
        first, second = os.path.join(directory, "a.log"), os.path.join(directory, "b.log")
        logs.set_error_log(first)
        publisher({"log_format": "hello", "log_time": 0, "log_system": "-"})
        logs.set_error_log(second)
        publisher({"log_format": "again", "log_time": 0, "log_system": "-"})
        self.assertIn("hello", open(first).read())
        self.assertNotIn("again", open(first).read())
        self.assertIn("again", open(second).read())


class FakeReactor:
    def __init__(self):
        self.calls = []

    def callFromThread(self, f, *args):
        self.calls.append(f)


class SignalHandlersTests(unittest.TestCase):
    def test_signal_schedules_the_action_in_the_reactor_and_chains(self):
        """The handler only schedules the action (callFromThread); a handler installed before
        (twistd's SIGUSR1 log rotation) is still called; uninstall restores it."""
        earlier = []
        previous = signal.signal(signal.SIGUSR2, lambda n, f: earlier.append(n))
        self.addCleanup(signal.signal, signal.SIGUSR2, previous)
        reactor = FakeReactor()
        action = object()
        handlers = SignalHandlers(reactor, {signal.SIGUSR2: action})
        handlers.install()
        os.kill(os.getpid(), signal.SIGUSR2)
        self.assertEqual(reactor.calls, [action])
        self.assertEqual(earlier, [signal.SIGUSR2])
        handlers.uninstall()
        os.kill(os.getpid(), signal.SIGUSR2)
        self.assertEqual(reactor.calls, [action])
        self.assertEqual(earlier, [signal.SIGUSR2, signal.SIGUSR2])
