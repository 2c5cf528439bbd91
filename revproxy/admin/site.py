"""The admin listener's HTTP site: authentication, the route table, JSON in and out.

Every answer is JSON (``/metrics`` is Prometheus text), errors are ``{"error": "..."}``:
401 without the bearer token (when one is configured), 404 for an unknown path, 405 with
``Allow`` for a wrong method, 400 for bad arguments. Every POST is logged with the caller's
address and what it did. The token is read from the runtime current at each call, so a
reload that changes it applies at once, also on a listener the reload kept.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from revproxy.admin import actions
from revproxy.admin.auth import authorized
from revproxy.admin.control import AdminControl
from revproxy.admin.routing import NOT_FOUND, Routes
from revproxy.admin.stats import stats_document
from revproxy.admin.status import status_document

log = Logger(namespace="revproxy.admin")

MAX_BODY = 65536


class BadRequest(Exception):
    """A call whose arguments are wrong: answered 400 with the message."""


class Call:
    """One admin call as a handler sees it."""

    def __init__(self, request, runtime, control, params):
        self.request = request
        self.runtime = runtime
        self.control = control
        self.params = params
        self._body = None

    def arg(self, name: str):
        """The first query-string value of ``name`` (text), or None."""
        values = self.request.args.get(name.encode("ascii"))
        return values[0].decode("utf-8", "replace") if values else None

    def body(self) -> dict:
        """The JSON object of the request body ({} when there is none)."""
        if self._body is None:
            content = self.request.content
            raw = content.read(MAX_BODY + 1) if content is not None else b""
            if len(raw) > MAX_BODY:
                raise BadRequest("request body over %d bytes" % MAX_BODY)
            if not raw.strip():
                self._body = {}
            else:
                try:
                    value = json.loads(raw.decode("utf-8"))
                except ValueError as e:
                    raise BadRequest("request body is not JSON: %s" % e)
                if not isinstance(value, dict):
                    raise BadRequest("request body must be a JSON object")
                self._body = value
        return self._body

    def value(self, name: str):
        """``name`` from the JSON body, else from the query string, else None."""
        body = self.body()
        if name in body:
            return body[name]
        return self.arg(name)


class Raw:
    """A non-JSON answer (``/metrics``)."""

    def __init__(self, status, content_type, body):
        self.status, self.content_type, self.body = status, content_type, body


# -- the handlers ------------------------------------------------------------------------------
def get_status(call):
    runtime = call.runtime
    return 200, status_document(runtime, runtime.clock.seconds(), call.control)


def get_stats(call):
    runtime = call.runtime
    return 200, stats_document(runtime, call.control.recorder, runtime.clock.seconds(),
                               call.control.wall_clock())


def post_member(call):
    action = call.params["action"]
    if action not in actions.MEMBER_ACTIONS:
        return actions.error(404, "no member action %r (actions: %s)" % (
            action, ", ".join(actions.MEMBER_ACTIONS)))
    weight = None
    if action == "weight":
        body = call.body()
        if "weight" not in body and call.arg("weight") is None:
            raise BadRequest('give the weight: JSON {"weight": N} or ?weight=N')
        try:
            weight = actions.parse_weight(call.value("weight"))
        except ValueError as e:
            raise BadRequest(str(e))
    return actions.member_action(call.runtime, call.params["pool"], call.params["member"],
                                 action, weight)


def _purge_request(call):
    chosen = [(name, call.value(name)) for name in ("url", "prefix", "tag")
              if call.value(name) is not None]
    if len(chosen) != 1:
        raise BadRequest("give exactly one of url, prefix, tag")
    name, value = chosen[0]
    if not isinstance(value, str) or not value:
        raise BadRequest("%s must be a non-empty string" % name)
    soft = call.value("soft")
    soft = soft is True or (isinstance(soft, str) and soft.lower() in ("1", "true", "yes"))
    return name, value, soft


def post_purge(call):
    name, value, soft = _purge_request(call)
    return actions.purge(call.runtime, name, value, soft)


def post_legacy_purge(call):
    """``POST /purge``: as before, ``{"purged": N}`` alone."""
    result = post_purge(call)
    if isinstance(result, defer.Deferred):
        return result.addCallback(lambda answer: (answer[0], {"purged": answer[1]["purged"]}))
    return result


def post_reload(call):
    return actions.reload(call.control.reloader)


def get_openapi(call):
    from revproxy.admin.openapi import openapi_document

    return 200, openapi_document()


def get_metrics(call):
    from prometheus_client import CONTENT_TYPE_LATEST

    from revproxy.admin.metrics import render

    return Raw(200, CONTENT_TYPE_LATEST.encode("ascii"), render(call.control.registry))


def default_routes() -> Routes:
    """The API's paths (docs/admin.md; the OpenAPI document describes the same)."""
    routes = Routes()
    routes.add("/api/status", {"GET": get_status})
    routes.add("/status", {"GET": get_status})  # the old path
    routes.add("/api/stats", {"GET": get_stats})
    routes.add("/api/members/{pool}/{member}/{action}", {"POST": post_member})
    routes.add("/api/purge", {"POST": post_purge})
    routes.add("/purge", {"POST": post_legacy_purge})  # the old path
    routes.add("/api/reload", {"POST": post_reload})
    routes.add("/openapi.json", {"GET": get_openapi})
    routes.add("/metrics", {"GET": get_metrics})
    return routes


