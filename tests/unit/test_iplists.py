"""IP lists: the [[ip_lists]] config, list files, the allow/deny semantics, the refusal at
accept (ProxyFactory) and the 403 per route, and a reload that swaps the lists."""

from __future__ import annotations

import os

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.protection.iplists import build_ip_access
from revproxy.protection.listfiles import ListFileCache
from revproxy.protection.logthrottle import LogThrottle
from revproxy.server.protocol import ProxyFactory
from tests.unit.world import Transport, World, config_dict

PUBLIC = "tcp:0:interface=127.0.0.1"
INTERNAL = "tcp:1:interface=127.0.0.1"
GET_ADMIN = b"GET /admin/x HTTP/1.1\r\nHost: a.test\r\n\r\n"
GET_OTHER = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"


def config(ip_lists, listen=(PUBLIC, INTERNAL), source="<test>"):
    data = config_dict(routes=[{"name": "admin", "pool": "main", "path_prefix": "/admin"},
                               {"name": "all", "pool": "main"}],
                       server={"listen": list(listen)})
    data["ip_lists"] = ip_lists
    data["buffering"] = {"temp_dir": "tmp"}
    return parse_config(data, source)


def access(ip_lists, **kw):
    return build_ip_access(config(ip_lists, **kw), Clock())


def messages(logs):
    return [formatEvent(event) for event in logs]


class ConfigTests(unittest.TestCase):
    def assert_refused(self, ip_lists, *fragments, **kw):
        with self.assertRaises(ConfigError) as caught:
            access(ip_lists, **kw)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))
        return str(caught.exception)

    def test_inline_entry_error_names_key_item_and_value(self):
        """A bad inline address names the list, the item number and the value."""
        self.assert_refused([{"name": "x", "action": "deny", "addresses": ["10.0.0.0/8", "10.1"]}],
                            '[[ip_lists]] #1 (x) addresses #2 = "10.1"', "expected an IPv4")

    def test_action_name_and_content_required(self):
        """action must be allow|deny; a name is unique; addresses or files must be given."""
        self.assert_refused([{"name": "x", "action": "block", "addresses": []}],
                            "(x) action", "allow, deny")
        self.assert_refused([{"name": "x", "action": "deny", "addresses": []},
                             {"name": "x", "action": "deny", "addresses": []}],
                            "#2 name", "no other")
        self.assert_refused([{"name": "x", "action": "deny"}], "(x) addresses: missing")
        self.assert_refused([{"name": "x", "action": "deny", "files": [], "color": 1}],
                            "color", "unknown key")

    def test_unknown_listener_and_route_fail(self):
        """A scope naming no configured listener or route fails, listing the known ones."""
        self.assert_refused([{"name": "x", "action": "deny", "addresses": [],
                              "listeners": ["tcp:9"]}],
                            '(x) listeners #1 = "tcp:9"', PUBLIC)
        self.assert_refused([{"name": "x", "action": "deny", "addresses": [],
                              "routes": ["nope"]}],
                            '(x) routes #1 = "nope"', "admin, all")

    def test_file_line_error_names_file_line_and_value(self):
        """A bad line in a list file names the file, the line number and the value."""
        with open("bad.txt", "w") as f:
            f.write("# office\n10.0.0.0/8  # comment\n\n192.0.2.300\n")
        message = self.assert_refused(
            [{"name": "x", "action": "deny", "files": ["bad.txt"]}], os.path.abspath("bad.txt"))
        self.assertIn('line 4 = "192.0.2.300": expected an IPv4', message)

    def test_missing_file_names_the_key(self):
        """A file that cannot be read names the config key and the reason."""
        self.assert_refused([{"name": "x", "action": "deny", "files": ["none.txt"]}],
                            "(x) files #1", "cannot read it: No such file")

    def test_relative_files_from_the_config_directory(self):
        """A relative path in a config file is taken from that file's directory."""
        os.mkdir("conf")
        with open(os.path.join("conf", "deny.txt"), "w") as f:
            f.write("192.0.2.0/24\n")
        result = access([{"name": "x", "action": "deny", "files": ["deny.txt"]}],
                        source=os.path.join("conf", "rp.toml"))
        self.assertFalse(result.accept[PUBLIC].admits_host("192.0.2.9"))

    def test_file_comments_blank_lines_and_ipv6(self):
        """Comments, blank lines and CRLF are skipped; v4 and v6 entries both load."""
        with open("list.txt", "w") as f:
            f.write("# header\r\n192.0.2.7\r\n\r\n  2001:db8::/32 # doc\r\n")
        matcher = ListFileCache().load(os.path.abspath("list.txt"), "k", "<test>")
        self.assertEqual(matcher.entries, 2)
        self.assertTrue(matcher.matches("2001:db8::1"))
        self.assertTrue(matcher.matches("192.0.2.7"))

    def test_unchanged_file_not_parsed_again_changed_file_is(self):
        """The cache returns the same matcher while the bytes are the same, a new one after."""
        cache = ListFileCache()
        path = os.path.abspath("list.txt")
        with open(path, "w") as f:
            f.write("192.0.2.7\n")
        first = cache.load(path, "k", "<test>")
        self.assertIs(cache.load(path, "k", "<test>"), first)
        with open(path, "w") as f:
            f.write("192.0.2.8\n")  # same size, same second: content decides
        second = cache.load(path, "k", "<test>")
        self.assertTrue(second.matches("192.0.2.8"))
        self.assertFalse(second.matches("192.0.2.7"))


