"""``RequestFacts``: what a balancing policy may know of a request (``IRequestFacts``)."""

from __future__ import annotations

from zope.interface import implementer

from revproxy.interfaces import IRequestFacts


@implementer(IRequestFacts)
class RequestFacts:
    __slots__ = ("client_ip", "host", "path", "_headers", "notes")

    def __init__(self, client_ip: str, host: bytes, path: str, headers):
        self.client_ip = client_ip
        self.host = host
        self.path = path
        self._headers = headers
        self.notes = None  # [(fmt, args)], only when a policy explains itself

    def header(self, name: bytes):
        for key, value in self._headers:
            if key == name:
                return value
        return None

    def cookie(self, name: bytes):
        return find_cookie(self._headers, name)

    def note(self, fmt: str, *args) -> None:
        if self.notes is None:
            self.notes = []
        self.notes.append((fmt, args))

    def explain(self) -> str:
        """The policy's notes, formatted (only called for the decision header)."""
        if not self.notes:
            return ""
        return "; ".join(fmt % args for fmt, args in self.notes)


def find_cookie(headers, name: bytes):
    """The value of cookie ``name`` in the request's Cookie header(s) (RFC 6265 §5.4), or None."""
    for key, value in headers:
        if key != b"cookie":
            continue
        for pair in value.split(b";"):
            cookie_name, sep, cookie_value = pair.strip().partition(b"=")
            if sep and cookie_name == name:
                return cookie_value.strip(b'"')
    return None
