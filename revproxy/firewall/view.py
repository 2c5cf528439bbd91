"""What the firewall reads about a request: the engine's ``RequestView`` and the immutable
``FirewallRequest`` Python rules see.

Both are built from the request's ``RequestContext``; nothing here changes it. The Python
view parses lazily (query, cookies, body) and bounds the body it parses by what the hook
read (``[firewall] request_body_limit``).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Tuple
from urllib.parse import parse_qsl, unquote

from revproxy.firewall.seclang.api import RequestView

Pairs = Tuple[Tuple[str, str], ...]
_PORTS = {}  # listener description -> port (bounded by the configured listeners)


def listener_port(description: str) -> int:
    """The port of a listener description (``tcp:8080:interface=...``, ``ssl:8443:...``);
    0 when it names none."""
    port = _PORTS.get(description)
    if port is None:
        port = 0
        for part in description.split(":")[1:]:
            if part.isdigit():
                port = int(part)
                break
        if len(_PORTS) < 1024:
            _PORTS[description] = port
    return port


def engine_view(ctx) -> RequestView:
    """The engine's view of ``ctx``'s head (REMOTE_ADDR, REQUEST_LINE, headers ...)."""
    head, peer = ctx.head, ctx.peer
    version = head.version
    protocol = version if version.startswith(b"HTTP/") else b"HTTP/" + version
    return RequestView(  # (positional: a NamedTuple built with keywords costs more)
        peer.client_ip, peer.client_port, "", listener_port(peer.listener), head.method,
        head.target, protocol, head.headers, ctx.request_id, peer.tls)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class FirewallRequest:
    """One request as a Python rule sees it (read-only).

    ``client_ip``, ``client_port``, ``scheme``; ``method`` (str); ``path`` (the normalised
    path, percent-decoded: ``/a b``); ``query`` (the raw query string, "" when none);
    ``args`` (query parameters, decoded (name, value) pairs in order); ``headers``
    ((lower-case name, value) str pairs, repeats kept); ``header(name)``; ``cookies``;
    ``body`` (the bytes read, at most the configured limit; b"" without a body);
    ``body_truncated``; ``form`` (url-encoded body parameters); ``json`` (the parsed JSON
    body, or None); ``tls`` (None, or the ``TLSFacts``: SNI, version, client certificate
    subject and fingerprint); ``request_id`` (str).
    """

    __slots__ = ("client_ip", "client_port", "scheme", "method", "path", "query", "headers",
                 "body", "body_truncated", "tls", "request_id", "_args", "_cookies", "_form",
                 "_json", "_content_type")

    def __init__(self, ctx, body: bytes = b"", body_truncated: bool = False):
        peer, head = ctx.peer, ctx.head
        _set = object.__setattr__
        _set(self, "client_ip", peer.client_ip)
        _set(self, "client_port", peer.client_port)
        _set(self, "scheme", peer.scheme)
        _set(self, "method", head.method.decode("ascii", "replace"))
        _set(self, "path", unquote(ctx.path, errors="surrogateescape"))
        _set(self, "query", ctx.query or "")
        _set(self, "headers", tuple((_text(k), _text(v)) for k, v in head.headers))
        _set(self, "body", body)
        _set(self, "body_truncated", body_truncated)
        _set(self, "tls", peer.tls)
        _set(self, "request_id", ctx.request_id.decode("ascii", "replace"))
        for name in ("_args", "_cookies", "_form", "_json", "_content_type"):
            _set(self, name, None)

    def __setattr__(self, name, value):
        raise AttributeError("a FirewallRequest is read-only")

    def _memo(self, name: str, value: Any) -> Any:
        object.__setattr__(self, name, value)
        return value

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def args(self) -> Pairs:
        if self._args is None:
            return self._memo("_args", tuple(parse_qsl(self.query, keep_blank_values=True,
                                                       errors="surrogateescape")))
        return self._args

    @property
    def cookies(self) -> Pairs:
        if self._cookies is None:
            pairs = []
            for key, value in self.headers:
                if key != "cookie":
                    continue
                for part in value.split(";"):
                    name, sep, val = part.strip().partition("=")
                    if name:
                        pairs.append((name, val))
            return self._memo("_cookies", tuple(pairs))
        return self._cookies

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-case, without parameters ("" when none)."""
        if self._content_type is None:
            raw = self.header("content-type") or ""
            return self._memo("_content_type", raw.split(";")[0].strip().lower())
        return self._content_type

    @property
    def form(self) -> Pairs:
        if self._form is None:
            pairs: Pairs = ()
            if self.body and self.content_type == "application/x-www-form-urlencoded":
                pairs = tuple(parse_qsl(_text(self.body), keep_blank_values=True,
                                        errors="surrogateescape"))
            return self._memo("_form", pairs)
        return self._form

    @property
    def json(self) -> Any:
        if self._json is None:
            value = None
            ctype = self.content_type
            if self.body and (ctype == "application/json" or ctype.endswith("+json")):
                try:
                    value = json.loads(self.body)
                except (ValueError, RecursionError):
                    value = None
            self._memo("_json", (value,))
        return self._json[0]

    def __repr__(self):
        return "<FirewallRequest %s %s %s>" % (self.request_id, self.method, self.path)
