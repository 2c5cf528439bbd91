"""Path and query rewriting of the target a backend receives, and ``Location`` back (pure).

Matching uses the normalised path (``revproxy.routing.normalize``); what the backend receives
is built from the ORIGINAL target bytes wherever that is unambiguous:

* ``strip_prefix`` removes the prefix from the raw path when the raw path starts with the
  same bytes AND the rest, normalised on its own, equals the rest of the normalised path (so
  ``/api/%7Euser`` becomes ``/%7Euser``, escapes as sent). When the raw bytes differ (``/%61pi/x``,
  ``/x/../api/y``) the rest of the normalised path is sent instead: an RFC 3986-equivalent
  spelling whose escapes are the client's (hex upper-cased), never a re-encoding. A path that
  does not start with the prefix is left alone. The result always starts with ``/``
  (``/api`` stripped from ``/api`` is ``/``; from ``/apix``, ``/x``, as Traefik does).
* ``rewrite = {regex, replace}`` is applied to the normalised path (the spelling the route
  matched): ``re.match``, the replacement a template with ``$1`` captures; no match leaves the
  path alone. ``set_path`` replaces the path with a template.
* ``add_prefix`` is then put in front (one ``/`` at the join).
* the query: ``keep`` (as sent), ``drop``, or a template (``v=2&{query}``; empty renders none).

Substituted values are percent-encoded where they would end or corrupt the path (see
``templates``), so a rewritten target is always one the strict request-line parser accepts.
"""

from __future__ import annotations

import re
from typing import Optional, Pattern

from revproxy.http1.errors import ProtocolError
from revproxy.routing.normalize import normalize_target
from revproxy.routing.templates import Template, TemplateValues

KEEP = "keep"
DROP = "drop"


def split_target(target: bytes):
    """(raw path, raw query or None) of a request-target in origin or absolute form."""
    if target[:1] != b"/":
        rest = target.partition(b"://")[2]
        cut = len(rest)
        for mark in (b"/", b"?"):
            found = rest.find(mark)
            if 0 <= found < cut:
                cut = found
        target = rest[cut:]
        if target[:1] != b"/":
            target = b"/" + target
    path, sep, query = target.partition(b"?")
    return path, (query if sep else None)


def strip_raw_prefix(raw_path: bytes, path: str, prefix: str) -> bytes:
    """``raw_path`` without ``prefix`` (see the module doc); ``path`` is its normalised form."""
    if not path.startswith(prefix):
        return raw_path
    rest = path[len(prefix):]
    wanted = rest if rest.startswith("/") else "/" + rest
    encoded = prefix.encode("ascii")
    if raw_path.startswith(encoded):
        raw_rest = raw_path[len(encoded):]
        if raw_rest[:1] != b"/":
            raw_rest = b"/" + raw_rest
        if _normalised(raw_rest) == wanted:
            return raw_rest
    return wanted.encode("ascii")


def _normalised(raw: bytes) -> Optional[str]:
    try:
        return normalize_target(raw, True).path
    except ProtocolError:
        return None


def join_prefix(prefix: bytes, path: bytes) -> bytes:
    """``prefix`` in front of ``path`` (which starts with ``/``), one ``/`` at the join."""
    return prefix.rstrip(b"/") + path


class TargetRewrite:
    """One route's rewriting of the target sent upstream; built once per config snapshot."""

    __slots__ = ("strip_prefix", "add_prefix", "regex", "replace", "set_path", "query")

    def __init__(self, strip_prefix: Optional[str] = None, add_prefix: Optional[str] = None,
                 regex: Optional[Pattern[str]] = None, replace: Optional[Template] = None,
                 set_path: Optional[Template] = None, query=KEEP) -> None:
        self.strip_prefix = strip_prefix
        self.add_prefix = None if add_prefix is None else add_prefix.encode("ascii")
        self.regex = regex
        self.replace = replace
        self.set_path = set_path
        self.query = query  # KEEP, DROP or a Template

    def captures(self, path: str):
        """The groups of ``rewrite.regex`` on the normalised ``path``, or None (no match)."""
        if self.regex is None:
            return None
        match = self.regex.match(path)
        return None if match is None else match.groups()

    def target(self, raw_target: bytes, path: str, values: TemplateValues,
               matched: bool = False) -> bytes:
        """The origin-form target for the backend. ``path`` is the normalised path; ``values``
        feed the templates (its ``captures`` are the regex's when ``matched``)."""
        raw_path, raw_query = split_target(raw_target)
        new_path = raw_path
        if self.set_path is not None:
            new_path = _as_path(self.set_path.render(values))
        elif self.regex is not None:
            if matched:
                new_path = _as_path(self.replace.render(values))
        elif self.strip_prefix is not None:
            new_path = strip_raw_prefix(raw_path, path, self.strip_prefix)
        if self.add_prefix is not None:
            new_path = join_prefix(self.add_prefix, new_path)
        query = self.query
        if query == KEEP:
            return new_path if raw_query is None else new_path + b"?" + raw_query
        if query == DROP:
            return new_path
        rendered = query.render(values)
        return new_path + b"?" + rendered if rendered else new_path


def _as_path(value: bytes) -> bytes:
    return value if value[:1] == b"/" else b"/" + value


# -- Location / Content-Location back to the client's view (nginx proxy_redirect default) ----
_ABSOLUTE = re.compile(rb"(?i)(https?)://([^/?#]*)(.*)\Z", re.S)


def location_back(value: bytes, *, upstream_hosts, client_scheme: bytes, client_host: bytes,
                  strip_prefix: Optional[bytes], add_prefix: Optional[bytes]) -> bytes:
    """``value`` (a Location or Content-Location from the backend) as the client must see it.

    An absolute URL whose authority is one the request was sent to (``upstream_hosts``, lower
    case: the member's address, the Host sent) gets the client's scheme and Host; other
    absolute URLs are left alone (a redirect elsewhere). Then the path, when it starts with
    ``add_prefix``, has it replaced by ``strip_prefix`` (what was added is taken off, what was
    stripped is put back). Relative references other than absolute paths are left alone.
    """
    match = _ABSOLUTE.match(value)
    if match is not None:
        if match.group(2).lower() not in upstream_hosts:
            return value
        rest = match.group(3)
        prefix = client_scheme + b"://" + client_host
    elif value[:1] == b"/" and value[:2] != b"//":
        rest, prefix = value, b""
    else:
        return value
    if rest[:1] == b"/" or not rest:
        rest = _path_back(rest or b"/", strip_prefix, add_prefix)
    return prefix + rest


def _path_back(rest: bytes, strip_prefix: Optional[bytes], add_prefix: Optional[bytes]) -> bytes:
    if add_prefix:
        bare = add_prefix.rstrip(b"/")
        if rest == bare or rest.startswith(bare + b"/") or rest.startswith(bare + b"?"):
            rest = rest[len(bare):] or b"/"
            if rest[:1] == b"?":
                rest = b"/" + rest
        else:
            return rest
    if strip_prefix:
        rest = join_prefix(strip_prefix.rstrip(b"/"), rest)
    return rest
