"""Attack defences that the h2 library leaves to its user (pure: bytes and numbers in).

* ``HeaderBlockGuard`` watches the frame headers of the client's byte stream, before h2
  parses them, and refuses a header block (HEADERS + CONTINUATION frames) with too many
  CONTINUATION frames or too many bytes: the CONTINUATION flood (2024) sends endless
  CONTINUATION frames without END_HEADERS and h2 would buffer up to 64 of them (1 MiB)
  per attempt.
* ``ResetBudget`` counts stream resets per connection in a sliding minute: the rapid-reset
  attack (CVE-2023-44487) opens streams and resets them at once, so the concurrency limit
  never applies while the proxy starts work for every stream.
"""

from __future__ import annotations

from collections import deque

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION, _PUSH_PROMISE = 0x1, 0x9, 0x5
_END_HEADERS = 0x4


class HeaderBlockGuard:
    """Feed it the bytes the client sends, in order; ``feed`` returns None while they are
    acceptable, else the reason (str) to end the connection with.

    Only the 9-byte frame headers are read (payloads are skipped by their length), so the
    cost is a few operations per frame whatever its size.
    """

    __slots__ = ("_max_frames", "_max_bytes", "_skip", "_partial", "_in_block", "_frames",
                 "_bytes")

    def __init__(self, max_continuation_frames: int, max_block_bytes: int,
                 preface: bool = True) -> None:
        self._max_frames = max_continuation_frames
        self._max_bytes = max_block_bytes
        self._skip = len(PREFACE) if preface else 0  # bytes to pass before the next header
        self._partial = b""  # the start of a frame header split across feeds
        self._in_block = False
        self._frames = 0  # CONTINUATION frames in the current block
        self._bytes = 0  # payload bytes in the current block

    def feed(self, data: bytes):
        pos, end = 0, len(data)
        if self._partial:
            need = 9 - len(self._partial)
            self._partial += data[:need]
            pos = need
            if len(self._partial) < 9:
                return None
            header, self._partial = self._partial, b""
            problem = self._frame(header, 0)
            if problem is not None:
                return problem
        while True:
            pos += self._skip
            if pos >= end:
                self._skip = pos - end
                return None
            self._skip = 0
            if end - pos < 9:
                self._partial = data[pos:]
                return None
            problem = self._frame(data, pos)
            if problem is not None:
                return problem
            pos += 9

    def _frame(self, buf: bytes, at: int):
        """Read the frame header at ``buf[at:at+9]``; schedule its payload to be skipped."""
        length = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2]
        kind, flags = buf[at + 3], buf[at + 4]
        self._skip = length
        if kind == _HEADERS or kind == _PUSH_PROMISE:
            self._in_block = not flags & _END_HEADERS
            self._frames = 0
            self._bytes = length
        elif kind == _CONTINUATION and self._in_block:
            self._frames += 1
            self._bytes += length
            if flags & _END_HEADERS:
                self._in_block = False
        else:
            return None  # h2 itself refuses any other frame inside a header block
        if self._frames > self._max_frames:
            return "more than %d CONTINUATION frames in one header block" % self._max_frames
        if self._bytes > self._max_bytes:
            return "header block over %d bytes" % self._max_bytes
        return None


class ResetBudget:
    """At most ``limit`` resets in any ``window`` seconds. ``spend(now)`` records one and
    returns False once the budget is exceeded (and stays exceeded until they age out)."""

    __slots__ = ("_limit", "_window", "_times")

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self._limit = limit
        self._window = window
        self._times = deque()

    def spend(self, now: float) -> bool:
        times = self._times
        horizon = now - self._window
        while times and times[0] <= horizon:
            times.popleft()
        times.append(now)
        return len(times) <= self._limit
