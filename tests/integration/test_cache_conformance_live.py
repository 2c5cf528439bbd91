"""The cache's RFC 9111 / RFC 9213 rules on real sockets, against a real origin: each gap an
outside conformance run found, reproduced with two requests as a user would."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web import resource, server

from tests.integration.support import connect, listen, proxy_config, start_proxy, with_timeout


class Origin(resource.Resource):
    """Answers every request with the headers of ``self.headers[path]``; counts requests."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.headers = {}
        self.seen = []

    def render(self, request):
        self.seen.append((request.method, request.path))
        for name, value in self.headers.get(request.path, ()):
            request.setHeader(name, value)
        return b"body-%d" % len(self.seen)


@defer.inlineCallbacks
def ask(port, method, path, extra=b""):
    client = yield connect(port)
    client.transport.write(b"%s %s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n%s\r\n"
                           % (method, path, extra))
    [(head, body)] = yield with_timeout(client.responses(1))
    client.transport.loseConnection()
    return head, body


def field(head, name):
    return dict(head.headers).get(name)


class ConformanceTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.origin = Origin()
        site = server.Site(self.origin)
        site.log = lambda request: None
        port = listen(site)
        self.addCleanup(port.stopListening)
        data = proxy_config([port.getHost().port], cache={"store": "memory"})
        _, self.port = yield start_proxy(self, data)

    def origin_asked(self):
        return len(self.origin.seen)

    @defer.inlineCallbacks
    def test_cdn_cache_control_private_beats_cache_control_max_age(self):
        self.origin.headers[b"/p"] = [(b"cache-control", b"max-age=60"),
                                      (b"cdn-cache-control", b"private")]
        yield ask(self.port, b"GET", b"/p")
        yield ask(self.port, b"GET", b"/p")
        self.assertEqual(self.origin_asked(), 2)

    @defer.inlineCallbacks
    def test_cdn_cache_control_max_age_beats_cache_control_no_store(self):
        self.origin.headers[b"/s"] = [(b"cache-control", b"no-store"),
                                      (b"cdn-cache-control", b"max-age=60")]
        yield ask(self.port, b"GET", b"/s")
        head, body = yield ask(self.port, b"GET", b"/s")
        self.assertEqual(self.origin_asked(), 1)
        self.assertEqual(body, b"body-1")
        self.assertEqual(field(head, b"cache-control"), b"no-store")

    @defer.inlineCallbacks
    def test_extension_method_invalidates(self):
        self.origin.headers[b"/m"] = [(b"cache-control", b"max-age=60")]
        yield ask(self.port, b"GET", b"/m")
        yield ask(self.port, b"M-SEARCH", b"/m")
        head, body = yield ask(self.port, b"GET", b"/m")
        self.assertEqual(body, b"body-3", "fetched again after M-SEARCH")

    @defer.inlineCallbacks
    def test_qualified_private_stored_without_the_field(self):
        self.origin.headers[b"/q"] = [(b"cache-control", b'max-age=60, private="x-user"'),
                                      (b"x-user", b"alice")]
        first, _ = yield ask(self.port, b"GET", b"/q")
        second, body = yield ask(self.port, b"GET", b"/q")
        self.assertEqual(self.origin_asked(), 1)
        self.assertEqual(field(first, b"x-user"), b"alice")
        self.assertIsNone(field(second, b"x-user"))

    @defer.inlineCallbacks
    def test_equivalent_accept_language_shares_a_variant(self):
        self.origin.headers[b"/v"] = [(b"cache-control", b"max-age=60"),
                                      (b"vary", b"accept-language")]
        yield ask(self.port, b"GET", b"/v", b"Accept-Language: en, fr;q=0.5\r\n")
        _, body = yield ask(self.port, b"GET", b"/v", b"Accept-Language: FR;q=0.50 ,EN\r\n")
        self.assertEqual(body, b"body-1")
        _, body = yield ask(self.port, b"GET", b"/v", b"Accept-Language: fr, en;q=0.5\r\n")
        self.assertEqual(body, b"body-2", "another preference: another variant")