class SemanticsTests(unittest.TestCase):
    def test_deny_list_refuses_its_addresses_only(self):
        """With only a deny list, its addresses are refused and every other passes."""
        gate = access([{"name": "bad", "action": "deny", "addresses": ["192.0.2.0/24"]}]
                      ).accept[PUBLIC]
        self.assertFalse(gate.admits_host("192.0.2.1"))
        self.assertTrue(gate.admits_host("198.51.100.1"))

    def test_allow_lists_admit_only_their_addresses_deny_wins(self):
        """With allow lists, only addresses in one of them pass; deny wins over allow."""
        gate = access([{"name": "office", "action": "allow", "addresses": ["10.0.0.0/8"]},
                       {"name": "vpn", "action": "allow", "addresses": ["2001:db8::/32"]},
                       {"name": "bad", "action": "deny", "addresses": ["10.6.6.6"]}]
                      ).accept[PUBLIC]
        self.assertTrue(gate.admits_host("10.1.2.3"))
        self.assertTrue(gate.admits_host("::ffff:10.1.2.3"))
        self.assertTrue(gate.admits_host("2001:db8::7"))
        self.assertFalse(gate.admits_host("192.0.2.1"))
        self.assertFalse(gate.admits_host("10.6.6.6"))
        self.assertEqual(gate.reason_host("10.6.6.6"), 'in deny list "bad"')
        self.assertEqual(gate.reason_host("192.0.2.1"), 'in no allow list ("office", "vpn")')

    def test_peer_without_ip_is_in_no_list(self):
        """A unix socket peer passes deny lists and is refused by allow lists."""
        deny = access([{"name": "d", "action": "deny", "addresses": ["0.0.0.0/0", "::/0"]}])
        allow = access([{"name": "a", "action": "allow", "addresses": ["0.0.0.0/0", "::/0"]}])
        self.assertFalse(deny.refuses(PUBLIC, ""))
        self.assertTrue(allow.refuses(PUBLIC, ""))

    def test_scopes(self):
        """Unscoped lists apply at accept on every listener; listeners-only lists on theirs;
        route lists per request on their routes, on every listener or only the named ones."""
        result = access([
            {"name": "everywhere", "action": "deny", "addresses": ["192.0.2.1"]},
            {"name": "public", "action": "deny", "addresses": ["192.0.2.2"],
             "listeners": [PUBLIC]},
            {"name": "admin", "action": "allow", "addresses": ["10.0.0.0/8"],
             "routes": ["admin"]},
            {"name": "admin-public", "action": "deny", "addresses": ["10.9.0.0/16"],
             "routes": ["admin"], "listeners": [PUBLIC]},
        ])
        self.assertTrue(result.refuses(PUBLIC, "192.0.2.1"))
        self.assertTrue(result.refuses(INTERNAL, "192.0.2.1"))
        self.assertTrue(result.refuses(PUBLIC, "192.0.2.2"))
        self.assertFalse(result.refuses(INTERNAL, "192.0.2.2"))
        self.assertFalse(result.refuses(PUBLIC, "10.9.1.1"))  # route lists: not at accept
        self.assertIsNone(result.route_refusal(PUBLIC, "admin", "10.1.1.1"))
        self.assertIsNone(result.route_refusal(INTERNAL, "admin", "10.9.1.1"))
        self.assertIn('in deny list "admin-public"',
                      result.route_refusal(PUBLIC, "admin", "10.9.1.1"))
        self.assertIn("192.0.2.5 refused on route admin: in no allow list",
                      result.route_refusal(INTERNAL, "admin", "192.0.2.5"))
        self.assertIsNone(result.route_refusal(PUBLIC, "all", "192.0.2.5"))


