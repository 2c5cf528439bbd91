"""The per-route stages on loopback: rewriting, Location back, redirects, direct answers,
header edits, the security preset, error pages, query/cookie matchers and splitting."""

from __future__ import annotations

import json
import os
import socket

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web import resource, server

from tests.integration.support import (
    LOOPBACK, Echo, backend_site, connect, header, listen, proxy_config, start_proxy, with_timeout,
)


class Redirector(resource.Resource):
    """Redirects to the URL in the ``to`` query parameter."""

    isLeaf = True

    def render_GET(self, request):
        request.setResponseCode(302)
        request.setHeader(b"location", request.args[b"to"][0])
        request.setHeader(b"content-location", b"/v1/here")
        return b""


def _site():
    site = backend_site()
    site.resource.putChild(b"v1", _V1())
    site.resource.putChild(b"new", Echo())
    return site


class _V1(resource.Resource):
    def getChild(self, name, request):
        if name == b"redirect":
            return Redirector()
        return Echo()


def _dead_port():
    """A loopback port nothing listens on (bound then closed)."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class RoutingLiveTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.main = listen(_site())
        self.other = listen(_site())
        for port in (self.main, self.other):
            self.addCleanup(port.stopListening)
        pages = self.mktemp()
        os.makedirs(pages)
        with open(os.path.join(pages, "5xx.html"), "w") as f:
            f.write("<p>{status} {reason} id={request_id}</p><style>p {color: red}</style>")
        with open(os.path.join(pages, "404.json"), "w") as f:
            f.write('{"missing": true, "id": "{request_id}"}')
        self.pages = pages
        data = proxy_config([self.main.getHost().port], routes=[
            {"name": "health", "pool": "main", "path_prefix": "/healthz",
             "respond": {"status": 200, "body": "ok"}},
            {"name": "moved", "pool": "main", "path_prefix": "/moved/",
             "redirect": {"status": 301, "to": "https://{host}/new{path}?{query}"}},
            {"name": "api", "pool": "main", "path_prefix": "/api/", "strip_prefix": "/api",
             "add_prefix": "/v1", "rewrite_location": True,
             "request_headers": {"set": {"x-client": "{client_ip}"}, "remove": ["x-secret"]},
             "response_headers": {"set": {"x-route": "{route} via {member}"}},
             "security_headers": True},
            {"name": "old", "pool": "main", "path_regex": "^/old/", "forward_query": "drop",
             "rewrite": {"regex": "^/old/(.*)$", "replace": "/new/$1"}},
            {"name": "broken", "pool": "dead", "path_prefix": "/broken",
             "error_pages": {"5xx": os.path.join(pages, "5xx.html")}},
            {"name": "beta", "pool": "other", "query": {"beta": "1"}},
            {"name": "canary", "pool": "main", "cookies": {"canary": True},
             "split": [{"pool": "main", "weight": 1}, {"pool": "other", "weight": 1}],
             "split_sticky": "cookie:arm"},
            {"name": "rest", "pool": "main", "path_prefix": "/echo"},
        ], server={"error_pages": {"404": os.path.join(pages, "404.json")}})
        data["pools"]["other"] = {"members": ["http://%s:%d" % (LOOPBACK, self.other.getHost().port)]}
        data["pools"]["dead"] = {"members": ["http://%s:%d" % (LOOPBACK, _dead_port())],
                                 "retries": 0}
        self.service, self.port = yield start_proxy(self, data)

    @defer.inlineCallbacks
    def get(self, target, *headers):
        client = yield connect(self.port)
        lines = [b"GET %s HTTP/1.1" % target, b"Host: example.test"] + list(headers)
        client.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")
        [(head, body)] = yield with_timeout(client.responses(1))
        client.transport.loseConnection()
        return head, body

    @defer.inlineCallbacks
    def test_strip_and_add_prefix_keep_the_original_bytes(self):
        """/api/%7Euser?q=1 reaches the backend as /v1/%7Euser?q=1 (escapes as sent)."""
        head, body = yield self.get(b"/api/%7Euser?q=%41")
        self.assertEqual(json.loads(body)["uri"], "/v1/%7Euser?q=%41")

    @defer.inlineCallbacks
    def test_request_headers_set_and_removed(self):
        """request_headers: x-client from {client_ip}; x-secret never reaches the backend."""
        head, body = yield self.get(b"/api/h", b"X-Secret: s", b"X-Client: forged")
        seen = json.loads(body)["headers"]
        self.assertIn(["x-client", "127.0.0.1"], seen)
        self.assertEqual([v for k, v in seen if k == "x-client"], ["127.0.0.1"])
        self.assertNotIn("x-secret", [k for k, _ in seen])

    @defer.inlineCallbacks
    def test_response_headers_and_security_preset(self):
        """response_headers templates see the route and member; the preset is added (no HSTS
        on plain http)."""
        head, body = yield self.get(b"/api/h")
        member = "%s:%d" % (LOOPBACK, self.main.getHost().port)
        self.assertEqual(header(head, b"x-route"), ("api via %s" % member).encode())
        self.assertEqual(header(head, b"x-content-type-options"), b"nosniff")
        self.assertEqual(header(head, b"x-frame-options"), b"SAMEORIGIN")
        self.assertIsNone(header(head, b"strict-transport-security"))

    @defer.inlineCallbacks
    def test_location_rewritten_back(self):
        """A Location naming the member and the added prefix comes back as the client's URL."""
        member = "%s:%d" % (LOOPBACK, self.main.getHost().port)
        head, _ = yield self.get(b"/api/redirect?to=http://%s/v1/landing" % member.encode())
        self.assertEqual(head.status, 302)
        self.assertEqual(header(head, b"location"), b"http://example.test/api/landing")
        self.assertEqual(header(head, b"content-location"), b"/api/here")

    @defer.inlineCallbacks
    def test_location_elsewhere_untouched(self):
        """A redirect to another site is not rewritten."""
        head, _ = yield self.get(b"/api/redirect?to=https://else.test/v1/x")
        self.assertEqual(header(head, b"location"), b"https://else.test/v1/x")

    @defer.inlineCallbacks
    def test_regex_rewrite_and_query_dropped(self):
        """rewrite ^/old/(.*)$ -> /new/$1, forward_query = "drop"."""
        head, body = yield self.get(b"/old/a/b?secret=1")
        self.assertEqual(json.loads(body)["uri"], "/new/a/b")

    @defer.inlineCallbacks
    def test_redirect_without_backend(self):
        """redirect renders its URL template from the request."""
        head, body = yield self.get(b"/moved/page?x=1")
        self.assertEqual(head.status, 301)
        self.assertEqual(header(head, b"location"), b"https://example.test/new/moved/page?x=1")

    @defer.inlineCallbacks
    def test_respond_fixed_answer(self):
        """respond answers 200 "ok" itself."""
        head, body = yield self.get(b"/healthz")
        self.assertEqual((head.status, body), (200, b"ok"))
        self.assertEqual(header(head, b"content-type"), b"text/plain; charset=utf-8")

    @defer.inlineCallbacks
    def test_error_page_html_carries_request_id(self):
        """A 502 on a route with a 5xx page: the HTML page, filled in, with the id header."""
        head, body = yield self.get(b"/broken")
        self.assertEqual(head.status, 502)
        rid = "01" * 16
        self.assertEqual(body, ("<p>502 Bad Gateway id=%s</p><style>p {color: red}</style>"
                                % rid).encode())
        self.assertEqual(header(head, b"content-type"), b"text/html; charset=utf-8")
        self.assertEqual(header(head, b"x-request-id"), rid.encode())

    @defer.inlineCallbacks
    def test_error_page_json_by_accept(self):
        """A client preferring JSON gets the built-in JSON answer with the request id."""
        head, body = yield self.get(b"/broken", b"Accept: application/json, text/html;q=0.5")
        self.assertEqual(head.status, 502)
        self.assertEqual(json.loads(body), {"status": 502, "error": "Bad Gateway",
                                            "request_id": "01" * 16})

    @defer.inlineCallbacks
    def test_no_route_uses_server_pages(self):
        """404 with no route: [server] error_pages' JSON page for a JSON client."""
        head, body = yield self.get(b"/nothing", b"Accept: application/json")
        self.assertEqual(head.status, 404)
        self.assertEqual(json.loads(body), {"missing": True, "id": "01" * 16})

    @defer.inlineCallbacks
    def test_query_matcher_picks_route(self):
        """?beta=1 goes to the "other" pool; without it, to main."""
        _, body = yield self.get(b"/echo?beta=1")
        self.assertEqual(json.loads(body)["port"], self.other.getHost().port)
        _, body = yield self.get(b"/echo?beta=2")
        self.assertEqual(json.loads(body)["port"], self.main.getHost().port)

    @defer.inlineCallbacks
    def test_split_sticky_cookie(self):
        """A split with split_sticky = "cookie:arm": the first answer sets the cookie, and a
        client sending it stays on that pool."""
        head, body = yield self.get(b"/echo", b"Cookie: canary=1")
        cookie = header(head, b"set-cookie")
        self.assertTrue(cookie.startswith(b"arm="))
        arm = cookie.split(b";")[0].split(b"=")[1]
        ports = {b"main": self.main.getHost().port, b"other": self.other.getHost().port}
        self.assertEqual(json.loads(body)["port"], ports[arm])
        for _ in range(4):
            head, body = yield self.get(b"/echo", b"Cookie: canary=1; arm=" + arm)
            self.assertIsNone(header(head, b"set-cookie"))
            self.assertEqual(json.loads(body)["port"], ports[arm])
