"""Listener descriptions as sockets to bind (pure).

The supervisor binds every proxy listener itself and hands the sockets to its workers, so it
reads the same Twisted endpoint strings the single-process proxy passes to
``serverFromString``: ``tcp:PORT[:interface=A][:backlog=N]`` (also ``port=PORT``),
and ``tcp6:...``. A TLS description (``ssl:``, ``tls:``) is bound as the plain TCP endpoint
under it (``revproxy.tls.endpoints``): the workers put TLS around the connections they accept;
a ``haproxy:`` listener (PROXY protocol) binds the endpoint after the prefix.
``unix:`` proxy listeners are refused with several workers: Twisted's Unix port removes its
socket file when it stops listening, so the first worker to stop would unlink the path the
others still serve.
"""

from __future__ import annotations

import socket
from typing import Dict, List, NamedTuple, Tuple

from revproxy.config.values import split_description as split_escaped


class BindSpec(NamedTuple):
    """One socket to bind: ``family`` (``socket.AF_INET`` or ``AF_INET6``), ``address``
    (``(host, port)``) and ``backlog`` (int)."""

    family: int
    address: Tuple[str, int]
    backlog: int


def split_description(text: str) -> Tuple[str, List[str], Dict[str, str]]:
    """``kind, [positional...], {key: value}`` of a Twisted endpoint string (``\\:`` escapes
    a colon; the first ``=`` separates key and value). Raises ValueError when empty."""
    parts = split_escaped(text)
    if not parts[0]:
        raise ValueError("empty endpoint description")
    positional, keywords = [], {}
    for part in parts[1:]:
        key, equals, value = part.partition("=")
        if equals:
            keywords[key] = value
        else:
            positional.append(part)
    return parts[0].lower(), positional, keywords


def bind_spec(description: str, default_backlog: int) -> BindSpec:
    """The socket ``description`` listens on (TLS descriptions: the TCP one under them).
    Raises ValueError naming what is not supported with workers."""
    from revproxy.server.proxylisten import inner_description
    from revproxy.tls.endpoints import is_tls_description, parse_tls_listener

    named = description
    description = inner_description(description)  # haproxy:ENDPOINT binds ENDPOINT
    if is_tls_description(description):
        description = parse_tls_listener(description).tcp
    kind, positional, keywords = split_description(description)
    backlog = int(keywords.get("backlog") or default_backlog)
    if kind in ("tcp", "tcp6"):
        port = keywords.get("port", positional[0] if positional else None)
        if port is None or not port.isdigit():
            raise ValueError("%s: expected a port number" % named)
        family = socket.AF_INET6 if kind == "tcp6" else socket.AF_INET
        interface = keywords.get("interface", "::" if kind == "tcp6" else "")
        return BindSpec(family, (interface, int(port)), backlog)
    raise ValueError("%s: with several workers a proxy listener must be tcp:, tcp6:, ssl: or "
                     "tls: (also behind haproxy:); the supervisor binds it for the workers"
                     % named)
