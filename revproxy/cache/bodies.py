"""Bodies kept in files rather than in memory: a stored body (``FileBody``) and a body being
filled from the origin while clients read along behind the writer (``BodyFill``).

Both are *body sources* for ``revproxy.server.streaming.BodyStreamer``:

- ``len(source)``: the bytes readable so far (all of them for a ``FileBody``);
- ``length``: the whole length, or None while a fill is open and its length unknown;
- ``failed``: True once the body can never be complete (a fill that broke);
- ``read(start, size)``: a Deferred of up to ``size`` bytes at ``start`` (< ``len``), read
  in the I/O runner (``revproxy.cache.stores.diskio``), never in the reactor thread;
- ``notify(callback)``: call ``callback()`` once, when more bytes are readable or the body
  ended or failed.

Reads use ``os.pread`` on a descriptor opened once: a file replaced or deleted meanwhile
(eviction, a new version stored) keeps serving the bytes it held, so a stream is never cut or
mixed with another version. The descriptor closes when the object is collected.
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.logger import Logger

log = Logger(namespace="revproxy.cache")

FILL_BACKLOG = 4 * 1024 * 1024  # a fill's bytes queued for the disk before the origin pauses


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` of ``fd``; ValueError when the file is shorter (it was
    truncated under us: never serve a short body as whole). Runs in an I/O thread."""
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise ValueError("cache file: %d bytes at %d, expected %d" % (len(data), offset, size))
    return data


def _close_quietly(fd) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class FileBody:
    """``length`` bytes at ``offset`` of the open file ``fd`` (owned: closed with this object),
    read through the I/O runner ``io``. A ``CacheEntry`` from the disk store has one as its
    ``body`` when the body is large; stores that keep whole bodies never see one."""

    __slots__ = ("_fd", "offset", "length", "_io")
    failed = False

    def __init__(self, fd: int, offset: int, length: int, io) -> None:
        self._fd = fd
        self.offset = offset
        self.length = length
        self._io = io

    def __len__(self) -> int:
        return self.length

    def read(self, start: int, size: int):
        return self._io.run(pread_exact, self._fd, size, self.offset + start)

    def notify(self, callback) -> None:
        callback()  # every byte is readable already

    def dup(self) -> int:
        """A new descriptor of the same open file (the caller closes it): lets another
        owner, e.g. a store copying this body, outlive this object."""
        return os.dup(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            _close_quietly(fd)

    def __del__(self):
        self.close()

    def __eq__(self, other):
        return self is other

    __hash__ = object.__hash__

    def __repr__(self):
        return "<FileBody %d bytes at %d>" % (self.length, self.offset)


class BodyFill:
    """A body written to an anonymous file (created then unlinked at once: a crash leaves
    nothing behind) as it arrives from the origin, readable behind the writer.

    ``write(data)`` queues a piece for the disk (in order, in the I/O runner); ``backlog`` is
    the bytes queued and not yet written: past ``FILL_BACKLOG`` the caller pauses the origin
    and waits for ``on_drained`` (called once the backlog falls to half). ``end()`` is a
    Deferred firing with a ``FileBody`` of the whole body once every piece is written (or
    failing); ``fail()`` gives up: readers see ``failed``. Reactor thread only, but for the
    functions run in the I/O runner."""

    def __init__(self, directory: str, io, files, name: str, expected=None) -> None:
        self._files = files  # a diskio.FileQueue over ``io``: orders this fill's operations
        self._name = name
        self._io = io
        self._fd = -1
        self.expected = expected  # the announced length, if any
        self.written = 0
        self.queued = 0
        self.length = None
        self.failed = False
        self.on_drained = None
        self._waiters = []
        self._ended = None
        files.submit(name, _open_anonymous, directory).addCallbacks(self._opened, self._broken)

    def _opened(self, fd) -> None:
        if self.failed:
            _close_quietly(fd)
            return
        self._fd = fd

    @property
    def backlog(self) -> int:
        return self.queued - self.written

    def __len__(self) -> int:
        return self.written

    def write(self, data: bytes) -> None:
        if self.failed or self.length is not None or not data:
            return
        offset = self.queued
        self.queued += len(data)
        self._files.submit(self._name, self._pwrite, data, offset).addCallbacks(
            self._wrote, self._broken)

    def _pwrite(self, data, offset):  # in an I/O thread, after _opened (queued in order)
        view = memoryview(data)
        while view:
            done = os.pwrite(self._fd, view, offset)
            view, offset = view[done:], offset + done
        return len(data)

    def _wrote(self, size) -> None:
        if self.failed:
            return
        self.written += size
        if self.on_drained is not None and self.backlog <= FILL_BACKLOG // 2:
            callback, self.on_drained = self.on_drained, None
            callback()
        self._wake()

    def _broken(self, failure) -> None:
        if not self.failed:
            log.warn("cache fill file failed: {error}", error=failure.value)
        self.fail()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback()

    def notify(self, callback) -> None:
        if self.failed or (self.length is not None and self.written >= self.length):
            callback()
        else:
            self._waiters.append(callback)

    def read(self, start: int, size: int):
        if self.failed:
            return defer.fail(ValueError("cache fill failed"))
        return self._io.run(pread_exact, self._fd, size, start)

    def end(self):
        """No more pieces: a Deferred of a ``FileBody`` (a descriptor of its own) of the whole
        body once it is on disk; it fails if the fill failed."""
        if self._ended is None:
            self.length = self.queued
            self._ended = defer.Deferred()
            self._files.submit(self._name, _noop).addBoth(self._settle)
        return self._ended

    def _settle(self, _):
        self._wake()
        if self.failed or self.written != self.length:
            self.fail()
            self._ended.errback(ValueError("cache fill incomplete"))
            return None
        self._ended.callback(FileBody(os.dup(self._fd), 0, self.length, self._io))
        return None

    def fail(self) -> None:
        """Give up the fill: readers behind it see ``failed`` (and abort their answer)."""
        if self.failed:
            return
        self.failed = True
        self.on_drained = None
        self._wake()
        self.close()

    def close(self) -> None:
        """Release the file (readers holding a ``FileBody`` of it keep their descriptor)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            # after the operations already queued on it (a write in a thread uses it)
            self._files.submit(self._name, _close_quietly, fd)

    def __del__(self):
        # nothing is queued on the file any more (queued operations hold this object)
        if self._fd >= 0:
            _close_quietly(self._fd)

    def __repr__(self):
        return "<BodyFill %d/%s bytes%s>" % (self.written, self.length,
                                              " failed" if self.failed else "")


def _noop():
    return None


def _open_anonymous(directory: str) -> int:
    """A new file in ``directory``, already unlinked; its descriptor. Runs in a thread."""
    path = os.path.join(directory, ".fill-%d-%s" % (os.getpid(), os.urandom(8).hex()))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.unlink(path)
    except OSError:
        _close_quietly(fd)
        raise
    return fd
