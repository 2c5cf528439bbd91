"""The supervisor's admin listener: every call answered from the workers' private admin APIs.

Each worker serves the admin API of one process on its own Unix socket (in the supervisor's
0700 runtime directory); the supervisor's listener is the one operators reach:

- ``GET /api/status`` (``/status``) and ``GET /api/stats``: every worker's document, summed
  (``revproxy.workers.merge``), each worker's own under ``workers``;
- ``GET /metrics``: every worker's samples combined (``revproxy.workers.metrics``) plus the
  supervisor's ``revproxy_workers`` and ``revproxy_worker_restarts_total``;
- ``POST /api/reload``: the supervisor's check first (``--check`` and no listener change); a
  refused config reaches no worker; an accepted one is sent to every worker;
- any other ``POST`` (member drain / enable / disable / weight, purge): sent to every worker,
  the answers merged (``merge_actions``);
- anything else (the dashboard, ``/openapi.json``, unknown paths): relayed from the first
  running worker as it answered.

The caller's ``Authorization`` header goes to the workers unchanged: each worker checks the
token as a single process does, and a 401 from every worker is relayed as it is.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.logger import Logger
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from revproxy.workers.merge import merge_actions, merge_documents
from revproxy.workers.metrics import merge_families, render, supervisor_families

log = Logger(namespace="revproxy.workers")

TIMEOUT = 10.0  # seconds a worker has to answer one admin call
MAX_BODY = 1024 * 1024  # request body relayed to the workers
MERGED = frozenset({b"/api/status", b"/status", b"/api/stats"})  # documents summed
FORWARDED_HEADERS = (b"authorization", b"content-type", b"accept")
RELAYED_HEADERS = (b"allow", b"www-authenticate")  # from a worker's answer, with its status


@implementer(IAgentEndpointFactory)
class _SocketEndpoints:
    """``http://worker-N/...`` -> the Unix socket of worker N."""

    def __init__(self, reactor, paths):
        self._reactor = reactor
        self._paths = paths  # host bytes -> socket path

    def endpointForURI(self, uri):
        return UNIXClientEndpoint(self._reactor, self._paths[uri.host], timeout=TIMEOUT)


class WorkerCalls:
    """HTTP calls to the workers' admin sockets; ``supervisor.worker_sockets()`` says where."""

    def __init__(self, reactor, supervisor):
        self._reactor = reactor
        self._supervisor = supervisor
        self._paths = {}
        pool = HTTPConnectionPool(reactor, persistent=True)  # one connection per worker, kept
        self._agent = Agent.usingEndpointFactory(reactor, _SocketEndpoints(reactor, self._paths),
                                                 pool=pool)

    def call_all(self, method, uri, headers, body):
        """A Deferred of ``[(info, status or None, headers or None, body bytes or error text)]``
        for every worker slot (a slot that is down answers with an error)."""
        calls = []
        for info, path in self._supervisor.worker_sockets():
            if path is None:
                calls.append(defer.succeed((info, None, None, "not running")))
            else:
                calls.append(self._call(info, path, method, uri, headers, body))
        return defer.gatherResults(calls)

    def _call(self, info, path, method, uri, headers, body):
        from twisted.web.client import FileBodyProducer
        from io import BytesIO

        host = b"worker-%d" % info["index"]
        self._paths[host] = path
        producer = FileBodyProducer(BytesIO(body)) if body else None
        d = self._agent.request(method, b"http://" + host + uri, Headers(headers), producer)
        d.addTimeout(TIMEOUT, self._reactor)

        def got(response):
            return readBody(response).addCallback(
                lambda data: (info, response.code, response.headers, data))

        d.addCallback(got)
        d.addErrback(lambda f: (info, None, None, f.getErrorMessage() or
                                f.type.__name__))
        return d


