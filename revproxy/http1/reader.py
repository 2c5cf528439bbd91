"""Input buffer and body state machine shared by the request and response parsers.

The buffer is an immutable ``bytes`` plus a read offset: when the previous input has been
consumed, ``feed`` keeps the new ``bytes`` object as is, so a body piece that arrives in
one read is handed back without a copy. Leftovers are joined with the next read.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

from . import chunked
from .errors import ProtocolError
from .fields import HEAD_CTL, parse_fields
from .heads import CHUNKED, END, LENGTH, NEED_DATA, PAUSED, UNTIL_CLOSE, _Sentinel

# Parser states; each has a step method (see ``MessageReader._steps``).
S_HEAD = 0  # reading a head
S_END = 1  # the message is complete: report END
S_LENGTH = 2  # Content-Length body
S_CHUNK_SIZE = 3  # chunked: expecting a chunk-size line
S_CHUNK_DATA = 4  # chunked: inside chunk data
S_CHUNK_CRLF = 5  # chunked: the CRLF after chunk data
S_TRAILER = 6  # chunked: trailer section after the last chunk
S_UNTIL_CLOSE = 7  # body delimited by the connection closing
S_DONE = 8  # between messages

Event = Union[Any, bytes, _Sentinel]


class MessageReader:
    """Everything but head interpretation; subclasses provide ``_step_head``/``_step_done``."""

    def __init__(self, limits: Any) -> None:
        self._max_line = limits.max_request_line
        self._max_head = limits.max_header_bytes
        self._max_count = limits.max_header_count
        # Optional so that the config's Limits (which lacks it) can be passed directly.
        self._max_ext = getattr(limits, "max_chunk_ext", 1024)
        self._max_size_line = chunked.size_line_limit(self._max_ext)
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._error: Optional[ProtocolError] = None
        self._checked = 0  # bytes of the pending head/trailers already checked for CR/LF
        self._line_seen = False  # the pending head's first line is complete
        self._remaining = 0  # bytes left in a LENGTH body or in the current chunk
        self._state = S_HEAD
        self._steps: Tuple[Callable[[], Event], ...] = (
            self._step_head, self._step_end, self._step_length, self._step_chunk_size,
            self._step_chunk_data, self._step_chunk_crlf, self._step_trailer,
            self._step_until_close, self._step_done,
        )

    # -- public API ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._eof:
            raise RuntimeError("feed() after feed_eof()")
        if not data:
            return
        if type(data) is not bytes:
            data = bytes(data)
        if self._pos == len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos:] + data
        self._pos = 0

    def feed_eof(self) -> None:
        """The peer closed its side; no more ``feed`` calls."""
        self._eof = True

    def next_event(self) -> Event:
        """The next head, body piece (non-empty bytes), END, NEED_DATA, PAUSED or CLOSED.

        Raises ProtocolError; once it has, every later call raises the same error.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        try:
            return self._steps[self._state]()
        except ProtocolError as exc:
            self._error = self._convert(exc)
            raise self._error from None

    def buffered_bytes(self) -> int:
        """How many received bytes are not yet parsed."""
        return len(self._buf) - self._pos

    def take_remaining(self) -> bytes:
        """Remove and return every unparsed byte (e.g. a tunnel's first bytes after 101)."""
        rest = self._buf[self._pos:]
        self._buf = b""
        self._pos = 0
        return rest

    # -- hooks -------------------------------------------------------------------------

    def _convert(self, exc: ProtocolError) -> ProtocolError:
        return exc

    def _truncated(self) -> ProtocolError:
        raise NotImplementedError

    def _step_head(self) -> Event:
        raise NotImplementedError

    def _step_done(self) -> Event:
        return PAUSED

    # -- buffer helpers ----------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        """Consume and return ``n`` buffered bytes, dropping the buffer when emptied."""
        buf = self._buf
        pos = self._pos
        end = pos + n
        if end == len(buf):
            self._buf = b""
            self._pos = 0
            return buf if pos == 0 else buf[pos:]
        self._pos = end
        return buf[pos:end]

    def _starved(self) -> Event:
        """More input is needed inside a message: wait, or fail if the peer closed."""
        if self._eof:
            raise self._truncated()
        return NEED_DATA

    def _begin_block(self) -> None:
        self._checked = 0
        self._line_seen = False

    def _scan_block(self, what: str) -> int:
        """Length of the pending head/trailer block through its CRLFCRLF, or -1 if incomplete.

        Rejects a bare CR or LF as soon as it is buffered (a client using LF line ends gets
        an answer instead of a timeout). The search stops at ``max_header_bytes``, so a
        longer block stays "incomplete" and the caller's ``_check_block_size`` says 431.
        Already-checked bytes are not scanned again when more input arrives.
        """
        buf = self._buf
        pos = self._pos
        start = pos + self._checked
        end = buf.find(b"\r\n\r\n", max(pos, start - 3), pos + self._max_head)
        if end >= 0:
            _check_line_ends(buf, start, end + 4, what)
            return end + 4 - pos
        stop = min(len(buf), pos + self._max_head)  # bytes past the limit are never head
        if buf[stop - 1] == 13:  # the LF may be in the next read
            stop -= 1
        _check_line_ends(buf, start, stop, what)
        self._checked = stop - pos
        return -1

    def _check_block_size(self) -> None:
        if len(self._buf) - self._pos >= self._max_head:
            raise ProtocolError(431, "header section too large")

    def _start_body(self, framing: int, content_length: Optional[int]) -> None:
        """Enter the body state for ``framing`` (a head has just been returned)."""
        if framing == LENGTH:
            self._remaining = content_length  # type: ignore[assignment]
            self._state = S_LENGTH
        elif framing == CHUNKED:
            self._state = S_CHUNK_SIZE
        elif framing == UNTIL_CLOSE:
            self._state = S_UNTIL_CLOSE
        else:
            self._state = S_END

    # -- body steps --------------------------------------------------------------------

    def _step_end(self) -> Event:
        self._state = S_DONE
        return END

    def _step_length(self) -> Event:
        return self._body_piece(S_END)

    def _body_piece(self, next_state: int) -> Event:
        """Up to ``_remaining`` buffered body bytes; ``next_state`` once none remain."""
        avail = len(self._buf) - self._pos
        if not avail:
            return self._starved()
        n = self._remaining
        if avail < n:
            n = avail
        self._remaining -= n
        if not self._remaining:
            self._state = next_state
        return self._take(n)

    def _step_chunk_size(self) -> Event:
        buf = self._buf
        pos = self._pos
        lf = buf.find(b"\n", pos, pos + self._max_size_line)
        if lf < 0:
            chunked.check_partial_size_line(buf, pos, len(buf), self._max_ext)
            return self._starved()
        size = chunked.parse_size_line(buf, pos, lf, self._max_ext)
        self._take(lf + 1 - pos)
        if size:
            self._remaining = size
            self._state = S_CHUNK_DATA
            return self._step_chunk_data()
        self._begin_block()
        self._state = S_TRAILER
        return self._step_trailer()

    def _step_chunk_data(self) -> Event:
        return self._body_piece(S_CHUNK_CRLF)

    def _step_chunk_crlf(self) -> Event:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail >= 2 and buf[pos] == 13 and buf[pos + 1] == 10:
            self._take(2)
            self._state = S_CHUNK_SIZE
            return self._step_chunk_size()
        if avail >= 2 or (avail == 1 and buf[pos] != 13):
            raise ProtocolError(400, "chunk data not followed by CRLF")
        return self._starved()

    def _step_trailer(self) -> Event:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail >= 2 and buf[pos] == 13 and buf[pos + 1] == 10:  # no trailer fields
            self._take(2)
            return self._step_end()
        if avail == 0 or (avail == 1 and buf[pos] == 13):
            return self._starved()
        size = self._scan_block("trailer section")
        if size < 0:
            self._check_block_size()
            return self._starved()
        block = buf[pos:pos + size - 2]
        self._take(size)
        if HEAD_CTL.search(block) is not None:
            raise ProtocolError(400, "control character in trailer field")
        parse_fields(block, 0, self._max_count)  # validated, then dropped
        return self._step_end()

    def _step_until_close(self) -> Event:
        avail = len(self._buf) - self._pos
        if avail:
            return self._take(avail)
        if self._eof:
            return self._step_end()
        return NEED_DATA


def _check_line_ends(buf: bytes, start: int, stop: int, what: str) -> None:
    """Every CR and LF in ``buf[start:stop]`` must belong to a CRLF pair."""
    crlf = buf.count(b"\r\n", start, stop)
    if buf.count(b"\n", start, stop) != crlf:
        raise ProtocolError(400, "bare LF in " + what)
    if buf.count(b"\r", start, stop) != crlf:
        raise ProtocolError(400, "bare CR in " + what)
