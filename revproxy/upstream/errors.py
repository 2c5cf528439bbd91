"""Why a backend exchange failed, and what the client is told about it."""

from __future__ import annotations

# kinds
CONNECT_FAILED = "connect-failed"  # refused, unreachable, reset during connect -> 502
CONNECT_TIMEOUT = "connect-timeout"  # -> 504
FIRST_BYTE_TIMEOUT = "first-byte-timeout"  # -> 504
READ_TIMEOUT = "read-timeout"  # -> 504 before the head, abort after
CLOSED = "closed"  # the backend closed the connection early -> 502
BAD_RESPONSE = "bad-response"  # unparseable or mis-framed response -> 502
NO_MEMBER = "no-member"  # the pool has no usable member -> 502

_TIMEOUTS = (CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, READ_TIMEOUT)


class UpstreamError(Exception):
    """A failed exchange with one backend member.

    ``received`` is True once any byte of a response arrived: such a request is never retried.
    """

    def __init__(self, kind: str, reason: str, received: bool = False):
        Exception.__init__(self, kind, reason)
        self.kind = kind
        self.reason = reason
        self.received = received

    @property
    def status(self) -> int:
        """The status the client gets when no response head has been sent yet."""
        return 504 if self.kind in _TIMEOUTS else 502

    def __str__(self) -> str:
        return "%s: %s" % (self.kind, self.reason)
