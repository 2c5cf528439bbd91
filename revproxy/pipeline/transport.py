"""Built-in stages for routes that want HTTPS: the 308 redirect and Strict-Transport-Security.

``transport_hooks(routes)`` returns the hooks the routes need (none when no route sets
``https_redirect`` or ``hsts``, so other configs pay nothing); the composition root puts
them before the ``[[hooks]]`` plugins.

* ``HttpsRedirectHook`` (request_head): a request that arrived on a plain-HTTP listener
  (``PeerFacts.scheme == "http"``) for a route with ``https_redirect`` is answered
  ``308 Permanent Redirect`` to ``https://{host}[:https_port]{target}`` before any backend
  is contacted (308 keeps the method and body, RFC 9110 §15.4.9).
* ``HstsHook`` (response_head): over HTTPS only, a route's ``hsts`` value is set as
  ``Strict-Transport-Security`` on the backend's responses, replacing one the backend sent.
  Never over plain HTTP (RFC 6797 §7.2: a host must not send it there).
"""

from __future__ import annotations

from typing import Tuple

from zope.interface import implementer

from revproxy.interfaces import IRequestHook
from revproxy.pipeline.hooks import Answer, RequestHook

HSTS = b"strict-transport-security"


def redirect_location(host: bytes, target: bytes, https_port: int) -> bytes:
    """``https://host[:port]target`` for a request's Host and target: the Host's own port is
    dropped (it is the plain listener's), ``https_port`` added unless 0 or 443; an
    absolute-form target keeps only its path and query, ``*`` becomes ``/``."""
    if host.startswith(b"["):
        name = host[: host.index(b"]") + 1] if b"]" in host else host
    else:
        name = host.rsplit(b":", 1)[0] if b":" in host else host
    if https_port and https_port != 443:
        name += b":%d" % https_port
    if not target.startswith(b"/"):
        scheme_end = target.find(b"://")
        if scheme_end >= 0:
            slash = target.find(b"/", scheme_end + 3)
            query = target.find(b"?", scheme_end + 3)
            if slash < 0 and query < 0:
                target = b"/"
            else:
                cut = min(i for i in (slash, query) if i >= 0)
                target = target[cut:] if target[cut:cut + 1] == b"/" else b"/" + target[cut:]
        else:
            target = b"/"
    return b"https://" + name + target


@implementer(IRequestHook)
class HttpsRedirectHook(RequestHook):
    """308 to HTTPS for plain-HTTP requests on routes with ``https_redirect``."""

    name = "https-redirect"

    def request_head(self, ctx):
        route = ctx.route
        if not route.https_redirect or ctx.peer.scheme != "http":
            return None
        location = redirect_location(ctx.head.host or b"", ctx.head.target, route.https_port)
        return Answer(308, headers=((b"location", location),
                                    (b"content-type", b"text/plain; charset=utf-8")),
                      body=b"308 Permanent Redirect\n",
                      reason="redirected to HTTPS (route %s)" % route.name)


@implementer(IRequestHook)
class HstsHook(RequestHook):
    """``Strict-Transport-Security`` from the route's ``hsts`` on HTTPS responses."""

    name = "hsts"

    def __init__(self):
        self._values = {}  # route hsts text -> header value bytes

    def response_head(self, ctx, response):
        text = ctx.route.hsts
        if not text or ctx.peer.scheme != "https":
            return None
        value = self._values.get(text)
        if value is None:
            value = self._values[text] = text.encode("ascii")
        headers = response.headers
        if any(name == HSTS for name, _ in headers):
            headers[:] = [h for h in headers if h[0] != HSTS]
        headers.append((HSTS, value))
        return None


def transport_hooks(routes) -> Tuple[RequestHook, ...]:
    """The built-in hooks ``routes`` need, in the order they run."""
    hooks = []
    if any(route.https_redirect for route in routes):
        hooks.append(HttpsRedirectHook())
    if any(route.hsts for route in routes):
        hooks.append(HstsHook())
    return tuple(hooks)


def is_transport_hook(hook) -> bool:
    return isinstance(hook, (HttpsRedirectHook, HstsHook))

