"""``DiskStore``: values in files (one per key), kept across restarts, least recently used
evicted first; file I/O off the reactor thread, hot values in a small memory tier.

An in-memory index (key -> file name, size, expiry, tags, soft-purge flag, in LRU order)
answers misses, purges and evictions without touching the disk; it is rebuilt at start-up
by reading the head of every file (``diskfiles.scan``), recency taken from the files'
access and modification times. A file that does not parse is a miss and is deleted.

Threads: the index, the memory tier and every counter live in the reactor thread, with no
lock. Opening, reading and decoding a file, and writing, renaming, fsyncing and deleting
one run through an I/O runner (``diskio``: a bounded thread pool in production, inline in
unit tests); operations on one file run in call order (``diskio.FileQueue``).

Writes are indexed at once: ``put`` adds the slot and keeps the value in memory until its
file is written (``get`` serves it from there, so a request collapsed behind a fill sees
the new entry at once), then fires True; if the write fails the key is dropped and ``put``
fires False. A soft purge only flags the index slots and appends one line to a journal
(``purgelog``) that the start-up scan applies. One process per directory: two stores
sharing a directory would not see each other's changes in their indexes.
"""

from __future__ import annotations

import os
import time

from twisted.internet.defer import succeed
from twisted.logger import Logger
from zope.interface import implementer

from revproxy.cache.bodies import BodyFill, FileBody
from revproxy.cache.entry import CacheEntry, marked_stale, value_to_bytes
from revproxy.cache.stores import diskfiles, purgelog
from revproxy.cache.stores.diskio import FileQueue, InlineIO, io_for
from revproxy.cache.stores.index import LruIndex, Slot
from revproxy.cache.stores.options import (
    MIB, WallClock, bool_option, check_bounds, check_options, int_option, size_option,
    size_or_zero_option, str_option)
from revproxy.interfaces import ICacheStore, IStreamingCacheStore

STREAM_ABOVE = 1024 * 1024  # bodies longer than this are streamed from their file
_OPTIONS = ("path", "max_bytes", "max_object", "fsync", "memory_bytes", "threads")
_JOURNAL = purgelog.JOURNAL_NAME  # the FileQueue name that orders journal appends
log = Logger()


