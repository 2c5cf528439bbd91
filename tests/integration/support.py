"""Integration-test support: real backends and the real proxy on loopback, ephemeral ports."""

from __future__ import annotations

import json

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.web import resource, server

from revproxy.config.load import parse_config
from revproxy.http1.parser import END, NEED_DATA, Limits, ResponseParser
from revproxy.tap import build

LOOPBACK = "127.0.0.1"


# -- backends --------------------------------------------------------------------------------
class Echo(resource.Resource):
    """Answers with what it received: method, uri, headers (all values), body length/bytes."""

    isLeaf = True

    def render(self, request):
        body = request.content.read()
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({
            "method": request.method.decode("latin-1"),
            "uri": request.uri.decode("latin-1"),
            "headers": [[k.decode("latin-1").lower(), v.decode("latin-1")]
                        for k, vs in request.requestHeaders.getAllRawHeaders() for v in vs],
            "body": body.decode("latin-1"),
            "port": request.getHost().port,
        }).encode("utf-8")


class Sized(resource.Resource):
    """``/size/N``: N bytes of a repeating pattern, with Content-Length."""

    isLeaf = True

    def render_GET(self, request):
        n = int(request.postpath[0]) if request.postpath and request.postpath[0] else 0
        request.setHeader(b"content-type", b"application/octet-stream")
        return pattern(n)

    render_HEAD = render_GET