class FanOutResource(resource.Resource):
    """The supervisor's admin site root (see the module docstring)."""

    isLeaf = True

    def __init__(self, reactor, supervisor, calls=None):
        resource.Resource.__init__(self)
        self._supervisor = supervisor
        self._calls = calls if calls is not None else WorkerCalls(reactor, supervisor)

    def render(self, request):
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = defer.maybeDeferred(self._answer, request)

        def send(answer):
            status, content_type, body = answer[:3]
            if gone:
                return
            request.setResponseCode(status)
            for name, value in (answer[3] if len(answer) > 3 else {}).items():
                request.setHeader(name, value)
            request.setHeader(b"content-type", content_type)
            request.setHeader(b"cache-control", b"no-store")
            request.write(body)
            request.finish()

        def failed(failure):
            log.failure("admin fan-out failed", failure)
            return 500, b"application/json", _json({"error": "internal error (see the log)"})

        d.addErrback(failed).addCallback(send)
        return server.NOT_DONE_YET

    def _answer(self, request):
        method, path = request.method, request.path
        uri = request.uri
        headers = {name: request.requestHeaders.getRawHeaders(name)
                   for name in FORWARDED_HEADERS if request.requestHeaders.hasHeader(name)}
        body = request.content.read(MAX_BODY) if request.content is not None else b""
        if method == b"GET" and path in MERGED:
            return self._calls.call_all(method, uri, headers, b"").addCallback(
                self._documents)
        if method == b"GET" and path == b"/metrics":
            return self._calls.call_all(method, uri, headers, b"").addCallback(self._metrics)
        if method == b"POST":
            peer = request.getClientAddress()
            log.info("admin: {method} {uri} from {peer}: sent to every worker",
                     method=method.decode("ascii", "replace"),
                     uri=uri.decode("ascii", "replace"), peer=getattr(peer, "host", peer))
        if method == b"POST" and path == b"/api/reload":
            return self._reload(uri, headers, body)
        if method == b"POST":
            return self._calls.call_all(method, uri, headers, body).addCallback(self._actions)
        return self._calls.call_all(method, uri, headers, body).addCallback(self._first)

    # -- answers ---------------------------------------------------------------------------------
    def _documents(self, answers):
        unanimous = _same_refusal(answers)
        if unanimous is not None:
            return unanimous
        parsed = []
        for info, status, _, body in answers:
            if status == 200:
                doc, error = _parse_json(body)
                parsed.append((info, doc, error))
            else:
                parsed.append((info, None, _error_text(status, body)))
        if not any(doc is not None for _, doc, _ in parsed):
            return 503, b"application/json", _json(
                {"error": "no worker answered", "workers": [
                    dict(info, error=error) for info, _, error in parsed]})
        merged = merge_documents(parsed, _pid())
        listeners = merged.get("listeners")
        if isinstance(listeners, dict) and "admin" in listeners:  # not the private sockets
            listeners["admin"] = list(self._supervisor.config.admin.listen)
        return 200, b"application/json", _json(merged)

    def _metrics(self, answers):
        unanimous = _same_refusal(answers)
        if unanimous is not None:
            return unanimous
        texts = []
        for info, status, _, body in answers:
            if status == 200:
                texts.append(body.decode("utf-8", "replace"))
            else:
                log.warn("metrics: worker {index} did not answer: {why}",
                         index=info["index"], why=_error_text(status, body))
        try:
            families = merge_families(texts)
        except ValueError as e:
            return 502, b"application/json", _json({"error": "a worker's metrics do not "
                                                             "parse: %s" % e})
        families += supervisor_families([info for info, _ in
                                         self._supervisor.worker_sockets()])
        return 200, b"text/plain; version=0.0.4; charset=utf-8", render(families)

    def _actions(self, answers):
        results = []
        for info, status, _, body in answers:
            if status is None:
                results.append((info, None, None, body))
            else:
                doc, error = _parse_json(body)
                results.append((info, status, doc if error is None else
                                body.decode("utf-8", "replace"), None))
        status, doc = merge_actions(results)
        return status, b"application/json", _json(doc), _relayed(answers[0][2])

    def _first(self, answers):
        for info, status, headers, body in answers:
            if status is not None:
                content_type = (headers.getRawHeaders(b"content-type") or
                                [b"application/octet-stream"])[0]
                return status, content_type, body, _relayed(headers)
        return 503, b"application/json", _json({"error": "no worker is running"})

    def _reload(self, uri, headers, body):
        def checked(outcome):
            accepted, reason = outcome
            if not accepted:  # as one process refuses a reload (docs/admin.md)
                return 409, b"application/json", _json(
                    {"reloaded": False, "error": reason, "workers": []})
            return self._calls.call_all(b"POST", uri, headers, body).addCallback(self._actions)

        return self._supervisor.check_reload().addCallback(checked)


def _same_refusal(answers):
    """The first answer, as it is, when every worker refused the call with the same status
    (401 without the token...); else None."""
    statuses = set(status for _, status, _, _ in answers)
    if len(statuses) == 1 and None not in statuses and 200 not in statuses:
        _, status, headers, body = answers[0]
        content_type = (headers.getRawHeaders(b"content-type") or [b"application/json"])[0]
        return status, content_type, body, _relayed(headers)
    return None


def _relayed(headers):
    """The headers of a worker's answer that go with its status (``Allow`` of a 405,
    ``WWW-Authenticate`` of a 401)."""
    if headers is None:
        return {}
    found = {}
    for name in RELAYED_HEADERS:
        values = headers.getRawHeaders(name)
        if values:
            found[name] = values[0]
    return found


def _parse_json(body):
    try:
        return json.loads(body.decode("utf-8")), None
    except ValueError as e:
        return None, "not JSON: %s" % e


def _error_text(status, body):
    if status is None:
        return body if isinstance(body, str) else repr(body)
    return "HTTP %d: %s" % (status, body[:200].decode("utf-8", "replace"))


def _json(doc):
    return json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n"


def _pid():
    import os

    return os.getpid()


def fanout_site(reactor, supervisor):
    site = server.Site(FanOutResource(reactor, supervisor))
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None  # mutating calls are logged with their peer above
    return site
