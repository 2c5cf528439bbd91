"""Custom pages for the proxy's own 4xx/5xx answers, HTML or JSON by ``Accept`` (pure but for
loading the files, which happens once per config snapshot: start-up and reload).

A page is chosen by exact status, then by class (``4xx``/``5xx``). In a page the exact tokens
``{status}``, ``{reason}`` and ``{request_id}`` are replaced (HTML-escaped in HTML pages,
JSON-string-escaped in JSON pages; nothing else is touched, so CSS braces are safe). A client
preferring JSON (``Accept`` ranks ``application/json`` or ``+json`` above ``text/html``) gets
the JSON page, or the built-in ``{"status": 502, "error": "Bad Gateway", "request_id": ...}``
when none is configured; a client preferring HTML without a configured page gets the proxy's
usual short text. Every answer built here carries the request id header.
"""

from __future__ import annotations

import html
import json
from typing import Dict, Optional, Sequence, Tuple

HTML_TYPE = b"text/html; charset=utf-8"
JSON_TYPE = b"application/json"
MAX_PAGE = 1 << 20  # a page is read into memory once; bound it

Page = Tuple[Optional[bytes], Optional[bytes]]  # (html, json)


class PageError(Exception):
    """A page file cannot be used: ``key`` (e.g. ``error_pages.404``), ``path``, ``reason``."""

    def __init__(self, key: str, path: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.path = path
        self.reason = reason


def load_pages(entries: Sequence[Tuple[str, Tuple[str, ...]]], key: str = "error_pages"
               ) -> Dict[str, Page]:
    """Read the files of ``entries`` (as parsed from the config); PageError when one fails."""
    pages: Dict[str, Page] = {}
    for status, files in entries:
        html_page = json_page = None
        for path in files:
            where = "%s.%s" % (key, status)
            try:
                with open(path, "rb") as handle:
                    data = handle.read(MAX_PAGE + 1)
            except OSError as exc:
                raise PageError(where, path, "cannot read it: %s" % (exc.strerror or exc))
            if len(data) > MAX_PAGE:
                raise PageError(where, path, "expected a page of at most 1 MiB")
            if path.lower().endswith(".json"):
                json_page = data
            else:
                html_page = data
        pages[status] = (html_page, json_page)
    return pages


def wants_json(accept: Optional[bytes]) -> bool:
    """True when ``accept`` ranks a JSON type strictly above HTML (``text/html``, ``text/*``
    or ``*/*``); a missing or unparseable field means HTML."""
    if not accept:
        return False
    best_json = best_html = 0.0
    for item in accept.split(b","):
        media, _, params = item.strip().partition(b";")
        media = media.strip().lower()
        quality = 1.0
        for param in params.split(b";"):
            name, _, value = param.strip().partition(b"=")
            if name.strip().lower() == b"q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media == b"application/json" or media.endswith(b"+json"):
            best_json = max(best_json, quality)
        elif media in (b"text/html", b"text/*", b"*/*"):
            best_html = max(best_html, quality)
    return best_json > best_html


class ErrorPages:
    """The pages of one route (falling back to the server-wide ones)."""

    __slots__ = ("pages", "fallback")

    def __init__(self, pages: Dict[str, Page], fallback: Optional["ErrorPages"] = None) -> None:
        self.pages = pages
        self.fallback = fallback

    def find(self, status: int) -> Page:
        exact = self.pages.get(str(status)) or self.pages.get("%dxx" % (status // 100))
        if exact is not None:
            return exact
        if self.fallback is not None:
            return self.fallback.find(status)
        return (None, None)

    def render(self, status: int, phrase: bytes, request_id: bytes, accept: Optional[bytes]
               ) -> Optional[Tuple[bytes, bytes]]:
        """(content type, body) for this answer, or None for the proxy's usual short text."""
        html_page, json_page = self.find(status)
        if wants_json(accept):
            if json_page is None:
                return JSON_TYPE, json.dumps({
                    "status": status, "error": phrase.decode("latin-1"),
                    "request_id": request_id.decode("latin-1"),
                }).encode("ascii")
            return JSON_TYPE, _fill(json_page, status, phrase, request_id, _json_text)
        if html_page is None:
            return None
        return HTML_TYPE, _fill(html_page, status, phrase, request_id, _html_text)


def _html_text(value: bytes) -> bytes:
    return html.escape(value.decode("latin-1")).encode("latin-1")


def _json_text(value: bytes) -> bytes:
    return json.dumps(value.decode("latin-1"))[1:-1].encode("ascii")


def _fill(page: bytes, status: int, phrase: bytes, request_id: bytes, escape) -> bytes:
    return (page.replace(b"{status}", b"%d" % status)
            .replace(b"{reason}", escape(phrase))
            .replace(b"{request_id}", escape(request_id)))


class ErrorPageSet:
    """Every route's pages of one config snapshot; ``for_route(None)`` (no route matched)
    gives the ``[server] error_pages``."""

    __slots__ = ("server", "routes")

    def __init__(self, server: ErrorPages, routes: Dict[str, ErrorPages]) -> None:
        self.server = server
        self.routes = routes

    def for_route(self, route) -> ErrorPages:
        if route is None:
            return self.server
        return self.routes.get(route.name, self.server)


def build_error_pages(config) -> Optional[ErrorPageSet]:
    """The pages of ``config`` read from their files, or None when none is configured (the
    proxy's answers stay as they were). Raises ``ConfigError`` naming the file and key."""
    from revproxy.config.errors import ConfigError

    if not config.server.error_pages and not any(r.error_pages for r in config.routes):
        return None
    where = "[server]"
    try:
        server = ErrorPages(load_pages(config.server.error_pages))
        routes = {}
        for index, route in enumerate(config.routes):
            where = "[[routes]] #%d" % (index + 1)
            if route.error_pages:
                routes[route.name] = ErrorPages(load_pages(route.error_pages), server)
    except PageError as exc:
        raise ConfigError(config.source, "%s %s" % (where, exc.key), exc.path, exc.reason)
    return ErrorPageSet(server, routes)
