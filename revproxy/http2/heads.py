"""An HTTP/2 request's header list -> the same ``RequestHead`` the HTTP/1.1 parser builds.

Pure: no Twisted, no h2 import. The h2 library is run with its own inbound validation off
(it would turn a malformed request into a connection error); this module applies RFC 9113
§8.2-8.3 itself, so that a malformed request costs only its stream:

* ``MalformedRequest``: the stream is reset with PROTOCOL_ERROR (RFC 9113 §8.1.1):
  upper-case or invalid field names, forbidden connection-specific fields, unknown, repeated,
  missing or misplaced pseudo-headers, a value with CR / LF / NUL or surrounding whitespace,
  a :authority and a Host that disagree, a Content-Length the body contradicts.
* ``ProtocolError`` (revproxy.http1.errors): answered on the stream with its status, as the
  HTTP/1.1 parser's errors are: 414 for a long :path, 431 for too many or too large fields,
  400 for an invalid authority or Content-Length.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from revproxy.http1.errors import ProtocolError
from revproxy.http1.fields import TOKEN_CHARS, parse_content_length, valid_host
from revproxy.http1.heads import CHUNKED, LENGTH, NO_BODY, RequestHead

VERSION = b"2"

_NAME = re.compile(rb"[" + TOKEN_CHARS.replace(b"A-Z", b"") + rb"]+\Z")
_METHOD = re.compile(rb"[" + TOKEN_CHARS + rb"]+\Z")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_TARGET = re.compile(rb"[\x21-\x7e]+\Z")
_PSEUDO = (b":method", b":scheme", b":authority", b":path")
# RFC 9113 §8.2.2: connection-specific fields make a request malformed.
CONNECTION_SPECIFIC = frozenset([
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
])
_OWS = b" \t"


class MalformedRequest(Exception):
    """The request breaks RFC 9113: reset its stream (PROTOCOL_ERROR). ``reason`` is for
    the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def request_head(fields: Sequence[Tuple[bytes, bytes]], limits, end_stream: bool) -> RequestHead:
    """The ``RequestHead`` of one HTTP/2 request.

    ``fields``: the decoded header list, as (bytes, bytes) pairs in received order;
    ``limits``: the ``[limits]`` section (max_request_line, max_header_count,
    max_header_bytes); ``end_stream``: the HEADERS frame ended the stream (no body).
    Raises ``MalformedRequest`` or ``ProtocolError`` (see the module docstring).
    """
    pseudo, headers = _split(fields)
    if len(headers) > limits.max_header_count:
        raise ProtocolError(431, "too many header fields")
    if sum(len(n) + len(v) + 4 for n, v in fields) > limits.max_header_bytes:
        raise ProtocolError(431, "header list over max_header_bytes")
    method = pseudo.get(b":method")
    if method is None:
        raise MalformedRequest("no :method")
    if _METHOD.match(method) is None:
        raise MalformedRequest("invalid :method")
    host = _host(pseudo.get(b":authority"), headers)
    if method == b"CONNECT":
        if b":scheme" in pseudo or b":path" in pseudo or host is None:
            raise MalformedRequest("CONNECT needs :authority only")
        target = host
    else:
        target = _target(pseudo, method, limits.max_request_line)
        if host is None:
            raise ProtocolError(400, "no :authority and no Host")
    headers = _join_cookies(headers)
    content_length = _content_length(headers, end_stream)
    if end_stream:
        framing = NO_BODY
    else:
        framing = LENGTH if content_length is not None else CHUNKED
    expect = any(n == b"expect" and v.lower() == b"100-continue" for n, v in headers)
    return RequestHead(method, target, VERSION, headers, framing, content_length,
                       True, expect and not end_stream, None, host)


def _split(fields):
    """(pseudo-headers by name, regular fields), refusing what RFC 9113 §8.2-8.3 forbids."""
    pseudo = {}
    headers: List[Tuple[bytes, bytes]] = []
    for name, value in fields:
        if _BAD_VALUE.search(value) is not None:
            raise MalformedRequest("CR, LF or NUL in the value of %r" % name)
        if name[:1] == b":":
            if headers:
                raise MalformedRequest("pseudo-header %r after a regular field" % name)
            if name not in _PSEUDO:
                raise MalformedRequest("unknown pseudo-header %r" % name)
            if name in pseudo:
                raise MalformedRequest("repeated pseudo-header %r" % name)
            pseudo[name] = value
            continue
        if _NAME.match(name) is None:
            raise MalformedRequest("invalid field name %r (HTTP/2 names are lower-case tokens)"
                                   % name)
        if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
            raise MalformedRequest("whitespace around the value of %r" % name)
        if name in CONNECTION_SPECIFIC:
            raise MalformedRequest("connection-specific field %r" % name)
        if name == b"te" and value.lower() != b"trailers":
            raise MalformedRequest("TE other than trailers")
        headers.append((name, value))
    return pseudo, headers


def _target(pseudo, method: bytes, max_target: int) -> bytes:
    if b":scheme" not in pseudo:
        raise MalformedRequest("no :scheme")
    path = pseudo.get(b":path")
    if not path:
        raise MalformedRequest("no :path")
    if len(path) > max_target:
        raise ProtocolError(414, ":path too long")
    if _TARGET.match(path) is None:
        raise ProtocolError(400, "invalid character in :path")
    if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
        raise MalformedRequest(":path is neither origin-form nor * for OPTIONS")
    return path


def _host(authority: Optional[bytes], headers) -> Optional[bytes]:
    """The request's host: :authority, else the Host field; they must agree when both come."""
    hosts = [v for n, v in headers if n == b"host"]
    if len(hosts) > 1:
        raise ProtocolError(400, "repeated Host")
    if authority is not None:
        if b"@" in authority:
            raise MalformedRequest("userinfo in :authority")
        if hosts and hosts[0].lower() != authority.lower():
            raise MalformedRequest(":authority and Host differ")
        host = authority
    elif hosts:
        host = hosts[0]
    else:
        return None
    if not valid_host(host):
        raise ProtocolError(400, "invalid authority")
    return host


def _join_cookies(headers):
    """Cookie crumbs joined into one field (RFC 9113 §8.2.3) where the first one was."""
    crumbs = [v for n, v in headers if n == b"cookie"]
    if len(crumbs) < 2:
        return headers
    out = []
    for name, value in headers:
        if name != b"cookie":
            out.append((name, value))
        elif crumbs is not None:
            out.append((b"cookie", b"; ".join(crumbs)))
            crumbs = None
    return out


def _content_length(headers, end_stream: bool) -> Optional[int]:
    values = [v for n, v in headers if n == b"content-length"]
    if not values:
        return None
    length = parse_content_length(values)
    if end_stream and length:
        raise MalformedRequest("Content-Length %d without a body" % length)
    return length
