"""``example-maintenance``: requests under some path prefixes get 503 with Retry-After
(the backend is never asked); every other request goes on untouched."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.interfaces import IRequestHook
from revproxy.pipeline.hooks import Answer, RequestHook

PAGE = b"<!doctype html><title>Maintenance</title><p>Back soon.</p>\n"


@implementer(IRequestHook)
class MaintenanceHook(RequestHook):
    name = "example-maintenance"

    def __init__(self, prefixes, retry_after: int):
        self.prefixes = tuple(prefixes)
        self._headers = ((b"retry-after", b"%d" % retry_after),
                         (b"content-type", b"text/html; charset=utf-8"),
                         (b"cache-control", b"no-store"))

    def request_head(self, ctx):
        if ctx.path.startswith(self.prefixes):  # ctx.path: normalized, no query
            ctx.note("maintenance", True)
            return Answer(503, self._headers, PAGE, reason="maintenance: %s" % ctx.path)
        return None


def build(options, reactor):
    """``paths``: a list of path prefixes (each starting with /); ``retry_after``: seconds."""
    options = dict(options)
    paths = options.pop("paths", None)
    retry_after = options.pop("retry_after", 300)
    if options:
        raise ValueError("unknown options: %s" % ", ".join(sorted(options)))
    if not isinstance(paths, list) or not paths or not all(
            isinstance(p, str) and p.startswith("/") for p in paths):
        raise ValueError("paths: expected a non-empty list of path prefixes starting with /")
    if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
        raise ValueError("retry_after: expected whole seconds >= 0, not %r" % (retry_after,))
    return MaintenanceHook(paths, retry_after)
