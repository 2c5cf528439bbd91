"""Route selection: the first route in config order whose every condition holds.

Conditions of a ``Route`` (all must hold; an empty one holds for every request):

* ``hosts`` — compared case-insensitively with the request's Host, port removed
  (``Example.COM:8080`` is ``example.com``, ``[::1]:80`` is ``::1``; a trailing dot of a
  fully-qualified name is ignored). ``*.example.com`` matches ``a.example.com`` and
  ``a.b.example.com`` but not ``example.com``.
* ``path_prefix`` — a plain string prefix of the *normalised* path, as nginx's
  ``location /api/``: ``/api`` also matches ``/apix``; write ``/api/`` to mean the segment.
* ``path_regex`` — ``re.match`` on the normalised path, i.e. anchored at the start (add
  ``$`` to anchor the end too).
* ``methods`` — the request method must be one of them, compared case-sensitively as
  RFC 9110 §9.1 requires (the config names are upper-cased; ``get`` is not ``GET``).
* ``headers`` — each ``HeaderMatch`` must hold: the field is present; with ``value``, one of
  its (repeated) field lines equals it exactly; with ``regex``, ``re.search`` finds it in one
  of them (with both set, one line must satisfy both). Field lines are not split on commas;
  values are compared as bytes (the config text encoded as UTF-8).
* ``query`` / ``cookies`` — each ``ValueMatch`` must hold on a query parameter / a cookie
  (``revproxy.routing.matchers``: present, exact value or regex, values percent-decoded).

Host matching is indexed, like a resource tree: exact names map to route indices, wildcard
suffixes likewise, and host-less routes form one list; a request merges only the lists its
host reaches, in config order, and tests the remaining conditions on those candidates.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Pattern, Sequence, Tuple

from revproxy.config.routemodel import HeaderMatch, Route
from revproxy.routing.matchers import ValueCheck, cookies_hold, query_holds

Headers = Sequence[Tuple[bytes, bytes]]

# Requests carry arbitrary Host values; bound the memo so a scan cannot grow it without end.
_CANDIDATE_CACHE_SIZE = 4096


def host_key(host: str) -> str:
    """The comparable form of a host name: lower-case, no port, no brackets, no final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            return host[1:end]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host[:-1] if host.endswith(".") else host


class _HeaderCheck:
    """One compiled ``HeaderMatch``."""

    __slots__ = ("name", "value", "regex")

    def __init__(self, match: HeaderMatch) -> None:
        self.name = match.name.lower().encode("ascii")
        self.value = None if match.value is None else match.value.encode("utf-8")
        self.regex = None if match.regex is None else re.compile(match.regex.encode("utf-8"))

    def holds(self, headers: Headers) -> bool:
        """True when one field line named ``name`` satisfies both value and regex (if set)."""
        for name, value in headers:
            if name != self.name:
                continue
            if self.value is not None and value != self.value:
                continue
            if self.regex is not None and self.regex.search(value) is None:
                continue
            return True
        return False


class _CompiledRoute:
    """The non-host conditions of one route, ready to test."""

    __slots__ = ("route", "prefix", "regex", "methods", "headers", "query", "cookies")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.prefix = route.path_prefix
        self.regex: Optional[Pattern[str]] = (
            None if route.path_regex is None else re.compile(route.path_regex)
        )
        self.methods = frozenset(m.upper().encode("ascii") for m in route.methods)
        self.headers = tuple(_HeaderCheck(match) for match in route.headers)
        self.query = tuple(ValueCheck(m.name, m.value, m.regex) for m in route.query)
        self.cookies = tuple(ValueCheck(m.name, m.value, m.regex) for m in route.cookies)

    def matches(self, path: str, method: bytes, headers: Headers,
                query: Optional[str] = None) -> bool:
        if self.prefix is not None and not path.startswith(self.prefix):
            return False
        if self.regex is not None and self.regex.match(path) is None:
            return False
        if self.methods and method not in self.methods:
            return False
        for check in self.headers:
            if not check.holds(headers):
                return False
        if self.query and not query_holds(self.query, query):
            return False
        if self.cookies and not cookies_hold(self.cookies, headers):
            return False
        return True


class Router:
    """Picks the first matching route; built once per config snapshot."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = [_CompiledRoute(route) for route in routes]
        self._exact: Dict[str, List[int]] = {}
        self._wildcard: Dict[str, List[int]] = {}  # ".example.com" -> indices
        self._any: List[int] = []
        for index, route in enumerate(routes):
            if not route.hosts:
                self._any.append(index)
            for host in route.hosts:
                self._index_host(host, index)
        self._cache: Dict[str, Tuple[int, ...]] = {}

    def _index_host(self, host: str, index: int) -> None:
        if host.startswith("*."):
            table, key = self._wildcard, "." + host_key(host[2:])
        else:
            table, key = self._exact, host_key(host)
        indices = table.setdefault(key, [])
        if not indices or indices[-1] != index:  # a name listed twice by one route
            indices.append(index)

    def match(self, host: bytes, path: str, method: bytes, headers: Headers,
              query: Optional[str] = None) -> Optional[Route]:
        """Return the first route, in config order, matching the request; None means 404.
        ``query`` is the raw query (str) or None."""
        for index in self._candidates(host.decode("latin-1")):
            compiled = self._routes[index]
            if compiled.matches(path, method, headers, query):
                return compiled.route
        return None

    def _candidates(self, host: str) -> Tuple[int, ...]:
        """Indices of the routes whose host condition admits ``host``, in config order."""
        found = self._cache.get(host)
        if found is not None:
            return found
        key = host_key(host)
        merged = set(self._exact.get(key, ()))
        merged.update(self._any)
        dot = key.find(".", 1)
        while dot != -1:
            merged.update(self._wildcard.get(key[dot:], ()))
            dot = key.find(".", dot + 1)
        found = tuple(sorted(merged))
        if len(self._cache) >= _CANDIDATE_CACHE_SIZE:
            self._cache.clear()
        self._cache[host] = found
        return found