class LogThrottleTests(unittest.TestCase):
    def test_bounded_per_window_and_counts_the_rest(self):
        """burst lines per window; the suppressed ones are counted for the next line."""
        clock = Clock()
        throttle = LogThrottle(clock, burst=2, window=10)
        self.assertEqual([throttle.allow() for _ in range(5)], [True, True, False, False, False])
        clock.advance(9.9)
        self.assertFalse(throttle.allow())
        clock.advance(0.1)
        self.assertTrue(throttle.allow())
        self.assertEqual(throttle.take_suppressed(), 4)
        self.assertEqual(throttle.take_suppressed(), 0)


def world_data(ip_lists):
    data = config_dict(routes=[{"name": "admin", "pool": "main", "path_prefix": "/admin"},
                               {"name": "all", "pool": "main"}],
                       server={"listen": [PUBLIC, INTERNAL]})
    data["ip_lists"] = ip_lists
    return data


class AcceptTests(unittest.TestCase):
    def build(self, world, listener=PUBLIC, host="192.0.2.1", scheme="http"):
        factory = ProxyFactory(world.service._holder, scheme, listener)
        address = (IPv6Address("TCP", host, 4000) if ":" in host else
                   IPv4Address("TCP", host, 4000))
        return factory.buildProtocol(address)

    def test_refused_at_accept_is_none_and_logged_with_a_bound(self):
        """A denied peer gets no protocol (the port closes it at once); the log lines are
        bounded and the next one counts the ones held back."""
        world = World(self, world_data([{"name": "bad", "action": "deny",
                                         "addresses": ["192.0.2.0/24"]}]))
        with capturedLogs() as logs:
            results = [self.build(world) for _ in range(25)]
        self.assertEqual(results, [None] * 25)
        lines = [m for m in messages(logs) if "refused at accept" in m]
        self.assertEqual(len(lines), 10)
        self.assertIn('192.0.2.1 refused at accept on %s: in deny list "bad"' % PUBLIC, lines[0])
        world.reactor.advance(10)
        with capturedLogs() as logs:
            self.build(world)
        self.assertIn("(and 15 more refusals not logged)", " ".join(messages(logs)))
        self.assertIsNotNone(self.build(world, host="198.51.100.1"))
        self.assertIsNotNone(self.build(world, host="::ffff:198.51.100.1"))
        self.assertIsNone(self.build(world, host="::ffff:192.0.2.1"))

    def test_listener_scoped_list_leaves_other_listeners_alone(self):
        """A list naming one listener refuses there only."""
        world = World(self, world_data([{"name": "bad", "action": "allow",
                                         "addresses": ["10.0.0.0/8"], "listeners": [INTERNAL]}]))
        self.assertIsNone(self.build(world, listener=INTERNAL))
        self.assertIsNotNone(self.build(world, listener=INTERNAL, host="10.0.0.1"))
        self.assertIsNotNone(self.build(world, listener=PUBLIC))

    def test_tls_listener_gets_a_protocol_that_aborts(self):
        """On an https (TLS-wrapped) listener the refusal is a protocol aborting at once."""
        world = World(self, world_data([{"name": "bad", "action": "deny",
                                         "addresses": ["192.0.2.1"]}]))
        proto = self.build(world, scheme="https")
        transport = Transport(("192.0.2.1", 4000))
        proto.makeConnection(transport)
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), b"")

    def test_no_lists_no_access_object(self):
        """Without [[ip_lists]] the runtime has no IPAccess (one None test at accept)."""
        world = World(self, world_data([]))
        self.assertIsNone(world.runtime.ip_access)
        self.assertIsNotNone(self.build(world))