class Cookies(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.responseHeaders.setRawHeaders(b"set-cookie", [b"a=1; Path=/", b"b=2; Path=/"])
        return b"cookies"


class Status(resource.Resource):
    """``/status/N``: an empty response with status N."""

    isLeaf = True

    def render(self, request):
        request.setResponseCode(int(request.postpath[0]))
        return b""


def pattern(n: int) -> bytes:
    block = bytes(range(256)) * 4
    return (block * (n // len(block) + 1))[:n]


def backend_site() -> server.Site:
    root = resource.Resource()
    root.putChild(b"echo", Echo())
    root.putChild(b"size", Sized())
    root.putChild(b"cookies", Cookies())
    root.putChild(b"status", Status())
    root.putChild(b"", Echo())
    site = server.Site(root)
    site.log = lambda request: None
    return site


def listen(factory):
    """Listen on an ephemeral loopback port; the caller must stopListening."""
    return reactor.listenTCP(0, factory, interface=LOOPBACK)


class ScriptedBackend(protocol.Protocol):
    """A raw backend: on each request head, runs ``script(self, head_bytes)``."""

    def __init__(self, script, log):
        self._script = script
        self._buffer = b""
        self._log = log

    def connectionMade(self):
        self._log.append(("connect", self))

    def dataReceived(self, data):
        self._buffer += data
        while b"\r\n\r\n" in self._buffer:
            head, _, rest = self._buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self._buffer = rest[length:]
            self._log.append(("request", head + b"\r\n\r\n" + rest[:length]))
            self._script(self, head)


def scripted_factory(script, log):
    factory = protocol.Factory()
    factory.protocol = lambda: ScriptedBackend(script, log)
    return factory


# -- the proxy -------------------------------------------------------------------------------
def proxy_config(members, routes=None, **sections):
    """A config dict for ``parse_config``: one pool "main" of ``members`` (ports or URLs)."""
    urls = [m if isinstance(m, str) else "http://%s:%d" % (LOOPBACK, m) for m in members]
    data = {
        "server": {"listen": ["tcp:0:interface=%s" % LOOPBACK]},
        "logging": {"access_log": "", "error_log": "-"},
        "pools": {"main": {"members": urls}},
    }
    if routes is not None:
        data["routes"] = routes
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


@defer.inlineCallbacks
def start_proxy(testcase, data, temp_dir=None):
    """Start the real proxy service for ``data``; returns (service, port number)."""
    data.setdefault("buffering", {}).setdefault("temp_dir", temp_dir or testcase.mktemp())
    config = parse_config(data, "<test>")
    service = build(config, reactor, randbytes=lambda n: b"\x01" * n)
    service.startService()
    testcase.addCleanup(service.stopService)
    ports = yield service.listening
    return (service, ports[-1].getHost().port)


# -- a raw client ----------------------------------------------------------------------------
class RawClient(protocol.Protocol):
    """Sends bytes; collects everything; parses responses with the strict parser.

    Arrivals are kept as a list of chunks and parsed incrementally (one parser per
    ``responses`` waiter, fed only what is new): a multi-megabyte response costs linear
    time, not a re-parse of everything on each arrival (which made large-body tests slow
    enough to time out on a loaded machine)."""

    def __init__(self):
        self._chunks = []
        self._joined = b""
        self.closed = defer.Deferred()
        self._waiters = []

    @property
    def received(self):
        """Everything received so far (bytes)."""
        if self._chunks:
            self._joined += b"".join(self._chunks)
            self._chunks = []
        return self._joined

    @received.setter
    def received(self, value):
        """Forget what arrived (``client.received = b""``); waiters already parsing keep
        their place."""
        self._chunks = []
        self._joined = value

    def dataReceived(self, data):
        self._chunks.append(data)
        self._check(data)

    def connectionLost(self, reason=None):
        self._check(b"")
        for waiter in self._waiters:
            if not waiter[1].called:
                waiter[1].errback(AssertionError("closed after %r" % self.received[-300:]))
        self._waiters = []
        self.closed.callback(self.received)

    def responses(self, count, methods=None):
        """A Deferred of the first ``count`` complete responses as (head, body) pairs."""
        d = defer.Deferred()
        reader = ResponseReader(methods)
        reader.feed(self.received)
        self._waiters.append((count, d, reader))
        self._check(b"")
        return d

    def until(self, predicate):
        """A Deferred firing once ``predicate(received)`` holds (checked on each arrival)."""
        d = defer.Deferred()
        self._waiters.append((predicate, d, None))
        self._check(b"")
        return d

    def _check(self, data):
        for waiter in list(self._waiters):
            if callable(waiter[0]):
                if waiter[0](self.received):
                    self._waiters.remove(waiter)
                    waiter[1].callback(self.received)
                continue
            count, d, reader = waiter
            if data:
                reader.feed(data)
            if len(reader.out) >= count:
                self._waiters.remove(waiter)
                d.callback(reader.out[:count])


class ResponseReader:
    """Responses parsed as bytes arrive: ``feed(data)``, complete ones in ``out`` as
    (head, body) pairs (1xx heads as (head, b"")); stops at the first parse error."""

    def __init__(self, methods=None):
        self.out = []
        self._methods = list(methods or [])
        self._parser = ResponseParser(Limits())
        self._parser.expect(self._next_method())
        self._head, self._body = None, []
        self._broken = False

    def _next_method(self):
        return self._methods.pop(0) if self._methods else b"GET"

    def feed(self, data):
        if self._broken or not data:
            return
        parser = self._parser
        parser.feed(data)
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                return
            if event is END:
                self.out.append((self._head, b"".join(self._body)))
                self._head, self._body = None, []
                parser.expect(self._next_method())
            elif isinstance(event, bytes):
                self._body.append(event)
            elif hasattr(event, "status"):
                if event.status < 200 and event.status != 101:
                    self.out.append((event, b""))
                else:
                    self._head = event
            else:
                self._broken = True
                return


def parse_responses(data, methods=None):
    """Every complete response in ``data`` (1xx heads included as (head, b""))."""
    reader = ResponseReader(methods)
    reader.feed(data)
    return reader.out


@defer.inlineCallbacks
def connect(port):
    client = RawClient()
    yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), client)
    return client


def header(head, name):
    values = [v for k, v in head.headers if k == name]
    return values[0] if values else None


def with_timeout(d, seconds=10):
    """Bound a Deferred so a hung proxy fails the test instead of hanging the run."""
    return d.addTimeout(seconds, reactor)


def https_get_blocking(port, context, session=None, host="site.test", path=b"/echo"):
    """One GET over a new TLS connection (stdlib ``ssl``) offering ``session``, answered
    then closed: (head as text, body bytes, resumed, the connection's session). Blocking:
    run it in a thread (``threads.deferToThread``)."""
    import socket

    with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host, session=session) as tls:
            tls.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                        % (path, host.encode("ascii")))
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            return head.decode("latin-1"), body, tls.session_reused, tls.session
