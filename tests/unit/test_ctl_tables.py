"""The ctl client's pure parts: table layout, status/stats/action text, command-line parsing,
HTTP status classification."""

from __future__ import annotations

import unittest

from hypothesis import given, strategies as st

from revproxy.ctl import cli, client, tables
from tests.fakeadmin import FakeAdmin


class TableTests(unittest.TestCase):
    def test_columns_align_and_numbers_go_right(self):
        """Every column is as wide as its widest cell; number columns are right-aligned."""
        text = tables.table(("NAME", "N"), [["a", 5], ["longer", 120]])
        self.assertEqual(text.splitlines(), [
            "NAME      N",
            "------  ---",
            "a         5",
            "longer  120",
        ])

    def test_no_rows_says_none(self):
        """An empty table still has its header and says (none)."""
        self.assertEqual(tables.table(("A",), []).splitlines(), ["A", "-", "(none)"])

    def test_cells_render_none_bool_float_and_lists(self):
        """None is '-', booleans yes/no, floats without trailing zeros, lists joined."""
        text = tables.table(("A", "B", "C", "D"), [[None, True, 1.50, ["x", "y"]]])
        self.assertEqual(text.splitlines()[2].split(), ["-", "yes", "1.5", "x,y"])

    def test_control_characters_cannot_break_the_layout(self):
        """A member name with a newline or escape stays on its row."""
        text = tables.table(("A",), [["bad\nname\x1b[31m"]])
        self.assertEqual(len(text.splitlines()), 3)
        self.assertNotIn("\x1b", text)

    @given(st.lists(st.tuples(st.text(alphabet="abc xyz:./", max_size=12),
                              st.integers(0, 10 ** 9)), max_size=8))
    def test_every_row_is_one_line_with_its_cells_in_column(self, rows):
        """Rows+2 lines, no trailing blanks, the number column ends at the same place."""
        text = tables.table(("NAME", "COUNT"), rows)
        lines = text.splitlines()
        self.assertEqual(len(lines), len(rows) + 2 if rows else 3)
        for line in lines:
            self.assertEqual(line, line.rstrip())
        ends = {len(line) for line in lines[2:]} if rows else set()
        self.assertLessEqual(len(ends), 1)
        for line, (_, count) in zip(lines[2:], rows):
            self.assertTrue(line.endswith(str(count)))


class DocumentTextTests(unittest.TestCase):
    def test_status_shows_each_member_with_state_and_weight(self):
        """The status text has summary lines and one members row per member."""
        fake = FakeAdmin()
        fake.states[("main", "127.0.0.1:8002")] = "draining"
        text = tables.status_text(fake.status())
        self.assertIn("workers      1 (pid 4242)", text)
        self.assertIn("cache        store=memory entries=0 bytes=0 hit_ratio=50.0%", text)
        self.assertIn("listeners    admin: tcp:9901:interface=127.0.0.1; "
                      "proxy: tcp:8080:interface=127.0.0.1", text)
        self.assertIn("connections  3 (idle=2 in_request=1)", text)
        rows = [line.split() for line in text.splitlines() if line.startswith("main ")]
        self.assertEqual(rows, [["main", "127.0.0.1:8001", "healthy", "0", "1", "1.25", "0"],
                                ["main", "127.0.0.1:8002", "draining", "0", "1", "1.25", "0"]])

    def test_status_of_todays_document_still_renders(self):
        """The older /status shape (no listeners, cache None) renders without error."""
        text = tables.status_text({"source": "x.toml", "connections": 3, "cache": None,
                                   "pools": {"p": {"members": [{"name": "m", "state": "down"}]}}})
        self.assertIn("cache        off", text)
        self.assertIn("p     m       down", text)

    def test_stats_text_lists_counters_and_members(self):
        fake = FakeAdmin()
        fake.traffic(4, "5xx")
        text = tables.stats_text(fake.stats())
        self.assertIn("requests     4 (1xx=0 2xx=0 3xx=0 4xx=0 5xx=4)", text)
        self.assertIn("main  127.0.0.1:8001  healthy         2       2          0", text)

    def test_action_text(self):
        """Purge answers say the count (-1: the store cannot count); others list the keys."""
        self.assertEqual(tables.action_text("purge", {"purged": 2}), "purge: purged 2")
        self.assertEqual(tables.action_text("purge", {"purged": -1}), "purge: purged (uncounted)")
        self.assertEqual(tables.action_text("drain main/m", {"state": "draining"}),
                         "drain main/m: state=draining")


