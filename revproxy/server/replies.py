"""The proxy's own short responses: errors, 404, 408, 413, 502, 504 ..."""

from __future__ import annotations

from email.utils import formatdate
from http import HTTPStatus


def phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def send(writer, status: int, now: float, extra_headers=(), close=False) -> None:
    """Write a complete small text response through ``writer``; ``close`` ends the connection."""
    text = phrase(status)
    body = b"%d %s\n" % (status, text)
    headers = [
        (b"date", formatdate(now, usegmt=True).encode("ascii")),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
    ]
    headers.extend(extra_headers)
    if close:
        writer.keep_alive = False
    writer.start(status, text, headers, len(body))
    writer.write(body)
    writer.finish()


def send_answer(writer, answer, now: float, close=False) -> None:
    """Write a hook's ``Answer``: its own headers and body when it has any, else the
    proxy's short text for its status."""
    if not answer.body and not answer.headers:
        send(writer, answer.status, now, close=close)
        return
    if close:
        writer.keep_alive = False
    writer.start(answer.status, phrase(answer.status), list(answer.headers), len(answer.body))
    writer.write(answer.body)
    writer.finish()


def send_page(writer, status: int, now: float, page, extra_headers=(), close=False) -> None:
    """An error page: ``page`` is (content type, body) from ``revproxy.routing.errorpages``,
    or None for the short text (``send``), both with ``extra_headers``."""
    if page is None:
        send(writer, status, now, extra_headers, close)
        return
    content_type, body = page
    headers = [
        (b"date", formatdate(now, usegmt=True).encode("ascii")),
        (b"content-type", content_type),
        (b"cache-control", b"no-store"),
    ]
    headers.extend(extra_headers)
    if close:
        writer.keep_alive = False
    writer.start(status, phrase(status), headers, len(body))
    writer.write(body)
    writer.finish()
