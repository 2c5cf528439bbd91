"""The live dashboard of the admin listener: three static files served as package data.

``GET /`` is the page, ``GET /dashboard.js`` and ``GET /dashboard.css`` its script and style;
the page polls ``/api/stats`` and ``/api/status`` itself (see dashboard.js). The files hold no
secret and are served without the admin token; the API calls the page makes carry it.
``with_dashboard(api)`` puts the page in front of the admin API resource: every other path
(and every method but GET/HEAD on the page's paths) goes to ``api`` unchanged.
"""

from __future__ import annotations

import os

from twisted.web import resource

_HERE = os.path.dirname(os.path.abspath(__file__))

#: request path -> (file name, content type)
FILES = {
    b"/": ("index.html", b"text/html; charset=utf-8"),
    b"/index.html": ("index.html", b"text/html; charset=utf-8"),
    b"/dashboard.js": ("dashboard.js", b"text/javascript; charset=utf-8"),
    b"/dashboard.css": ("dashboard.css", b"text/css; charset=utf-8"),
}

# What the page may load: itself only (no external asset, no inline script).
_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def read_file(name: str) -> bytes:
    """The bytes of one dashboard file (read on every call: they are small, and an upgraded
    package serves its new page without a restart)."""
    with open(os.path.join(_HERE, name), "rb") as f:
        return f.read()


class DashboardRoot(resource.Resource):
    """Serves the dashboard files on their paths; hands everything else to ``api``."""

    isLeaf = True

    def __init__(self, api: resource.Resource):
        resource.Resource.__init__(self)
        self._api = api

    def render(self, request):
        found = FILES.get(request.path)
        if found is None or request.method not in (b"GET", b"HEAD"):
            return self._api.render(request)
        name, content_type = found
        body = read_file(name)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-security-policy", _CSP)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"content-length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body


def with_dashboard(api: resource.Resource) -> resource.Resource:
    """``api`` (the admin API's root resource) with the dashboard in front of it."""
    return DashboardRoot(api)