# -- the resource ------------------------------------------------------------------------------
class AdminResource(resource.Resource):
    """Dispatches every admin call through ``routes`` (add paths to it before listening)."""

    isLeaf = True

    def __init__(self, control, routes=None):
        resource.Resource.__init__(self)
        self.control = control
        self.routes = routes if routes is not None else default_routes()

    def render(self, request):
        control = self.control
        runtime = control.holder.current
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("latin-1")
        if not authorized(getattr(runtime, "admin_token", None),
                          request.getHeader(b"authorization")):
            request.setHeader(b"www-authenticate", b'Bearer realm="revproxy admin"')
            if method == "POST":
                log.warn("admin {peer}: {method} {path} refused: no valid bearer token",
                         peer=_peer(request), method=method, path=path)
            return _json(request, 401, {"error": "a valid bearer token is required"})
        handler, params, problem = self.routes.match(method, path)
        if handler is None:
            if problem == NOT_FOUND:
                return _json(request, 404, {"error": "not found: %s" % path})
            request.setHeader(b"allow", ", ".join(params).encode("ascii"))
            return _json(request, 405, {"error": "method %s not allowed on %s (allowed: %s)"
                                                 % (method, path, ", ".join(params))})
        call = Call(request, runtime, control, params)
        try:
            result = handler(call)
        except BadRequest as e:
            result = actions.error(400, str(e))
        except Exception:
            log.failure("admin {method} {path} failed", method=method, path=path)
            result = actions.error(500, "internal error (see the error log)")
        if isinstance(result, defer.Deferred):
            result.addErrback(self._failed, method, path)
            result.addCallback(self._finish, request, method, path)
            request.notifyFinish().addErrback(lambda _: None)
            return server.NOT_DONE_YET
        return self._answer(request, method, path, result)

    @staticmethod
    def _failed(failure, method, path):
        log.failure("admin {method} {path} failed", failure, method=method, path=path)
        return actions.error(500, "internal error (see the error log)")

    def _finish(self, result, request, method, path):
        if request.finished or getattr(request, "_disconnected", False):
            return
        body = self._answer(request, method, path, result)
        request.write(body)
        request.finish()

    @staticmethod
    def _answer(request, method, path, result) -> bytes:
        if isinstance(result, Raw):
            request.setResponseCode(result.status)
            request.setHeader(b"content-type", result.content_type)
            request.setHeader(b"cache-control", b"no-store")
            return result.body
        status, document = result
        if method == "POST":
            query = request.uri.decode("latin-1").partition("?")[2]
            log.info("admin {peer}: POST {path}{q} -> {status}{why}", peer=_peer(request),
                     path=path, q="?" + query if query else "", status=status,
                     why=(": " + document["error"]) if "error" in document else "")
        return _json(request, status, document)


def _peer(request) -> str:
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    if host is None:
        return str(getattr(peer, "name", None) or "unix socket")
    return "%s:%s" % (host, getattr(peer, "port", ""))


def _json(request, status, document) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def admin_site(holder, control=None) -> server.Site:
    """The admin listener's site on ``holder``; ``control`` (``AdminControl``) carries the
    recorder and the reloader (a bare one when not given: status and purge still work)."""
    from revproxy.admin.dashboard import with_dashboard

    if control is None:
        control = AdminControl(holder)
    site = server.Site(with_dashboard(AdminResource(control)))
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None
    return site
