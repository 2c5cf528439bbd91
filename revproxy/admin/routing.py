"""Matching admin paths to handlers: 404 for an unknown path, 405 (with ``Allow``) for a
known path asked with another method. Pure: no Twisted.

A pattern is a path of segments; ``{name}`` matches one segment (percent-decoded, so a
member named ``https://10.0.0.1:443`` is written ``https%3A%2F%2F10.0.0.1%3A443``), and a
last segment ``{*name}`` matches the rest of the path (possibly empty).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

NOT_FOUND, WRONG_METHOD = "not-found", "wrong-method"


class Routes:
    """``add(pattern, {method: handler})`` in any order; ``match(method, path)`` returns
    ``(handler, params, None)``, or ``(None, None, NOT_FOUND)``, or
    ``(None, allowed_methods, WRONG_METHOD)``. Exact patterns win over parameterised ones;
    among those, the first added wins. ``HEAD`` is served by the ``GET`` handler."""

    def __init__(self):
        self._exact: Dict[str, Dict[str, Callable]] = {}
        self._patterns: List[Tuple[List[str], Dict[str, Callable]]] = []

    def add(self, pattern: str, handlers: Dict[str, Callable]) -> None:
        if "{" not in pattern:
            self._exact.setdefault(pattern, {}).update(handlers)
        else:
            self._patterns.append((pattern.strip("/").split("/"), dict(handlers)))

    def patterns(self) -> List[str]:
        """Every pattern, as added (the OpenAPI test walks them)."""
        return list(self._exact) + ["/" + "/".join(parts) for parts, _ in self._patterns]

    def match(self, method: str, path: str):
        found = self._find(path)
        if found is None:
            return None, None, NOT_FOUND
        handlers, params = found
        handler = handlers.get(method)
        if handler is None and method == "HEAD":
            handler = handlers.get("GET")
        if handler is None:
            allowed = sorted(handlers) + (["HEAD"] if "GET" in handlers else [])
            return None, allowed, WRONG_METHOD
        return handler, params, None

    def _find(self, path: str) -> Optional[Tuple[Dict[str, Callable], Dict[str, str]]]:
        handlers = self._exact.get(path)
        if handlers is None and len(path) > 1 and path.endswith("/"):
            handlers = self._exact.get(path.rstrip("/"))
        if handlers is not None:
            return handlers, {}
        segments = path.strip("/").split("/")
        for parts, handlers in self._patterns:
            params = _bind(parts, segments)
            if params is not None:
                return handlers, params
        return None


def _bind(parts: List[str], segments: List[str]) -> Optional[Dict[str, str]]:
    params = {}
    for index, part in enumerate(parts):
        if part.startswith("{*") and part.endswith("}"):
            params[part[2:-1]] = "/".join(unquote(s) for s in segments[index:])
            return params
        if index >= len(segments):
            return None
        segment = segments[index]
        if part.startswith("{") and part.endswith("}"):
            if not segment:
                return None
            params[part[1:-1]] = unquote(segment)
        elif part != segment:
            return None
    return params if len(segments) == len(parts) else None
