"""Unix-domain-socket members on a real reactor: a twisted.web backend listening on a
socket file (as gunicorn / uvicorn do), pooled connections, health probes, mixed pools and
the 502 when the socket is missing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web import resource, server

from revproxy.balancing.probe import ActiveChecker, http_probe
from revproxy.config.model import HealthCheck
from tests.integration.support import (
    connect, listen, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_upstream_tls import capture_log


class Tagged(resource.Resource):
    """Answers ``{"tag": ..., "host": Host, "uri": ...}``; ``/health`` too."""

    isLeaf = True

    def __init__(self, tag):
        super().__init__()
        self.tag = tag

    def render(self, request):
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({
            "tag": self.tag,
            "host": (request.getHeader(b"host") or b"").decode("latin-1"),
            "uri": request.uri.decode("latin-1"),
            "mirror": (request.getHeader(b"x-revproxy-mirror") or b"").decode("latin-1"),
        }).encode("utf-8")


class CountingSite(server.Site):
    """A Site that counts the connections it accepted."""

    connections = 0

    def buildProtocol(self, addr):
        self.connections += 1
        return server.Site.buildProtocol(self, addr)


def short_dir(testcase):
    """A short directory for socket files (a socket path holds at most 107 bytes)."""
    path = tempfile.mkdtemp(prefix="rp-", dir="/tmp")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


def unix_backend(testcase, tag="unix"):
    """(socket path, site) of a twisted.web backend listening on a fresh socket file."""
    path = os.path.join(short_dir(testcase), "app.sock")
    site = CountingSite(Tagged(tag))
    site.log = lambda request: None
    port = reactor.listenUNIX(path, site)
    testcase.addCleanup(port.stopListening)
    return path, site, port


class UnixMemberTests(unittest.TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def _get(self, port, paths, host=b"app.test"):
        client = yield connect(port)
        data = b"".join(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (p, host) for p in paths)
        client.transport.write(data)
        responses = yield with_timeout(client.responses(len(paths)))
        client.transport.loseConnection()
        return responses

    @defer.inlineCallbacks
    def test_requests_reach_a_unix_backend_on_one_pooled_connection(self):
        """Sequential requests are answered by the socket's backend with the client's Host,
        over one pooled connection."""
        path, site, _ = unix_backend(self)
        _, port = yield start_proxy(self, proxy_config(["unix:" + path]))
        responses = yield self._get(port, [b"/a", b"/b", b"/c"])
        bodies = [json.loads(body) for head, body in responses]
        self.assertEqual([head.status for head, _ in responses], [200, 200, 200])
        self.assertEqual([b["uri"] for b in bodies], ["/a", "/b", "/c"])
        self.assertEqual({b["tag"] for b in bodies}, {"unix"})
        self.assertEqual({b["host"] for b in bodies}, {"app.test"})
        self.assertEqual(site.connections, 1)

    @defer.inlineCallbacks
    def test_nginx_spelling_and_route_host_header(self):
        """``http://unix:/path:`` works the same; a route's host_header is what it gets."""
        path, site, _ = unix_backend(self)
        data = proxy_config(["http://unix:%s:" % path],
                            routes=[{"pool": "main", "host_header": "internal.app"}])
        _, port = yield start_proxy(self, data)
        [(head, body)] = yield self._get(port, [b"/x"])
        self.assertEqual(head.status, 200)
        self.assertEqual(json.loads(body)["host"], "internal.app")

    @defer.inlineCallbacks
    def test_missing_socket_is_a_502_with_the_reason_logged(self):
        """No socket file: 502, and the log names the member and why."""
        lines = capture_log(self)
        missing = os.path.join(short_dir(self), "gone.sock")
        _, port = yield start_proxy(self, proxy_config(["unix:" + missing]))
        [(head, _)] = yield self._get(port, [b"/"])
        self.assertEqual(head.status, 502)
        logged = [line for line in lines if "unix:" + missing in line]
        self.assertTrue(any("No such file" in line for line in logged), lines[-5:])

    @defer.inlineCallbacks
    def test_socket_without_permission_is_a_502(self):
        """A socket the proxy may not connect to (mode 000) is a 502, not a traceback."""
        if os.geteuid() == 0:
            # root ignores file modes: use a file that is not a socket instead, which
            # fails the same way (connection refused) and takes the same path
            path = os.path.join(short_dir(self), "plain.file")
            open(path, "w").close()
        else:
            path, _, _ = unix_backend(self)
            os.chmod(path, 0)
        lines = capture_log(self)
        _, port = yield start_proxy(self, proxy_config(["unix:" + path]))
        [(head, _)] = yield self._get(port, [b"/"])
        self.assertEqual(head.status, 502)
        self.assertTrue(any("unix:" + path in line and "502" in line for line in lines),
                        lines[-5:])

    @defer.inlineCallbacks
    def test_mixed_pool_balances_over_tcp_and_unix_members(self):
        """Round-robin over one TCP and one Unix member: both answer."""
        path, unix_site, _ = unix_backend(self, "unix")
        tcp_site = server.Site(Tagged("tcp"))
        tcp_site.log = lambda request: None
        tcp = listen(tcp_site)
        self.addCleanup(tcp.stopListening)
        data = proxy_config(["unix:" + path, tcp.getHost().port])
        data["pools"]["main"]["balance"] = "round-robin"
        _, port = yield start_proxy(self, data)
        responses = yield self._get(port, [b"/1", b"/2", b"/3", b"/4"])
        tags = [json.loads(body)["tag"] for _, body in responses]
        self.assertEqual(sorted(tags), ["tcp", "tcp", "unix", "unix"])


class UnixProbeTests(unittest.TestCase):
    timeout = 10

    @defer.inlineCallbacks
    def test_probe_passes_then_fails_when_the_socket_is_gone(self):
        """The health probe speaks HTTP over the socket; once the backend stops listening
        (its socket file removed) the probe fails with the connect error."""
        path, _, port = unix_backend(self)
        ok, reason = yield http_probe(reactor, path, 0, HealthCheck(path="/health"), reactor)
        self.assertEqual((ok, reason), (True, "status 200"))
        yield port.stopListening()
        self.assertFalse(os.path.exists(path))
        ok, reason = yield http_probe(reactor, path, 0, HealthCheck(path="/health"), reactor)
        self.assertFalse(ok)
        self.assertIn("No such file", reason)

    @defer.inlineCallbacks
    def test_active_checker_marks_a_unix_member_down(self):
        """The pool's checker probes a Unix member and reports it down when its socket is
        gone (the checker's timer runs on a fake clock; the probe on the real reactor)."""
        path, _, port = unix_backend(self)
        yield port.stopListening()

        class Member:
            name = "unix:" + path
            host = path
            port = 0

        reported = defer.Deferred()
        checker = ActiveChecker(Clock(), reactor, lambda: [Member()], HealthCheck(),
                                lambda member, ok, why: reported.callback((member.name, ok, why)))
        checker.start()
        self.addCleanup(checker.stop)
        name, ok, why = yield with_timeout(reported)
        self.assertEqual(name, "unix:" + path)
        self.assertFalse(ok)
        self.assertIn("connect failed", why)
