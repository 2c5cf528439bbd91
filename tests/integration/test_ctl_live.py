"""``python -m revproxy.ctl`` over real loopback HTTP: against a fake admin API serving the
documented JSON (tests/fakeadmin.py), and as a real process against a live proxy."""

from __future__ import annotations

import io
import json
import os
import sys

from twisted.internet import defer, reactor, utils
from twisted.trial import unittest

from revproxy.ctl import cli, client
from tests.fakeadmin import FakeAdmin, fake_admin_site
from tests.integration.support import listen, with_timeout


class CtlAgainstFakeAdminTests(unittest.TestCase):
    def setUp(self):
        self.fake = FakeAdmin()
        port = listen(fake_admin_site(self.fake))
        self.addCleanup(port.stopListening)
        self.url = "http://127.0.0.1:%d" % port.getHost().port

    @defer.inlineCallbacks
    def ctl(self, *argv, **env):
        """Run one command in this process; (exit status, stdout, stderr)."""
        environ = {"REVPROXY_ADMIN": self.url}
        environ.update(env)
        out, err = io.StringIO(), io.StringIO()
        args = cli.parse(list(argv), environ)
        code = yield with_timeout(cli.run(reactor, args, out, err))
        return code, out.getvalue(), err.getvalue()

    @defer.inlineCallbacks
    def test_status_prints_the_members_table(self):
        code, out, err = yield self.ctl("status")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("POOL  MEMBER          STATE    IN-FLIGHT  WEIGHT  EWMA-MS  EJECTIONS", out)
        self.assertIn("main  127.0.0.1:8002  healthy          0       1     1.25          0", out)

    @defer.inlineCallbacks
    def test_json_prints_the_document(self):
        code, out, _ = yield self.ctl("--json", "stats")
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out)["requests"]["total"], 0)

    @defer.inlineCallbacks
    def test_member_actions_post_to_their_paths(self):
        """drain / disable / enable / weight each POST their path; the state changes."""
        for argv in (["drain", "main/127.0.0.1:8001"], ["disable", "main/127.0.0.1:8002"],
                     ["enable", "main/127.0.0.1:8002"], ["weight", "main/127.0.0.1:8001", "3"]):
            code, out, err = yield self.ctl(*argv)
            self.assertEqual((code, err), (0, ""), argv)
            self.assertTrue(out.startswith("%s main/127.0.0.1:" % argv[0]), out)
        self.assertEqual([p[0] for p in self.fake.posts], [
            "/api/members/main/127.0.0.1:8001/drain", "/api/members/main/127.0.0.1:8002/disable",
            "/api/members/main/127.0.0.1:8002/enable", "/api/members/main/127.0.0.1:8001/weight"])
        self.assertEqual(self.fake.posts[-1][2], {"weight": 3})
        self.assertEqual(self.fake.states[("main", "127.0.0.1:8001")], "draining")
        self.assertEqual(self.fake.weights[("main", "127.0.0.1:8001")], 3)

    @defer.inlineCallbacks
    def test_purge_forms(self):
        """purge URL / --prefix / --tag (--soft) send the one argument the API expects."""
        for argv in (["purge", "http://a/x"], ["purge", "--prefix", "http://a/"],
                     ["purge", "--tag", "t1", "--soft"]):
            code, out, _ = yield self.ctl(*argv)
            self.assertEqual((code, out), (0, "purge: purged 3\n"))
        self.assertEqual([p[2] for p in self.fake.posts],
                         [{"url": "http://a/x"}, {"prefix": "http://a/"},
                          {"tag": "t1", "soft": True}])

    @defer.inlineCallbacks
    def test_reload_refused_exits_1_with_the_reason(self):
        self.fake.reload_error = "rp.toml: [pools.main] members: expected a list"
        code, out, err = yield self.ctl("reload")
        self.assertEqual(code, client.REFUSED)
        self.assertIn("/api/reload: rp.toml: [pools.main] members: expected a list", err)
        self.fake.reload_error = None
        code, out, _ = yield self.ctl("reload")
        self.assertEqual((code, out), (0, "reload: generation=1 reloaded=yes\n"))

    @defer.inlineCallbacks
    def test_unknown_member_exits_5(self):
        code, _, err = yield self.ctl("drain", "main/nobody:1")
        self.assertEqual(code, client.NOT_FOUND)
        self.assertIn("404 not found", err)
        self.assertIn("no member main/nobody:1", err)

    @defer.inlineCallbacks
    def test_token_missing_or_wrong_exits_4_and_right_token_works(self):
        self.fake.token = "s3cret"
        code, _, err = yield self.ctl("status")
        self.assertEqual(code, client.UNAUTHORIZED)
        self.assertIn("401 unauthorized", err)
        code, _, _ = yield self.ctl("--token", "wrong", "status")
        self.assertEqual(code, client.UNAUTHORIZED)
        code, _, _ = yield self.ctl("status", REVPROXY_ADMIN_TOKEN="s3cret")
        self.assertEqual(code, 0)

    @defer.inlineCallbacks
    def test_connection_refused_exits_3(self):
        port = listen(fake_admin_site(FakeAdmin()))
        number = port.getHost().port
        yield port.stopListening()
        code, _, err = yield self.ctl("--admin", "127.0.0.1:%d" % number, "status")
        self.assertEqual(code, client.UNREACHABLE)
        self.assertIn("connection refused", err)


class CtlProcessTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_module_runs_as_a_process(self):
        """``python -m revproxy.ctl`` as a real process: prints the table, exit 0; an
        unreachable admin exits 3 with one line on stderr."""
        fake = FakeAdmin()
        port = listen(fake_admin_site(fake))
        self.addCleanup(port.stopListening)
        env = dict(os.environ, REVPROXY_ADMIN=str(port.getHost().port),
                   PYTHONPATH=os.pathsep.join(sys.path))
        out, err, code = yield with_timeout(utils.getProcessOutputAndValue(
            sys.executable, ["-m", "revproxy.ctl", "status"], env=env), 60)
        self.assertEqual(code, 0, err)
        self.assertIn(b"main  127.0.0.1:8001  healthy", out)
        yield port.stopListening()
        out, err, code = yield with_timeout(utils.getProcessOutputAndValue(
            sys.executable, ["-m", "revproxy.ctl", "status"], env=env), 60)
        self.assertEqual(code, client.UNREACHABLE)
        self.assertEqual(len(err.strip().splitlines()), 1, err)


class SegmentTests(unittest.TestCase):
    def test_member_names_with_slashes_stay_one_segment(self):
        from revproxy.ctl.client import _segment
        self.assertEqual(_segment("127.0.0.1:8001"), "127.0.0.1:8001")
        self.assertEqual(_segment("https://h:443 (sni)"), "https:%2F%2Fh:443%20%28sni%29")


class CtlAgainstLiveProxyTests(unittest.TestCase):
    """The real admin listener of a running proxy (``[admin] listen``)."""

    @defer.inlineCallbacks
    def start(self):
        from tests.integration.support import backend_site, proxy_config, start_proxy

        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port],
                            admin={"listen": ["tcp:0:interface=127.0.0.1"]})
        service, _ = yield start_proxy(self, data)
        return "http://127.0.0.1:%d" % service.ports[0].getHost().port

    @defer.inlineCallbacks
    def test_unknown_member_is_404_exit_5(self):
        admin = yield self.start()
        out, err = io.StringIO(), io.StringIO()
        args = cli.parse(["--admin", admin, "drain", "main/nobody:1"], {})
        code = yield with_timeout(cli.run(reactor, args, out, err))
        self.assertEqual(code, client.NOT_FOUND)
        self.assertTrue(err.getvalue().startswith("revproxy.ctl: 404 not found: "
                                                  + admin + "/api/members/main/nobody:1/drain"),
                        err.getvalue())

    @defer.inlineCallbacks
    def test_dashboard_served_beside_the_api(self):
        """GET / is the dashboard page, its script and style load, /status is still JSON."""
        import treq

        admin = yield self.start()
        page = yield with_timeout(treq.get(admin + "/", persistent=False))
        self.assertEqual(page.code, 200)
        self.assertIn(b"<canvas id=\"chart-rate\"", (yield treq.content(page)))
        for path in ("/dashboard.js", "/dashboard.css"):
            response = yield with_timeout(treq.get(admin + path, persistent=False))
            self.assertEqual(response.code, 200)
            yield treq.content(response)
        status = yield with_timeout(treq.get(admin + "/status", persistent=False))
        self.assertIn("main", json.loads((yield treq.content(status)))["pools"])
