"""Compression on real sockets: bodies decoded byte for byte, Vary/ETag, refusals, ranges,
HTTP/1.0 framing, HEAD, a live stream flushed, a large body through a slow client with
back-pressure, and cached compressed vs identity variants."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial import unittest
from twisted.web import resource, server, static

from revproxy.compression import encoders
from tests.integration.support import (
    LOOPBACK,
    connect,
    header,
    listen,
    proxy_config,
    start_proxy,
    with_timeout,
)

PAGE = b"".join(b"<tr><td>row %d</td><td>value %d</td></tr>\n" % (i, i * 7) for i in range(2600))
assert len(PAGE) > 100 * 1024


class Page(resource.Resource):
    """A 100 KiB HTML page with a strong ETag and a freshness lifetime; counts its GETs."""

    isLeaf = True

    def __init__(self, body=PAGE, ctype=b"text/html; charset=utf-8", extra=()):
        resource.Resource.__init__(self)
        self.body, self.ctype, self.extra, self.served = body, ctype, extra, 0

    def render_GET(self, request):
        self.served += 1
        request.setHeader(b"content-type", self.ctype)
        request.setHeader(b"etag", b'"p1"')
        request.setHeader(b"cache-control", b"max-age=60")
        for name, value in self.extra:
            request.setHeader(name, value)
        return self.body

    render_HEAD = render_GET


class Live(resource.Resource):
    """A text/plain stream of unknown length: the first piece now, the rest when told."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.request = None
        self.started = defer.Deferred()

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        request.write(b"event one\n")
        self.request = request
        self.started.callback(None)
        return server.NOT_DONE_YET


class Endless(resource.Resource):
    """``total`` bytes of poorly compressible text (base64 of random bytes, repeated beyond
    gzip's 32 KiB window), written only while the transport accepts them (a push producer)."""

    isLeaf = True

    def __init__(self, total):
        resource.Resource.__init__(self)
        self.total = total
        self.sent = 0
        self.paused_at = None
        import base64

        self.block = base64.b64encode(os.urandom(768 * 1024))  # 1 MiB of text

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"content-length", b"%d" % self.total)
        owner = self

        class Producer:
            paused = False

            def pauseProducing(self):
                self.paused = True
                owner.paused_at = owner.sent

            def resumeProducing(self):
                self.paused = False
                while not self.paused and owner.sent < owner.total:
                    n = min(65536, owner.total - owner.sent)
                    offset = owner.sent % len(owner.block)
                    piece = (owner.block[offset:] + owner.block)[:n]
                    owner.sent += n
                    request.write(piece)
                if owner.sent >= owner.total and not getattr(self, "done", False):
                    self.done = True
                    request.unregisterProducer()
                    request.finish()

            def stopProducing(self):
                self.paused = True

        producer = Producer()
        request.registerProducer(producer, True)
        reactor.callLater(0, producer.resumeProducing)
        return server.NOT_DONE_YET

    def expected(self):
        digest = hashlib.sha256()
        sent = 0
        while sent < self.total:
            n = min(65536, self.total - sent)
            offset = sent % len(self.block)
            digest.update((self.block[offset:] + self.block)[:n])
            sent += n
        return digest.hexdigest()


def backend(testcase, children):
    root = resource.Resource()
    for name, child in children.items():
        root.putChild(name, child)
    site = server.Site(root)
    site.log = lambda request: None
    port = listen(site)
    testcase.addCleanup(port.stopListening)
    return port.getHost().port


@defer.inlineCallbacks
def fetch(port, path, extra=b"", method=b"GET", version=b"1.1"):
    client = yield connect(port)
    client.transport.write(b"%s %s HTTP/%s\r\nHost: a\r\n%s\r\n" % (method, path, version, extra))
    [(head, body)] = yield with_timeout(client.responses(1, [method]))
    client.transport.loseConnection()
    return head, body


def fields(head, name):
    return [v for k, v in head.headers if k == name]


def decode(coding, body):
    if coding == b"gzip":
        return gzip.decompress(body)
    if coding == b"br":
        return encoders._brotli.decompress(body)
    return encoders._zstd.ZstdDecompressor().decompressobj().decompress(body)


