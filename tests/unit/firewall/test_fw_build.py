"""Building the firewall: engine errors with file and line, modes by id and tag, reload
diffs, counters carried over, Python rule plugins, and the hook's place in the runtime."""

from __future__ import annotations

import os

from twisted.internet import task
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.firewall import build as fwbuild
from revproxy.firewall.build import build_firewall, describe_changes
from revproxy.firewall.pyrules import firewall_rule_factories
from revproxy.firewall.rules_builtin import DenyHeader, DenyPaths
from revproxy.firewall.verdicts import ALLOW
from revproxy.testing.firewall import FirewallRuleContractMixin, fake_firewall_request
from tests.unit.firewall.fakewaf import FakeLoader, Rule, in_target
from tests.unit.world import World, config_dict

RULES = [Rule(942100, 1, in_target(b"union"), "SQLi", deny=True, tags=("attack-sqli",)),
         Rule(941100, 1, in_target(b"script"), "XSS", deny=True, tags=("attack-xss",))]


def config(tmp_path, rules_text="SecRule ...", **firewall):
    path = tmp_path / "local.conf"
    path.write_text(rules_text)
    firewall.setdefault("rules", [str(path)])
    return parse_config(config_dict(firewall=firewall), "fw.toml")


class Logs:
    def __init__(self, testcase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def text(self):
        from twisted.logger import formatEvent

        return "\n".join(formatEvent(e) for e in self.events
                         if e.get("log_namespace") == "revproxy.firewall")


class BuildTests(unittest.TestCase):
    def setUp(self):
        import pathlib

        self.tmp = pathlib.Path(os.path.abspath(self.mktemp()))
        self.tmp.mkdir()

    def test_rule_file_error_names_file_and_line(self):
        """A SecLangError becomes a ConfigError with the rule file and line."""
        loader = FakeLoader(RULES)
        cfg = config(self.tmp, "# ok\nBROKEN here\n")
        with self.assertRaises(ConfigError) as info:
            build_firewall(cfg, task.Clock(), load_waf=loader)
        self.assertIn(str(self.tmp / "local.conf") + ":2: unsupported directive BROKEN",
                      str(info.exception))
        self.assertTrue(str(info.exception).startswith("fw.toml: [firewall]"))

    def test_modes_by_id_and_tag(self):
        """Tags are resolved with ids_with_tag (a second load with the modes); later
        entries win; "enforce" is the default and not passed on."""
        loader = FakeLoader(RULES)
        cfg = config(self.tmp, modes=[{"tags": ["attack-sqli", "attack-xss"], "mode": "detect"},
                                      {"ids": [941100], "mode": "enforce"}])
        fw = build_firewall(cfg, task.Clock(), load_waf=loader)
        self.assertEqual(fw.rule_modes, {942100: "detect"})
        self.assertEqual([modes for _, modes in loader.calls], [None, {942100: "detect"}])
        self.assertEqual(fw.stats()["rule_modes"], {"942100": "detect"})

    def test_sources_include_the_settings(self):
        """The engine gets the base directives and the [firewall] settings as sources."""
        loader = FakeLoader(RULES)
        build_firewall(config(self.tmp, paranoia_level=3), task.Clock(), load_waf=loader)
        names = [name for name, _ in loader.calls[0][0]]
        self.assertEqual(names[:2], ["<revproxy base>", "<[firewall] settings>"])
        self.assertIn("tx.blocking_paranoia_level=3", loader.calls[0][0][1][1])

    def test_off_and_auto_without_crs(self):
        """mode off: None; crs = "auto" with no CRS installed and nothing else: None, logged."""
        self.assertIsNone(build_firewall(parse_config(config_dict(), "x"), task.Clock()))
        logs = Logs(self)
        self.patch(fwbuild, "find_crs", lambda spec: None)
        cfg = parse_config(config_dict(firewall={"crs": "auto"}), "x")
        self.assertIsNone(build_firewall(cfg, task.Clock(), load_waf=FakeLoader(RULES)))
        self.assertIn("no Core Rule Set found", logs.text())
        self.assertIn("OFF", logs.text())

    def test_auto_without_engine_runs_without_firewall(self):
        """crs = "auto" finding a CRS while the engine cannot be imported: logged, off
        (an explicit crs directory fails instead, via the same ConfigError)."""
        logs = Logs(self)
        self.patch(fwbuild, "find_crs", lambda spec: fwbuild.CRSLayout(
            "/x", "/x/setup", (), (), (), 3))

        def missing():
            raise ConfigError("<firewall>", "[firewall]", None, "the SecLang engine is "
                              "not available: test")

        self.patch(fwbuild, "_engine_loader", missing)
        cfg = parse_config(config_dict(firewall={"crs": "auto"}), "x")
        self.assertIsNone(build_firewall(cfg, task.Clock()))
        self.assertIn("not available", logs.text())
        cfg = parse_config(config_dict(firewall={"crs": "/x"}), "x")
        with self.assertRaises(ConfigError):
            build_firewall(cfg, task.Clock())

    def test_missing_named_crs_is_an_error(self):
        cfg = parse_config(config_dict(firewall={"crs": str(self.tmp / "none")}), "x")
        with self.assertRaises(ConfigError) as info:
            build_firewall(cfg, task.Clock(), load_waf=FakeLoader(RULES))
        self.assertIn("[firewall] crs", str(info.exception))

    def test_reload_keeps_counters_and_describes_changes(self):
        """A rebuild hands the counters on; the log says rules added/removed, mode changes."""
        logs = Logs(self)
        old = build_firewall(config(self.tmp), task.Clock(), load_waf=FakeLoader(RULES))
        old.counters.blocked = 3
        new_rules = [RULES[0], Rule(930100, 1, in_target(b".."), "LFI", deny=True)]
        new = build_firewall(config(self.tmp, mode="detect",
                                    modes=[{"ids": [942100], "mode": "off"}]),
                             task.Clock(), previous=old, load_waf=FakeLoader(new_rules))
        self.assertIs(new.counters, old.counters)
        self.assertEqual(new.stats()["blocked"], 3)
        lines = describe_changes(old, new)
        self.assertIn("mode on -> detect", lines)
        self.assertIn("rules added: 930100", lines)
        self.assertIn("rules removed: 941100", lines)
        self.assertIn("rule 942100 mode enforce -> off", lines)
        self.assertIn("reload: firewall rules added: 930100", logs.text())

    def test_python_rule_entries(self):
        """[[firewall.python]] builds plugins by name, split by order; unknown names and
        bad options name the entry."""
        cfg = parse_config(config_dict(firewall={"python": [
            {"plugin": "deny_paths", "options": {"prefixes": "/.git"}},
            {"plugin": "deny_header", "options": {"header": "x-evil"}, "order": "after"}]}),
            "fw.toml")
        fw = build_firewall(cfg, task.Clock())
        self.assertIsNone(fw.waf)
        self.assertEqual([r.name for r in fw.before], ["deny_paths"])
        self.assertEqual([r.name for r in fw.after], ["deny_header"])
        for entry, expected in (({"plugin": "nope"}, "unknown firewall rule 'nope'"),
                                ({"plugin": "deny_paths", "options": {"x": 1}},
                                 "unknown option 'x'")):
            cfg = parse_config(config_dict(firewall={"python": [entry]}), "fw.toml")
            with self.assertRaises(ConfigError) as info:
                build_firewall(cfg, task.Clock())
            self.assertIn("[[firewall.python]] #1 plugin", str(info.exception))
            self.assertIn(expected, str(info.exception))


class RuntimeTests(unittest.TestCase):
    def test_runtime_firewall_and_hook_order(self):
        """Runtime.firewall is set; its hook runs after the rate limits, before [[hooks]]."""
        self.patch(fwbuild, "_engine_loader", lambda: FakeLoader(RULES))
        import pathlib

        tmp = pathlib.Path(os.path.abspath(self.mktemp()))
        tmp.mkdir()
        (tmp / "r.conf").write_text("# rules")
        data = config_dict(firewall={"rules": [str(tmp / "r.conf")]},
                           rate_limits=[{"name": "rl", "rate": "100/s"}])
        data["rate_limits"] = [{"name": "rl", "rate": "100/s"}]
        world = World(self, data)
        runtime = world.runtime
        self.assertIsNotNone(runtime.firewall)
        names = [getattr(h, "name", None) for h in runtime.hooks.hooks]
        self.assertLess(names.index(runtime.rate_limits.name), names.index("firewall"))
        self.assertIs(runtime.hooks.hooks[names.index("firewall")], runtime.firewall.hook)
        off = World(self, config_dict())
        self.assertIsNone(off.runtime.firewall)

    def test_blocked_request_through_the_whole_proxy(self):
        """Through the real ProxyRequest: the attack is answered 403 with the request id
        and no backend connection is made; a benign one is forwarded."""
        self.patch(fwbuild, "_engine_loader", lambda: FakeLoader(RULES))
        import pathlib

        tmp = pathlib.Path(os.path.abspath(self.mktemp()))
        tmp.mkdir()
        (tmp / "r.conf").write_text("# rules")
        world = World(self, config_dict(firewall={"rules": [str(tmp / "r.conf")]}))
        world.start()
        proto, transport = world.client()
        proto.dataReceived(b"GET /?q=1+union+select HTTP/1.1\r\nHost: a\r\n\r\n")
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 403 "), out)
        self.assertIn(b"request id", out)
        self.assertEqual(world.pending_connects, 0)
        proto.dataReceived(b"GET /fine HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(world.pending_connects, 1)
        self.assertEqual(world.runtime.firewall.stats()["blocked"], 1)


class PluginTests(unittest.TestCase):
    def test_builtins_are_discovered(self):
        factories = firewall_rule_factories()
        self.assertIn("deny_paths", factories)
        self.assertIn("deny_header", factories)

    def test_deny_paths(self):
        rule = DenyPaths({"prefixes": "/.git, /admin", "status": 404})
        verdict = rule.evaluate(fake_firewall_request(b"GET /.git/config HTTP/1.1\r\nHost: a\r\n\r\n"))
        self.assertEqual((verdict.kind, verdict.status), ("deny", 404))
        self.assertIs(rule.evaluate(fake_firewall_request()), ALLOW)
        scored = DenyPaths({"regex": r"\.php$", "score": 3}).evaluate(
            fake_firewall_request(b"GET /a.php HTTP/1.1\r\nHost: a\r\n\r\n"))
        self.assertEqual((scored.kind, scored.points), ("score", 3))

    def test_deny_header(self):
        rule = DenyHeader({"header": "User-Agent", "values": "sqlmap,nikto"})
        hit = fake_firewall_request(b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: SQLMap/1.0\r\n\r\n")
        self.assertEqual(rule.evaluate(hit).kind, "deny")
        self.assertIs(rule.evaluate(fake_firewall_request()), ALLOW)
        with self.assertRaises(ValueError):
            DenyHeader({})


class DenyPathsContractTests(FirewallRuleContractMixin, unittest.TestCase):
    def make_rule(self):
        return DenyPaths({"prefixes": "/x"})


class DenyHeaderContractTests(FirewallRuleContractMixin, unittest.TestCase):
    def make_rule(self):
        return DenyHeader({"header": "cookie", "values": "a", "score": 2})
