"""An example pipeline hook plugin: refuse requests that lack a header, tag the rest.

Copy this file into a ``revproxy/plugins/`` directory on ``sys.path`` (no ``__init__.py``
there) and name it in the config::

    [[hooks]]
    plugin = "header-gate"
    options = { header = "x-api-key", status = 401 }

Requests without the header get ``status``; the others reach the backend with
``x-gate: passed`` and their responses carry ``x-gate-checked: 1``.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from revproxy.interfaces import IRequestHook, IRequestHookFactory
from revproxy.pipeline.hooks import Answer, RequestHook


@implementer(IRequestHook)
class HeaderGate(RequestHook):
    name = "header-gate"

    def __init__(self, header: bytes, status: int):
        self.header = header
        self.status = status

    def request_head(self, ctx):
        if ctx.header(self.header) is None:
            return Answer(self.status, reason="no %s header" % self.header.decode("ascii"))
        ctx.note("gate", "passed")
        return None

    def upstream_request(self, ctx, headers):
        headers.append((b"x-gate", b"passed"))

    def response_head(self, ctx, response):
        response.headers.append((b"x-gate-checked", b"1"))


@implementer(IPlugin, IRequestHookFactory)
class HeaderGateFactory:
    name = "header-gate"
    description = "refuses requests without a given header (example plugin)"

    def build(self, options, reactor):
        options = dict(options)
        header = options.pop("header", "x-api-key")
        status = options.pop("status", 401)
        if options:
            raise ValueError("unknown options: %s" % ", ".join(sorted(options)))
        if not isinstance(header, str) or not header:
            raise ValueError("header: expected a header name")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("status: expected a 4xx or 5xx status, not %r" % (status,))
        return HeaderGate(header.lower().encode("ascii"), status)


header_gate = HeaderGateFactory()