@implementer(IStreamingCacheStore)
class DiskStore:
    """An ``ICacheStore`` in the directory ``path`` (created if missing): at most
    ``max_bytes`` of files, no file over ``max_object``; ``fsync`` makes each put durable
    before it reports True (slower); ``clock`` has ``seconds()`` (default: system time);
    ``memory_bytes`` bounds the memory tier of decoded hot values (0: none; a value larger
    than an eighth of it is not kept there); ``io`` is the I/O runner (default inline,
    blocking: ``from_options`` gives a thread pool); ``wall_ns`` is the wall clock in
    nanoseconds that stamps record files and soft purges (``purgelog.Stamps``). Building it
    scans the directory (blocking, before the proxy serves)."""

    name = "disk"

    def __init__(self, path: str, max_bytes: int = 1024 * MIB, max_object=None,
                 fsync: bool = False, clock=None, memory_bytes: int = 0, io=None,
                 stream_above: int = STREAM_ABOVE, wall_ns=time.time_ns) -> None:
        if max_object is None:
            max_object = min(1024 * MIB, max_bytes)
        check_bounds(self.name, max_bytes, max_object)
        self.stream_above = stream_above
        self.path = os.path.abspath(path)
        self.max_object = max_object
        self.fsync = fsync
        self._clock = clock if clock is not None else WallClock()
        self._index = LruIndex(max_bytes)
        self._io = io if io is not None else InlineIO()
        self._files = FileQueue(self._io)
        self._pending = {}  # key -> (slot, value) whose file is being written
        self._memory = LruIndex(memory_bytes)
        self._memory_value_max = memory_bytes // 8
        self._closed = False
        self.hits = self.misses = self.evictions = self.expirations = self.errors = 0
        self.memory_hits = 0
        self._fills = 0
        self._stamps = purgelog.Stamps(wall_ns)
        os.makedirs(self.path, 0o700, exist_ok=True)
        self._load()

    @classmethod
    def from_options(cls, options, reactor) -> "DiskStore":
        """A store from ``store_options``: ``path`` (required), ``max_bytes``,
        ``max_object`` (sizes like "1g"; ``max_object`` defaults to 1 GiB or ``max_bytes``
        if smaller), ``fsync`` (bool), ``memory_bytes`` (default "32m", 0 for none),
        ``threads`` (I/O threads, default 4; 0 does the I/O in the reactor thread); the
        reactor is the clock and runs the pool. ValueError for bad options, a directory
        that cannot be created included."""
        options = check_options(cls.name, options, _OPTIONS)
        path = str_option(cls.name, options, "path")
        max_bytes = size_option(cls.name, options, "max_bytes", 1024 * MIB)
        max_object = size_option(cls.name, options, "max_object", min(1024 * MIB, max_bytes))
        fsync = bool_option(cls.name, options, "fsync", False)
        memory_bytes = size_or_zero_option(cls.name, options, "memory_bytes", 32 * MIB)
        threads = int_option(cls.name, options, "threads", 4, 0, 64)
        check_bounds(cls.name, max_bytes, max_object)
        try:
            store = cls(path, max_bytes, max_object, fsync, clock=reactor,
                        memory_bytes=memory_bytes)
        except OSError as e:
            raise ValueError("cache store 'disk': option 'path' %r unusable: %s" % (path, e))
        store._io = io_for(reactor, threads)
        store._files = FileQueue(store._io)
        return store

    # -- start-up ------------------------------------------------------------------------
    def _load(self) -> None:
        """Index the record files found, oldest used first; delete temp files, corrupt or
        expired records and whatever no longer fits the bounds; apply and compact the
        soft-purge journal."""
        now = self._clock.seconds()
        purges = purgelog.read(self.path)
        found = []
        for name, path, stat in diskfiles.scan(self.path):
            try:
                head = diskfiles.read_head(path, stat.st_size)
            except ValueError:
                diskfiles.unlink(path)
                self.errors += 1
                continue
            except OSError:
                continue
            if (diskfiles.file_name(head.key) != name or head.expires_at <= now
                    or stat.st_size > self.max_object):
                diskfiles.unlink(path)
                continue
            written = stat.st_mtime_ns
            stale = head.stale or any(p.matches(head.key, head.tags, written) for p in purges)
            slot = Slot(name, stat.st_size, head.expires_at, head.tags, stale)
            found.append((max(stat.st_atime_ns, written), name, head.key, slot, written))
        found.sort(key=lambda item: item[:2])
        for _, _, key, slot, _ in found:
            self._add(key, slot)
        self._stamps.last_write = max([item[4] for item in found], default=0)
        self._stamps.last_purge = max([p.at_ns for p in purges], default=0)
        oldest = min([item[4] for item in found], default=None)
        kept = [p for p in purges if oldest is not None and p.at_ns >= oldest]
        if kept != purges:
            try:
                purgelog.rewrite(self.path, kept)
            except OSError as e:
                log.warn("cache soft-purge journal in {path} not compacted: {error}",
                         path=self.path, error=e)

    # -- the index and the memory tier (reactor thread) -----------------------------------
    def _file(self, name: str) -> str:
        return diskfiles.file_path(self.path, name)

    def _add(self, key, slot) -> None:
        _, evicted = self._index.add(key, slot)
        for old_key, old in evicted:
            self._forget(old_key)
            self._unlink(old.value)
        self.evictions += len(evicted)

    def _forget(self, key) -> None:
        """Drop ``key``'s in-memory copies (memory tier, value being written)."""
        self._pending.pop(key, None)
        self._memory.remove(key)

    def _discard(self, key) -> None:
        self._forget(key)
        slot = self._index.remove(key)
        if slot is not None:
            self._unlink(slot.value)

    def _unlink(self, name) -> None:
        self._files.submit(name, diskfiles.unlink, self._file(name)).addErrback(
            lambda f: log.failure("cache file {name} not deleted", f, name=name))

    def _remember(self, key, value, expires_at) -> None:
        if 0 < value.size <= self._memory_value_max and not _in_file(value):
            self._memory.add(key, Slot(value, value.size, expires_at))

    # -- ICacheStore ------------------------------------------------------------------------
    def get(self, key):
        slot = self._index.slots.get(key)
        if slot is None:
            self.misses += 1
            return succeed(None)
        if slot.expires_at <= self._clock.seconds():
            self._discard(key)
            self.expirations += 1
            self.misses += 1
            return succeed(None)
        pending = self._pending.get(key)
        if pending is not None:
            value = pending[1]
        else:
            held = self._memory.slots.get(key)
            value = held.value if held is not None else None
            if value is not None:
                self._memory.touch(key)
        if value is not None:
            self._index.touch(key)
            self.hits += 1
            self.memory_hits += 1
            return succeed(marked_stale(value) if slot.stale else value)
        d = self._io.run(diskfiles.read_record, self._file(slot.value), key,
                         self.stream_above, self._io)
        return d.addCallbacks(self._read, self._unreadable, callbackArgs=(key, slot),
                              errbackArgs=(key, slot))

    def _read(self, result, key, slot):
        head, value = result
        if self._index.slots.get(key) is not slot:
            # deleted, replaced or purged while the file was read: that read is outdated
            self.misses += 1
            return None
        self._index.touch(key)
        self.hits += 1
        self._remember(key, value, slot.expires_at)
        return marked_stale(value) if slot.stale or head.stale else value

    def _unreadable(self, failure, key, slot):
        self.misses += 1
        current = self._index.slots.get(key) is slot
        path = self._file(slot.value)
        if failure.check(FileNotFoundError):
            if current:
                self._index.remove(key)
        elif failure.check(ValueError):
            if current:
                self._discard(key)
            self.errors += 1
            log.warn("cache file {path} corrupt, deleted: {error}", path=path,
                     error=failure.value)
        elif failure.check(OSError):
            if current:
                self._index.remove(key)
            self.errors += 1
            log.warn("cache file {path} unreadable: {error}", path=path, error=failure.value)
        else:
            self.errors += 1
            log.failure("cache file {path} not read", failure, path=path)
        return None

    def put(self, key, value, ttl, tags=()):
        if self._closed or not ttl > 0:
            self._discard(key)
            return succeed(False)
        tags = tuple(tags)
        expires_at = self._clock.seconds() + ttl
        data, size = _record(key, value, expires_at, tags)
        if size > self.max_object:
            _release(data)
            self._discard(key)
            return succeed(False)
        name = diskfiles.file_name(key)
        slot = Slot(name, size, expires_at, tags)
        self._forget(key)
        self._add(key, slot)
        self._pending[key] = (slot, value)
        d = self._files.submit(name, diskfiles.write_atomically, self._file(name), data,
                               self.fsync, self._stamps.write())
        return d.addCallbacks(self._written, self._not_written, callbackArgs=(key, slot, value),
                              errbackArgs=(key, slot))

    def _written(self, _, key, slot, value):
        pending = self._pending.get(key)
        if pending is not None and pending[0] is slot:
            del self._pending[key]
            self._remember(key, value, slot.expires_at)
            if slot.stale:
                # soft-purged before its file existed: the journal line predates the file,
                # so the flag goes into the file itself
                self._files.submit(slot.value, diskfiles.mark_stale,
                                   self._file(slot.value)).addErrback(
                    lambda f: self._discard(key) if self._index.slots.get(key) is slot
                    else None)
        return True

    def _not_written(self, failure, key, slot):
        pending = self._pending.get(key)
        if pending is not None and pending[0] is slot:
            self._discard(key)  # the old file too: never serve what the origin replaced
        self.errors += 1
        if failure.check(OSError):
            log.warn("cache file for {key!r} not written: {error}", key=key,
                     error=failure.value)
        else:
            log.failure("cache file for {key!r} not written", failure, key=key)
        return False

    def begin_body(self, expected=None):
        """A ``BodyFill``: a body written to an anonymous file in this store's directory as it
        arrives (``IStreamingCacheStore``); None when closed or ``expected`` (the announced
        length, if any) is over ``max_object``."""
        if self._closed or (expected is not None and expected > self.max_object):
            return None
        self._fills += 1
        return BodyFill(self.path, self._io, self._files, ".fill-%d" % self._fills,
                        expected)

    def delete(self, key):
        self._discard(key)
        return succeed(None)

    def purge(self, prefix=None, tag=None, soft=False):
        keys = self._index.matching(prefix, tag)
        if not soft:
            for key in keys:
                self._discard(key)
            return succeed(len(keys))
        for key in keys:
            self._index.slots[key].stale = True
        if keys:
            purge = purgelog.SoftPurge(self._stamps.purge(), prefix or None, tag)
            self._files.submit(_JOURNAL, purgelog.append, self.path, purge).addErrback(
                self._journal_failed)
        return succeed(len(keys))

    def _journal_failed(self, failure):
        self.errors += 1
        log.warn("cache soft purge not journaled in {path} (a restart forgets it): {error}",
                 path=self.path, error=failure.value)

    def sweep(self) -> int:
        """Delete every file past its ttl now; how many were deleted. Call it from a timer
        so expired values nobody asks for again do not hold disk space."""
        keys = self._index.expired(self._clock.seconds())
        for key in keys:
            self._discard(key)
        self.expirations += len(keys)
        return len(keys)

    def stats(self):
        return {"entries": len(self._index), "bytes": self._index.bytes, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions,
                "expirations": self.expirations, "errors": self.errors,
                "max_bytes": self._index.max_bytes, "memory_hits": self.memory_hits,
                "memory_entries": len(self._memory), "memory_bytes": self._memory.bytes,
                "writes_pending": len(self._pending)}

    def close(self):
        """Forget the index; the files stay for the next store on this directory. Fires
        once the file operations already started have ended and the I/O threads stopped."""
        if self._closed:
            return succeed(None)
        self._closed = True
        self._index.clear()
        self._memory.clear()
        self._pending.clear()
        return self._files.idle().addCallback(lambda _: self._io.stop())

    def __repr__(self):
        return "<DiskStore %s: %d entries, %d/%d bytes>" % (
            self.path, len(self._index), self._index.bytes, self._index.max_bytes)


def _in_file(value) -> bool:
    return isinstance(value, CacheEntry) and isinstance(value.body, FileBody)


def _record(key, value, expires_at, tags):
    """(what ``write_atomically`` writes, the record's size) for ``value``: bytes, or for an
    entry whose body is in a file, its head and a copy of the body from a descriptor of its
    own (so the copy outlives whoever serves that body meanwhile)."""
    if not _in_file(value):
        data = diskfiles.encode_record(key, value_to_bytes(value), expires_at, tags)
        return data, len(data)
    body = value.body
    meta = value.meta_bytes()
    head = diskfiles.encode_record_head(key, len(meta) + len(body), expires_at, tags)
    return [head + meta, (body.dup(), body.offset, len(body))], len(head) + len(meta) + len(body)


def _release(data) -> None:
    if not isinstance(data, bytes):
        for piece in data:
            if not isinstance(piece, bytes):
                os.close(piece[0])
