"""DEMO backends: two tiny Twisted sites the embedded default config starts on 127.0.0.1.

Only ``[demo] enabled = true`` starts them (the embedded default does, so ``curl`` works right
after install); a real config leaves them off.
"""

from __future__ import annotations

import json

from twisted.web import resource, server


class _Hello(resource.Resource):
    isLeaf = True

    def __init__(self, name):
        resource.Resource.__init__(self)
        self._name = name

    def render(self, request):
        path = request.path.decode("latin-1")
        if path.startswith("/echo"):
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({
                "backend": self._name,
                "method": request.method.decode("latin-1"),
                "uri": request.uri.decode("latin-1"),
                "headers": {k.decode("latin-1"): [v.decode("latin-1") for v in vs]
                            for k, vs in request.requestHeaders.getAllRawHeaders()},
                "body_length": len(request.content.read()),
            }, indent=2).encode("utf-8") + b"\n"
        if path.startswith("/big"):
            request.setHeader(b"content-type", b"application/octet-stream")
            return b"x" * (1024 * 1024)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"public, max-age=10")  # see Cache-Status: hit
        return ("Hello from revproxy's DEMO backend %s (%s %s).\n"
                "Try /echo to see what the proxy sent, /big for 1 MiB.\n"
                "This page may be cached for 10 s: look at the Cache-Status header.\n"
                % (self._name, request.method.decode("latin-1"), path)).encode("utf-8")


def demo_site(name: str) -> server.Site:
    site = server.Site(_Hello(name))
    site.displayTracebacks = False
    site.noisy = False
    return site
