"""What a backend receives: the request head re-serialised and the body re-framed."""

from __future__ import annotations

from revproxy.http1 import serialize

_BODY_METHODS = frozenset([b"POST", b"PUT", b"PATCH"])


def outgoing(head, headers, spool, size, target=None):
    """(head bytes, body) as sent to every member tried. ``headers`` (a list, changed in
    place) gets the Content-Length; the body is bytes, the ``spool`` itself when it spilled to
    a file (streamed from there), or None. ``target``: the rewritten origin-form target
    (``revproxy.routing``), None to send the client's own."""
    body = None
    if spool is not None:
        headers.append((b"content-length", b"%d" % size))
        body = spool if spool.in_file else _read_all(spool)
    elif head.method in _BODY_METHODS:
        headers.append((b"content-length", b"0"))
    if target is None:
        target = _origin_form(head.target)
    return serialize.request_head(head.method, target, headers), body


def _origin_form(target: bytes) -> bytes:
    """The target as sent to an origin server (RFC 9112 §3.2.1): an absolute-form target
    loses its scheme and authority (the Host header carries the authority); others as is."""
    if target[:1] == b"/" or target == b"*":
        return target
    rest = target.partition(b"://")[2]
    slash = rest.find(b"/")
    query = rest.find(b"?")
    if slash < 0 or (0 <= query < slash):
        return b"/" + rest[query:] if query >= 0 else b"/"
    return rest[slash:]


def _read_all(spool) -> bytes:
    parts = []
    while True:
        data = spool.read(1 << 20)
        if not data:
            return b"".join(parts)
        parts.append(data)
