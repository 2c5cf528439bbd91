"""The one exception the HTTP/1.1 parsers raise."""

from __future__ import annotations


class ProtocolError(Exception):
    """A message broke RFC 9112 (or one of our limits) and cannot be processed.

    ``status`` is the response the proxy should give (400, 413, 414, 431, 501 or 505 for
    requests; 502 for anything the response parser rejects). ``reason`` is a short phrase
    for the error log, specific enough to tell what was wrong.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return "%d %s" % (self.status, self.reason)

    def __repr__(self) -> str:
        return "ProtocolError(%d, %r)" % (self.status, self.reason)
