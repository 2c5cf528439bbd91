"""Body buffers for spoon-feeding: memory up to a limit, then an unlinked temp file up to a cap.

A ``Spool`` is a FIFO of bytes: written at the end, read from the front, possibly at the same
time. Every byte it holds is reserved from a process-wide ``SpoolBudget`` first, so all spools
together never exceed the configured memory and disk totals. When there is no room, ``write``
refuses the whole piece and the caller applies back-pressure (or answers 413/502).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections import deque
from typing import Deque, Optional

#: Name prefix of spool temp files; ``clean_temp_dir`` removes only files carrying it.
SPOOL_PREFIX = "revproxy-spool-"


class SpoolBudget:
    """Byte counters shared by every spool of the process; reservations beyond a total fail."""

    def __init__(self, total_memory: int, total_disk: int) -> None:
        self.total_memory = total_memory
        self.total_disk = total_disk
        self.memory_used = 0
        self.disk_used = 0

    def reserve_memory(self, n: int) -> bool:
        """Take ``n`` bytes of memory; ``False`` (and nothing taken) if that exceeds the total."""
        if self.memory_used + n > self.total_memory:
            return False
        self.memory_used += n
        return True

    def release_memory(self, n: int) -> None:
        """Give back ``n`` bytes previously reserved with ``reserve_memory``."""
        self.memory_used -= n

    def reserve_disk(self, n: int) -> bool:
        """Take ``n`` bytes of disk; ``False`` (and nothing taken) if that exceeds the total."""
        if self.disk_used + n > self.total_disk:
            return False
        self.disk_used += n
        return True

    def release_disk(self, n: int) -> None:
        """Give back ``n`` bytes previously reserved with ``reserve_disk``."""
        self.disk_used -= n


class Spool:
    """A FIFO of bytes held in memory, then in a temp file, within limits and a shared budget.

    Invariant: every byte in memory precedes every byte in the file, so a piece goes to memory
    only while the file holds nothing unread. The file's disk reservation is its size; it is
    given back when the file has been read to the end and truncated to zero.

    ``pending`` is the bytes written and not yet read, ``total`` the bytes ever accepted,
    ``in_file`` whether the spool ever spilled to disk, and ``last_error`` the ``OSError``
    that made a write fail (temp dir missing, disk full...), for the owner's error log.
    """

    def __init__(
        self, budget: SpoolBudget, memory_limit: int, file_limit: int, temp_dir: str
    ) -> None:
        self._budget = budget
        self._memory_limit = memory_limit
        self._file_limit = file_limit
        self._temp_dir = temp_dir
        self._chunks: Deque[bytes] = deque()
        self._head_offset = 0  # bytes of _chunks[0] already read
        self._memory = 0  # bytes of the chunks still held (and reserved)
        self._fd = -1
        self._write_offset = 0  # == file size == disk reserved
        self._read_offset = 0
        self._closed = False
        self.pending = 0
        self.total = 0
        self.in_file = False
        self.last_error: Optional[OSError] = None

    def write(self, data: bytes) -> bool:
        """Append ``data``; ``False`` when neither memory nor file has room (nothing stored)."""
        n = len(data)
        if self._closed:
            return False
        if not n:
            return True
        if (
            self._write_offset == self._read_offset
            and self._memory + n <= self._memory_limit
            and self._budget.reserve_memory(n)
        ):
            self._chunks.append(data)
            self._memory += n
        elif not self._write_file(data):
            return False
        self.pending += n
        self.total += n
        return True

    def read(self, max_bytes: int = 65536) -> bytes:
        """Remove and return up to ``max_bytes`` from the front; ``b""`` when nothing is pending."""
        if self._chunks:
            data = self._read_memory(max_bytes)
        elif self._write_offset > self._read_offset:
            data = self._read_file(max_bytes)
        else:
            return b""
        self.pending -= len(data)
        return data

    def peek(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` from the front, without removing them (for body inspection)."""
        pieces = []
        want = max_bytes
        start = self._head_offset
        for chunk in self._chunks:
            if want <= 0:
                break
            piece = chunk[start : start + want]
            start = 0
            pieces.append(piece)
            want -= len(piece)
        if want > 0 and self._fd >= 0 and self._write_offset > self._read_offset:
            n = min(want, self._write_offset - self._read_offset)
            pieces.append(os.pread(self._fd, n, self._read_offset))
        return b"".join(pieces)

    def close(self) -> None:
        """Drop what is held, give back every reservation and close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._budget.release_memory(self._memory)
        self._memory = 0
        self._chunks.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._budget.release_disk(self._write_offset)
        self._write_offset = self._read_offset = 0
        self.pending = 0

    def _read_memory(self, max_bytes: int) -> bytes:
        # Whole chunks are handed out without copying; only a split head chunk is sliced.
        chunks = self._chunks
        pieces = []
        want = max_bytes
        while want > 0 and chunks:
            head = chunks[0]
            start = self._head_offset
            available = len(head) - start
            if available > want:
                pieces.append(head[start : start + want])
                self._head_offset = start + want
                break
            pieces.append(head[start:] if start else head)
            chunks.popleft()
            self._head_offset = 0
            self._memory -= len(head)
            self._budget.release_memory(len(head))
            want -= available
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _read_file(self, max_bytes: int) -> bytes:
        n = min(max_bytes, self._write_offset - self._read_offset)
        data = os.pread(self._fd, n, self._read_offset)
        if not data:
            raise OSError("spool file shorter than written (%d bytes)" % self._write_offset)
        self._read_offset += len(data)
        if self._read_offset == self._write_offset:
            # Everything read: start the file over so a long stream doesn't grow it forever.
            os.ftruncate(self._fd, 0)
            self._budget.release_disk(self._write_offset)
            self._write_offset = self._read_offset = 0
        return data

    def _write_file(self, data: bytes) -> bool:
        n = len(data)
        if self._write_offset + n > self._file_limit or not self._budget.reserve_disk(n):
            return False
        try:
            if self._fd < 0:
                self._fd = _open_unlinked(self._temp_dir)
                self.in_file = True
            _pwrite_all(self._fd, data, self._write_offset)
        except OSError as e:
            self._budget.release_disk(n)
            self.last_error = e
            return False
        self._write_offset += n
        return True


def _open_unlinked(temp_dir: str) -> int:
    """Create a private temp file and unlink it at once: a crash then leaves nothing behind."""
    fd, path = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=temp_dir)
    try:
        os.unlink(path)
    except OSError:
        os.close(fd)
        raise
    return fd


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    written = os.pwrite(fd, data, offset)
    if written == len(data):
        return
    view = memoryview(data)[written:]  # short write: rare, only then pay for a view
    offset += written
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def clean_temp_dir(path: str) -> int:
    """Remove leftover spool files (regular files named ``SPOOL_PREFIX*``) from ``path``.

    Returns how many were removed; a missing directory counts as clean (0).
    """
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return 0
    removed = 0
    for entry in entries:
        if entry.name.startswith(SPOOL_PREFIX) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed += 1
    return removed


class TempDirError(Exception):
    """The spool directory cannot be used; the message says what was found and what is
    expected (it names the path, not the config key: the caller adds that)."""


def make_temp_dir(path_or_empty: str, uid: int) -> str:
    """Create (if needed), check and return the spool directory.

    ``""`` means ``<system temp>/revproxy-<uid>``: the same directory across restarts, so the
    start-up clean-up finds what a crashed run left, and private to the user, so a new user's
    first start creates it. A configured path is created (with its parents) when missing.
    Either way the directory is created mode 0700, and an existing one must be a directory
    owned by ``uid`` with no access at all for group or others (``mode & 0o077 == 0``):
    spooled bodies are other people's requests and responses. Otherwise ``TempDirError``
    (``OSError`` if it cannot even be created or examined).

    The default's name is guessable in a shared directory, so there a symlink is refused too;
    a configured path may be a symlink (the operator chose it): its target is checked.
    """
    if path_or_empty:
        path = path_or_empty
        if not os.path.exists(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    else:
        path = os.path.join(tempfile.gettempdir(), "revproxy-%d" % uid)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
    _check_private_dir(path, st, uid)
    return path


def _check_private_dir(path: str, st: os.stat_result, uid: int) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise TempDirError("%s is a symlink; expected a real directory" % path)
    if not stat.S_ISDIR(st.st_mode):
        raise TempDirError("%s exists and is not a directory; expected a directory" % path)
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != uid:
        raise TempDirError(
            "%s is owned by uid %d; expected a directory owned by the proxy's uid %d "
            "(chown %d %s)" % (path, st.st_uid, uid, uid, path))
    if mode & 0o077:
        raise TempDirError(
            "%s has mode %04o; expected no access for group and others "
            "(chmod 700 %s)" % (path, mode, path))