class CompressionLiveTests(unittest.TestCase):
    @defer.inlineCallbacks
    def start(self, children, route=None, **sections):
        port = backend(self, children)
        route = dict({"pool": "main", "compress": True, "cache": False}, **(route or {}))
        data = proxy_config([port], routes=[route], **sections)
        _, self.port = yield start_proxy(self, data)

    @defer.inlineCallbacks
    def check_coding(self, coding):
        yield self.start({b"page": Page()}, compression={"codings": [coding.decode()]})
        head, body = yield fetch(self.port, b"/page", b"Accept-Encoding: %s\r\n" % coding)
        self.assertEqual(head.status, 200)
        self.assertEqual(header(head, b"content-encoding"), coding)
        self.assertIsNone(header(head, b"content-length"))
        self.assertEqual(header(head, b"transfer-encoding"), b"chunked")
        self.assertEqual(decode(coding, body), PAGE)
        self.assertLess(len(body), len(PAGE) // 4)
        self.assertEqual(fields(head, b"vary"), [b"Accept-Encoding"])
        self.assertEqual(header(head, b"etag"), b'W/"p1"')

    def test_gzip_decoded_byte_for_byte(self):
        """gzip: chunked, no Content-Length, Vary added, ETag weak; decodes to the page."""
        return self.check_coding(b"gzip")

    def test_brotli_decoded_byte_for_byte(self):
        """br (where brotli is installed): the same, decoded with brotli."""
        if "br" not in encoders.available():
            raise unittest.SkipTest("brotli is not installed here")
        return self.check_coding(b"br")

    def test_zstd_decoded_byte_for_byte(self):
        """zstd (where zstandard is installed): the same, decoded with zstandard."""
        if "zstd" not in encoders.available():
            raise unittest.SkipTest("zstandard is not installed here")
        return self.check_coding(b"zstd")

    @defer.inlineCallbacks
    def test_client_without_accept_encoding_gets_identity_with_vary(self):
        """No Accept-Encoding: identity with its length, strong ETag, Vary still added."""
        yield self.start({b"page": Page()})
        head, body = yield fetch(self.port, b"/page")
        self.assertEqual(body, PAGE)
        self.assertIsNone(header(head, b"content-encoding"))
        self.assertEqual(header(head, b"content-length"), b"%d" % len(PAGE))
        self.assertEqual(header(head, b"etag"), b'"p1"')
        self.assertEqual(fields(head, b"vary"), [b"Accept-Encoding"])

    @defer.inlineCallbacks
    def test_no_transform_encoded_and_binary_types_untouched(self):
        """no-transform, an already encoded body and an image go through as they are."""
        pre = gzip.compress(PAGE)
        yield self.start({
            b"nt": Page(extra=[(b"cache-control", b"no-transform")]),
            b"enc": Page(body=pre, extra=[(b"content-encoding", b"gzip")]),
            b"png": Page(ctype=b"image/png"),
        })
        for path, expected in ((b"/nt", PAGE), (b"/enc", pre), (b"/png", PAGE)):
            head, body = yield fetch(self.port, path, b"Accept-Encoding: gzip, br\r\n")
            self.assertEqual(body, expected, path)
            self.assertEqual(header(head, b"etag"), b'"p1"', path)
            self.assertEqual(fields(head, b"vary"), [], path)
        head, _ = yield fetch(self.port, b"/enc", b"Accept-Encoding: gzip\r\n")
        self.assertEqual(fields(head, b"content-encoding"), [b"gzip"])  # not encoded twice

    @defer.inlineCallbacks
    def test_range_request_untouched(self):
        """A Range request: the backend's 206 goes through as is, never compressed."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(PAGE)
        yield self.start({b"file.html": static.File(path, defaultType="text/html")})
        head, body = yield fetch(self.port, b"/file.html",
                                 b"Accept-Encoding: gzip\r\nRange: bytes=10-99\r\n")
        self.assertEqual(head.status, 206)
        self.assertEqual(body, PAGE[10:100])
        self.assertIsNone(header(head, b"content-encoding"))

    @defer.inlineCallbacks
    def test_http10_client_gets_close_delimited_gzip(self):
        """HTTP/1.0: no chunked framing, the compressed body ends with the connection."""
        yield self.start({b"page": Page()})
        client = yield connect(self.port)
        client.transport.write(b"GET /page HTTP/1.0\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        data = yield with_timeout(client.closed)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"content-encoding: gzip", head.lower())
        self.assertNotIn(b"content-length", head.lower())
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertEqual(gzip.decompress(body), PAGE)

    @defer.inlineCallbacks
    def test_head_gets_the_fields_of_get(self):
        """HEAD: Content-Encoding, Vary and the weak ETag as for GET; no body."""
        yield self.start({b"page": Page()})
        head, body = yield fetch(self.port, b"/page", b"Accept-Encoding: gzip\r\n",
                                 method=b"HEAD")
        self.assertEqual(body, b"")
        self.assertEqual(header(head, b"content-encoding"), b"gzip")
        self.assertEqual(header(head, b"etag"), b'W/"p1"')
        self.assertIsNone(header(head, b"content-length"))

    @defer.inlineCallbacks
    def test_live_stream_is_flushed_before_the_backend_ends(self):
        """A piece the backend sent reaches the client decodable while the response is still
        open (the encoder is flushed when the backend pauses)."""
        live = Live()
        yield self.start({b"live": live})
        client = yield connect(self.port)
        client.transport.write(b"GET /live HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        yield with_timeout(live.started)
        decoder = zlib.decompressobj(31)

        def decoded(received):
            head, sep, rest = received.partition(b"\r\n\r\n")
            if not sep:
                return False
            out, text = b"", rest
            while b"\r\n" in text:  # chunked: size line, data, CRLF
                size, _, text = text.partition(b"\r\n")
                n = int(size, 16)
                if len(text) < n + 2:
                    break
                out, text = out + text[:n], text[n + 2:]
            return zlib.decompressobj(31).decompress(out) == b"event one\n"

        yield with_timeout(client.until(decoded))
        live.request.write(b"event two\n")
        live.request.finish()
        [(head, body)] = yield with_timeout(client.responses(1))
        self.assertEqual(decoder.decompress(body), b"event one\nevent two\n")
        client.transport.loseConnection()

    @defer.inlineCallbacks
    def test_large_body_slow_client_is_back_pressured(self):
        """48 MiB through a client that stops reading: the backend is paused long before the
        end (nothing holds the body), then everything arrives and decodes byte for byte."""
        endless = Endless(48 * 1024 * 1024)
        yield self.start({b"big": endless}, route={"buffering": False})
        done = defer.Deferred()
        sink = _Counting(done)
        yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, self.port), sink)
        sink.transport.pauseProducing()
        sink.transport.write(b"GET /big HTTP/1.0\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        for _ in range(400):  # bounded wait (real sockets): until the backend stops writing
            d = defer.Deferred()
            reactor.callLater(0.025, d.callback, None)
            yield d
            if endless.paused_at is not None and endless.sent == endless.paused_at:
                settled = endless.sent
                d = defer.Deferred()
                reactor.callLater(0.2, d.callback, None)
                yield d
                if endless.sent == settled:
                    break
        self.assertLess(endless.sent, 24 * 1024 * 1024)
        sink.transport.resumeProducing()
        yield with_timeout(done, 120)
        self.assertEqual(sink.count, endless.total)
        self.assertEqual(sink.digest.hexdigest(), endless.expected())

    @defer.inlineCallbacks
    def test_cache_stores_compressed_and_identity_variants(self):
        """Cached route: a gzip miss then a gzip hit (the same encoded bytes, no backend
        call), an identity miss then an identity hit; the backend is asked twice."""
        page = Page()
        yield self.start({b"page": page}, route={"cache": True}, cache={"store": "memory"})
        gz = b"Accept-Encoding: gzip, deflate\r\n"
        h1, b1 = yield fetch(self.port, b"/page", gz)
        h2, b2 = yield fetch(self.port, b"/page", b"Accept-Encoding: deflate,GZIP\r\n")
        self.assertIn(b"fwd=uri-miss", header(h1, b"cache-status"))
        self.assertTrue(header(h2, b"cache-status").startswith(b"revproxy; hit"))
        self.assertEqual((header(h2, b"content-encoding"), header(h2, b"etag")),
                         (b"gzip", b'W/"p1"'))
        self.assertEqual(b1, b2)
        self.assertEqual(gzip.decompress(b2), PAGE)
        self.assertEqual(header(h2, b"content-length"), b"%d" % len(b2))
        h3, b3 = yield fetch(self.port, b"/page")
        h4, b4 = yield fetch(self.port, b"/page")
        self.assertEqual((b3, b4), (PAGE, PAGE))
        self.assertIsNone(header(h4, b"content-encoding"))
        self.assertTrue(header(h4, b"cache-status").startswith(b"revproxy; hit"))
        self.assertEqual(page.served, 2)
        h5, b5 = yield fetch(self.port, b"/page", b"Accept-Encoding: gzip, deflate\r\n"
                             b"If-None-Match: W/\"p1\"\r\n")
        self.assertEqual(h5.status, 304)
        self.assertEqual(page.served, 2)


class _Counting(protocol.Protocol):
    """An HTTP/1.0 client that decodes the gzip body as it arrives, keeping only a count and
    a digest."""

    def __init__(self, done):
        self.done = done
        self.head = b""
        self.in_body = False
        self.decoder = zlib.decompressobj(31)
        self.count = 0
        self.digest = hashlib.sha256()

    def dataReceived(self, data):
        if not self.in_body:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head, _, data = self.head.partition(b"\r\n\r\n")
            assert b"content-encoding: gzip" in self.head.lower(), self.head
            self.in_body = True
        out = self.decoder.decompress(data)
        self.count += len(out)
        self.digest.update(out)

    def connectionLost(self, reason=None):
        out = self.decoder.flush()
        self.count += len(out)
        self.digest.update(out)
        self.done.callback(None)
