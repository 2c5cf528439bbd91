"""How much of a request body the firewall inspects: ModSecurity's two request body limits.

``request_body_limit`` (SecRequestBodyLimit) bounds the whole body, files included;
``request_body_no_files_limit`` (SecRequestBodyNoFilesLimit) bounds a body without its
files: the whole of a non-multipart body, the non-file parts of a ``multipart/form-data``
one (the part headers, the fields, the preamble and epilogue; a file part's content is not
counted). Pure functions on bytes, linear time; the hook applies the result.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from revproxy.firewall.seclang.bodies.mpheaders import parse_boundary

MULTIPART = b"multipart/form-data"


class BodyLimit(NamedTuple):
    """What to do with one body: ``over`` is None when it is within the limits, else a
    text saying which limit it passes (for the log); ``read`` the bytes to hand the
    engine when the action is "partial" (all of them when ``over`` is None)."""

    over: Optional[str]
    read: int


def content_type(headers) -> bytes:
    """The request's Content-Type value (b"" when none)."""
    for name, value in headers:
        if name == b"content-type":
            return value
    return b""


def is_multipart(ctype: bytes) -> bool:
    return ctype[:len(MULTIPART)].lower() == MULTIPART


def multipart_file_bytes(body: bytes, ctype: bytes) -> int:
    """The bytes of ``body`` that are the content of file parts (parts whose
    Content-Disposition has a ``filename``); 0 when the boundary cannot be read (the
    engine's strict multipart check refuses such a body)."""
    boundary = parse_boundary(ctype).boundary
    if not boundary:
        return 0
    delimiter = b"--" + boundary
    following = b"\r\n" + delimiter
    files = 0
    at = body.find(delimiter)
    while at >= 0:
        start = at + len(delimiter)
        end = body.find(following, start)
        if end < 0:
            break
        blank = body.find(b"\r\n\r\n", start, end)
        if blank >= 0 and b"filename" in body[start:blank].lower():
            files += end - (blank + 4)
        at = end + 2
    return files


def body_limit(body, size: int, ctype: bytes, limit: int, no_files_limit: int) -> BodyLimit:
    """The limits applied to a body of ``size`` bytes with Content-Type ``ctype``.
    ``body`` is a callable reading the first n bytes, only called for a multipart body
    over ``no_files_limit`` (its file parts have to be told apart from its fields)."""
    if size > limit:
        return BodyLimit("request body of %d bytes over [firewall] request_body_limit (%d)"
                         % (size, limit), limit)
    if size <= no_files_limit:
        return BodyLimit(None, size)
    if not is_multipart(ctype):
        return BodyLimit("request body of %d bytes (no files) over [firewall] "
                         "request_body_no_files_limit (%d)" % (size, no_files_limit),
                         no_files_limit)
    fields = size - multipart_file_bytes(body(size), ctype)
    if fields > no_files_limit:
        return BodyLimit("multipart body with %d bytes besides its files over [firewall] "
                         "request_body_no_files_limit (%d)" % (fields, no_files_limit), size)
    return BodyLimit(None, size)