class ParseTests(unittest.TestCase):
    def test_admin_url_forms(self):
        """A URL as given, host:port on http, a bare port on loopback, default 9901."""
        self.assertEqual(cli.admin_url("https://a:1/"), "https://a:1")
        self.assertEqual(cli.admin_url("10.0.0.1:9000"), "http://10.0.0.1:9000")
        self.assertEqual(cli.admin_url("9902"), "http://127.0.0.1:9902")
        self.assertEqual(cli.admin_url(None), "http://127.0.0.1:9901")

    def test_environment_supplies_admin_and_token(self):
        args = cli.parse(["status"], {"REVPROXY_ADMIN": "9999", "REVPROXY_ADMIN_TOKEN": "s"})
        self.assertEqual((args.admin, args.token), ("http://127.0.0.1:9999", "s"))
        args = cli.parse(["--admin", "h:1", "--token", "t", "status"],
                         {"REVPROXY_ADMIN": "9999", "REVPROXY_ADMIN_TOKEN": "s"})
        self.assertEqual((args.admin, args.token), ("http://h:1", "t"))

    def test_member_target_splits_on_the_first_slash(self):
        """POOL/MEMBER: the member keeps its own slashes (https://host:port members)."""
        args = cli.parse(["drain", "main/https://10.0.0.1:443"], {})
        self.assertEqual((args.pool, args.member), ("main", "https://10.0.0.1:443"))
        args = cli.parse(["weight", "main/m", "25"], {})
        self.assertEqual(args.weight, 25)

    def test_usage_errors(self):
        """Each bad command line is a UsageError naming what was expected."""
        for argv, words in [(["drain", "nopool"], "POOL/MEMBER"),
                            (["purge"], "exactly one"),
                            (["purge", "http://a/", "--tag", "t"], "exactly one"),
                            (["weight", "p/m", "-1"], ">= 0"),
                            (["weight", "p/m", "1.5"], "invalid int"),
                            (["frobnicate"], "invalid choice"),
                            ([], "required")]:
            with self.assertRaises(cli.UsageError) as caught:
                cli.parse(argv, {})
            self.assertIn(words, str(caught.exception), argv)

    def test_main_returns_2_on_usage_error(self):
        import io
        err = io.StringIO()
        self.assertEqual(cli.main(["drain", "x"], {}, io.StringIO(), err), client.USAGE)
        self.assertIn("expected POOL/MEMBER", err.getvalue())

    def test_refused_reload_is_detected(self):
        args = cli.parse(["reload"], {})
        self.assertEqual(cli.refused(args, {"accepted": False, "error": "bad key"}), "bad key")
        self.assertIsNone(cli.refused(args, {"accepted": True}))


class ClassifyTests(unittest.TestCase):
    def test_status_codes_map_to_exit_codes(self):
        """2xx is no error; 401, 404 and the rest have their own exit codes and messages."""
        self.assertIsNone(client.classify(200, b"{}", "u"))
        e = client.classify(401, b'{"error": "unauthorized"}', "http://a/api/status")
        self.assertEqual(e.code, client.UNAUTHORIZED)
        self.assertIn("--token", e.message)
        e = client.classify(404, b'{"error": "no member main/x"}', "u")
        self.assertEqual((e.code, e.message), (client.NOT_FOUND, "404 not found: u: no member main/x"))
        e = client.classify(409, b"no [cache] store configured\n", "u")
        self.assertEqual((e.code, e.message), (client.REFUSED,
                                               "409 from u: no [cache] store configured"))