class RouteTests(unittest.TestCase):
    def client(self, world, listener=PUBLIC, peer=("192.0.2.1", 4000)):
        proto = ProxyFactory(world.service._holder, "http", listener).buildProtocol(None)
        transport = Transport(peer)
        proto.makeConnection(transport)
        return proto, transport

    def test_route_list_answers_403_while_another_route_passes(self):
        """A client outside the admin route's allow list gets 403 there (keep-alive kept),
        and its next request on another route reaches the backend."""
        world = World(self, world_data([{"name": "office", "action": "allow",
                                         "addresses": ["10.0.0.0/8"], "routes": ["admin"]}]))
        proto, client = self.client(world)
        proto.dataReceived(GET_ADMIN)
        self.assertTrue(client.take().startswith(b"HTTP/1.1 403 Forbidden\r\n"))
        self.assertEqual(world.pending_connects, 0)
        self.assertFalse(client.disconnecting)
        proto.dataReceived(GET_OTHER)
        self.assertEqual(world.pending_connects, 1)

    def test_route_list_lets_allowed_client_through(self):
        """A client in the allow list reaches the backend on the admin route."""
        world = World(self, world_data([{"name": "office", "action": "allow",
                                         "addresses": ["10.0.0.0/8"], "routes": ["admin"]}]))
        proto, client = self.client(world, peer=("10.1.1.1", 4000))
        proto.dataReceived(GET_ADMIN)
        self.assertEqual(world.pending_connects, 1)

    def test_builtin_hook_runs_before_user_hooks_only_with_route_lists(self):
        """The IP-list hook is first in request_head when a list has routes, absent else."""
        world = World(self, world_data([{"name": "office", "action": "allow",
                                         "addresses": ["10.0.0.0/8"], "routes": ["admin"]}]))
        self.assertEqual(world.runtime.hooks.hooks[0].name, "ip-lists")
        world = World(self, world_data([{"name": "d", "action": "deny",
                                         "addresses": ["10.0.0.0/8"]}]))
        self.assertFalse(world.runtime.hooks)


class ReloadTests(unittest.TestCase):
    def test_reload_swaps_lists_for_new_connections_and_requests(self):
        """After a reload that adds the client to a route's deny list, its keep-alive
        connection's next request is refused; an in-flight request is not touched."""
        path = os.path.abspath("deny.txt")
        with open(path, "w") as f:
            f.write("# nobody yet\n")
        lists = [{"name": "d", "action": "deny", "files": [path], "routes": ["admin"]}]
        world = World(self, world_data(lists))
        world.start()
        proto, client = RouteTests.client(self, world)
        proto.dataReceived(GET_ADMIN)
        backend, upstream = world.accept_backend()
        with open(path, "w") as f:
            f.write("192.0.2.0/24\n")
        self.assertTrue(world.reload(world_data(lists)))
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertIn(b"200 OK", client.take())
        proto.dataReceived(GET_ADMIN)
        self.assertTrue(client.take().startswith(b"HTTP/1.1 403"))

    def test_reload_with_a_bad_file_is_refused_and_keeps_the_lists(self):
        """A file that fails to parse on reload refuses it, naming file, line and value;
        the running lists stay."""
        path = os.path.abspath("deny.txt")
        with open(path, "w") as f:
            f.write("192.0.2.0/24\n")
        lists = [{"name": "d", "action": "deny", "files": [path]}]
        world = World(self, world_data(lists))
        world.start()
        with open(path, "w") as f:
            f.write("192.0.2.0/24\n198.51.100.0/33\n")
        with capturedLogs() as logs:
            self.assertFalse(world.reload(world_data(lists)))
        self.assertIn('reload refused: %s: line 2 = "198.51.100.0/33"' % path,
                      " ".join(messages(logs)))
        self.assertTrue(world.service.runtime.ip_access.refuses(PUBLIC, "192.0.2.1"))

    def test_reloads_do_not_stack_the_builtin_hook(self):
        """Reloads keep exactly one IP-list hook (the kept [[hooks]] exclude the built-in)."""
        lists = [{"name": "d", "action": "deny", "addresses": ["192.0.2.1"], "routes": ["admin"]}]
        world = World(self, world_data(lists))
        world.start()
        self.assertTrue(world.reload(world_data(lists)))
        self.assertTrue(world.reload(world_data(lists)))
        self.assertEqual([hook.name for hook in world.service.runtime.hooks.hooks], ["ip-lists"])

    def test_reload_log_names_added_removed_and_changed_lists(self):
        """The reload's change lines name ip lists added, removed and changed (with keys)."""
        from revproxy.config.diff import describe_changes

        before = config([{"name": "a", "action": "deny", "addresses": ["192.0.2.1"]},
                         {"name": "b", "action": "deny", "addresses": []}])
        after = config([{"name": "a", "action": "allow", "addresses": ["192.0.2.1"]},
                        {"name": "c", "action": "deny", "addresses": []}])
        self.assertEqual(describe_changes(before, after), [
            "ip list added: c", "ip list removed: b", "ip list a changed: action"])
