"""``DiskStore``: values in files (one per key), kept across restarts, least recently used
evicted first.

An in-memory index (key -> file name, size, expiry, tags, soft-purge flag, in LRU order)
answers misses, purges and evictions without touching the disk; it is rebuilt at start-up
by reading the head of every file (``diskfiles.scan``), recency taken from the files'
access and modification times. A file that does not parse is a miss and is deleted.

File I/O is blocking, done in the reactor thread: acceptable for the small objects a cache
mostly holds on a local disk; moving reads and writes to a thread pool is a later step.
One process per directory: two stores sharing a directory would not see each other's
changes in their indexes.
"""

from __future__ import annotations

import os

from twisted.internet.defer import succeed
from twisted.logger import Logger
from zope.interface import implementer

from revproxy.cache.entry import marked_stale, value_from_bytes, value_to_bytes
from revproxy.cache.stores import diskfiles
from revproxy.cache.stores.index import LruIndex, Slot
from revproxy.cache.stores.options import (
    MIB, WallClock, bool_option, check_bounds, check_options, size_option, str_option)
from revproxy.interfaces import ICacheStore

_OPTIONS = ("path", "max_bytes", "max_object", "fsync")
log = Logger()


@implementer(ICacheStore)
class DiskStore:
    """An ``ICacheStore`` in the directory ``path`` (created if missing): at most
    ``max_bytes`` of files, no file over ``max_object``; ``fsync`` makes each put durable
    before it reports True (slower); ``clock`` has ``seconds()`` (default: system time).
    Building it scans the directory (blocking)."""

    name = "disk"

    def __init__(self, path: str, max_bytes: int = 1024 * MIB, max_object: int = 8 * MIB,
                 fsync: bool = False, clock=None) -> None:
        check_bounds(self.name, max_bytes, max_object)
        self.path = os.path.abspath(path)
        self.max_object = max_object
        self.fsync = fsync
        self._clock = clock if clock is not None else WallClock()
        self._index = LruIndex(max_bytes)
        self._closed = False
        self.hits = self.misses = self.evictions = self.expirations = self.errors = 0
        os.makedirs(self.path, 0o700, exist_ok=True)
        self._load()

    @classmethod
    def from_options(cls, options, reactor) -> "DiskStore":
        """A store from ``store_options``: ``path`` (required), ``max_bytes``,
        ``max_object`` (sizes like "1g"; ``max_object`` defaults to 8 MiB or ``max_bytes``
        if smaller), ``fsync`` (bool); the reactor is the clock. ValueError for bad
        options, a directory that cannot be created included."""
        options = check_options(cls.name, options, _OPTIONS)
        path = str_option(cls.name, options, "path")
        max_bytes = size_option(cls.name, options, "max_bytes", 1024 * MIB)
        max_object = size_option(cls.name, options, "max_object", min(8 * MIB, max_bytes))
        fsync = bool_option(cls.name, options, "fsync", False)
        try:
            return cls(path, max_bytes, max_object, fsync, clock=reactor)
        except OSError as e:
            raise ValueError("cache store 'disk': option 'path' %r unusable: %s" % (path, e))

    def _load(self) -> None:
        """Index the record files found, oldest used first; delete temp files, corrupt or
        expired records and whatever no longer fits the bounds."""
        now = self._clock.seconds()
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
            slot = Slot(name, stat.st_size, head.expires_at, head.tags, head.stale)
            found.append((max(stat.st_atime, stat.st_mtime), name, head.key, slot))
        found.sort(key=lambda item: item[:2])
        for _, _, key, slot in found:
            self._add(key, slot)

    def _file(self, name: str) -> str:
        return diskfiles.file_path(self.path, name)

    def _add(self, key, slot) -> None:
        _, evicted = self._index.add(key, slot)
        for _, old in evicted:
            diskfiles.unlink(self._file(old.value))
        self.evictions += len(evicted)

    def _discard(self, key) -> None:
        slot = self._index.remove(key)
        if slot is not None:
            diskfiles.unlink(self._file(slot.value))

    def get(self, key):
        slot = self._index.slots.get(key)
        if slot is not None:
            if slot.expires_at > self._clock.seconds():
                value = self._read(key, slot)
                if value is not None:
                    self._index.touch(key)
                    self.hits += 1
                    return succeed(value)
            else:
                self._discard(key)
                self.expirations += 1
        self.misses += 1
        return succeed(None)

    def _read(self, key, slot):
        """The value in ``slot``'s file, or None (and the key forgotten) if it is gone or
        corrupt."""
        path = self._file(slot.value)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            self._index.remove(key)
            if not isinstance(e, FileNotFoundError):
                self.errors += 1
                log.warn("cache file {path} unreadable: {error}", path=path, error=e)
            return None
        try:
            head, value_bytes = diskfiles.decode_record(data)
            if head.key != key:
                raise ValueError("cache file: holds another key")
            value = value_from_bytes(value_bytes)
        except ValueError as e:
            self._discard(key)
            self.errors += 1
            log.warn("cache file {path} corrupt, deleted: {error}", path=path, error=e)
            return None
        return marked_stale(value) if head.stale else value

    def put(self, key, value, ttl, tags=()):
        if self._closed or not ttl > 0:
            self._discard(key)
            return succeed(False)
        tags = tuple(tags)
        expires_at = self._clock.seconds() + ttl
        data = diskfiles.encode_record(key, value_to_bytes(value), expires_at, tags)
        if len(data) > self.max_object:
            self._discard(key)
            return succeed(False)
        name = diskfiles.file_name(key)
        try:
            diskfiles.write_atomically(self._file(name), data, self.fsync)
        except OSError as e:
            self._discard(key)
            self.errors += 1
            log.warn("cache file for {key!r} not written: {error}", key=key, error=e)
            return succeed(False)
        self._add(key, Slot(name, len(data), expires_at, tags))
        return succeed(True)

    def delete(self, key):
        self._discard(key)
        return succeed(None)

    def purge(self, prefix=None, tag=None, soft=False):
        keys = self._index.matching(prefix, tag)
        for key in keys:
            if not soft:
                self._discard(key)
                continue
            slot = self._index.slots[key]
            if slot.stale:
                continue
            try:
                diskfiles.mark_stale(self._file(slot.value))
            except OSError:
                # Cannot mark it: removing it is the safe way to stop serving it fresh.
                self._discard(key)
            else:
                slot.stale = True
        return succeed(len(keys))

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
                "max_bytes": self._index.max_bytes}

    def close(self):
        """Forget the index; the files stay for the next store on this directory."""
        self._closed = True
        self._index.clear()
        return succeed(None)

    def __repr__(self):
        return "<DiskStore %s: %d entries, %d/%d bytes>" % (
            self.path, len(self._index), self._index.bytes, self._index.max_bytes)
