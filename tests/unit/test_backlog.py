"""Listen backlogs: the system maximum by default, ``[server] backlog``, explicit ``backlog=``."""

from __future__ import annotations

import os

from twisted.trial import unittest

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.server.backlog import FALLBACK_BACKLOG, system_backlog, with_backlog
from tests.unit.world import World, config_dict


class WithBacklogTests(unittest.TestCase):
    def test_system_maximum_appended_by_default(self):
        """No backlog anywhere: the system's is appended to the endpoint string."""
        self.assertEqual(with_backlog("tcp:8080:interface=127.0.0.1", 0, 4096),
                         ("tcp:8080:interface=127.0.0.1:backlog=4096", 4096))
        self.assertEqual(with_backlog("unix:/run/rp.sock", 0, 1024),
                         ("unix:/run/rp.sock:backlog=1024", 1024))

    def test_server_backlog_beats_the_system_value(self):
        self.assertEqual(with_backlog("tcp:80", 200, 4096), ("tcp:80:backlog=200", 200))

    def test_explicit_backlog_in_the_string_wins(self):
        """backlog= in the endpoint string is kept as written, even with [server] backlog."""
        self.assertEqual(with_backlog("tcp:80:backlog=77:interface=127.0.0.1", 200, 4096),
                         ("tcp:80:backlog=77:interface=127.0.0.1", 77))

    def test_escaped_colon_is_not_a_separator(self):
        """An escaped colon inside a value does not start a backlog= part."""
        description = r"tcp6:80:interface=\:\:1"
        self.assertEqual(with_backlog(description, 0, 10), (description + ":backlog=10", 10))


class SystemBacklogTests(unittest.TestCase):
    def test_reads_somaxconn(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("8192\n")
        self.assertEqual(system_backlog(path), 8192)

    def test_falls_back_when_unreadable_or_odd(self):
        """A missing file or a value that is not a positive integer: 4096."""
        self.assertEqual(system_backlog(os.path.join(self.mktemp(), "missing")), FALLBACK_BACKLOG)
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("many\n")
        self.assertEqual(system_backlog(path), FALLBACK_BACKLOG)
        self.assertEqual(FALLBACK_BACKLOG, 4096)


class BacklogConfigTests(unittest.TestCase):
    def test_bad_backlog_in_endpoint_names_the_key(self):
        data = config_dict()
        data["server"]["listen"] = ["tcp:80:backlog=lots"]
        with self.assertRaises(ConfigError) as caught:
            parse_config(data, "t.toml")
        self.assertIn('[server] listen #1 = "tcp:80:backlog=lots"', str(caught.exception))
        self.assertIn("backlog=N", str(caught.exception))

    def test_server_backlog_key(self):
        self.assertEqual(parse_config(config_dict(server={"backlog": 512}), "t").server.backlog, 512)
        with self.assertRaises(ConfigError):
            parse_config(config_dict(server={"backlog": -1}), "t")


class ListenerBacklogTests(unittest.TestCase):
    def test_listeners_listen_with_the_chosen_backlog(self):
        """The proxy and admin listeners reach the reactor with the backlog chosen."""
        data = config_dict(server={"listen": ["tcp:8080:interface=127.0.0.1",
                                              "tcp:8081:interface=127.0.0.1:backlog=9"],
                                   "backlog": 300},
                           admin={"listen": ["tcp:9901:interface=127.0.0.1"]})
        world = World(self, data)
        world.start()
        self.assertEqual(sorted((port, backlog) for port, _, backlog, _ in world.reactor.tcpServers),
                         [(8080, 300), (8081, 9), (9901, 300)])
