"""The disk store's files: names, the record format, atomic writes, the start-up scan.

A value under key K lives in ``<root>/<h[:2]>/<h>``, ``h`` the sha256 hex digest of K. A
file is one record, version 1 (big-endian)::

    "RPD" | version u8 | flags u8 (1 = soft-purged) | expires_at f64 | key length u32 |
    tags length u32 | value length u64 | key | blobs [tags...] | value

where the value is ``revproxy.cache.entry.value_to_bytes`` output. The head comes first so
the start-up scan reads a few hundred bytes per file, not the bodies; the flags byte sits at
a fixed offset so it can be set in place (a one-byte write cannot tear); soft purges mostly
live in the index and the journal (``purgelog``), the flag only for a purge that overtook
the write of its record.
Files are written to a temp file in the same directory, then ``os.replace``d: a reader or
a crash sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import struct
from typing import Iterator, List, NamedTuple, Tuple

from revproxy.cache.bodies import FileBody
from revproxy.cache.entry import (
    KIND_ENTRY, CacheEntry, pack_blobs, unpack_blobs, value_from_bytes)

MAGIC = b"RPD"
VERSION = 1
FLAG_STALE = 1
FLAGS_OFFSET = 4
TEMP_PREFIX = ".tmp-"
_HEAD = struct.Struct(">3sBBdIIQ")
_NAME_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_FANOUT_RE = re.compile(r"\A[0-9a-f]{2}\Z")
_temp_serial = itertools.count()
_ENTRY_STATUS = struct.Struct(">H")  # an entry's status, after "RPX" "E" and its version


class RecordHead(NamedTuple):
    """A record's head: its ``key``, ``tags``, ``expires_at``, soft-purge flag (``stale``),
    where the value starts (``value_offset``) and the record's whole length (``length``)."""

    key: bytes
    tags: Tuple[bytes, ...]
    expires_at: float
    stale: bool
    value_offset: int
    length: int


def file_name(key: bytes) -> str:
    """The file name of ``key``'s record: its sha256 hex digest."""
    return hashlib.sha256(key).hexdigest()


def file_path(root: str, name: str) -> str:
    """Where the record file ``name`` lives under ``root`` (one fan-out level of 256 dirs)."""
    return os.path.join(root, name[:2], name)


def encode_record(key: bytes, value: bytes, expires_at: float, tags=()) -> bytes:
    """A record for ``value`` (serialised bytes) under ``key``."""
    return encode_record_head(key, len(value), expires_at, tags) + value


def encode_record_head(key: bytes, value_length: int, expires_at: float, tags=()) -> bytes:
    """The head of a record whose value (``value_length`` bytes) follows it."""
    tag_blobs = pack_blobs(tuple(tags))
    head = _HEAD.pack(MAGIC, VERSION, 0, expires_at, len(key), len(tag_blobs), value_length)
    return b"".join([head, key, tag_blobs])


def head_size(prefix: bytes) -> int:
    """How many bytes the head of the record starting with ``prefix`` (at least
    ``_HEAD.size`` bytes) spans; ValueError if ``prefix`` is not a record's start."""
    try:
        magic, version, flags, _, key_length, tags_length, _ = _HEAD.unpack_from(prefix, 0)
    except struct.error:
        raise ValueError("cache file: truncated head")
    if magic != MAGIC or version != VERSION or flags & ~FLAG_STALE:
        raise ValueError("cache file: not a version-%d record" % VERSION)
    return _HEAD.size + key_length + tags_length


def decode_head(data: bytes) -> RecordHead:
    """The head of the record ``data`` starts with (``data`` holds at least the head);
    ValueError if it is corrupt."""
    end = head_size(data)
    _, _, flags, expires_at, key_length, tags_length, value_length = _HEAD.unpack_from(data, 0)
    if len(data) < end:
        raise ValueError("cache file: truncated head")
    key_end = _HEAD.size + key_length
    try:
        tags, tags_end = unpack_blobs(data[:end], key_end)
    except struct.error:
        raise ValueError("cache file: truncated tags")
    if tags_end != end:
        raise ValueError("cache file: tag lengths disagree")
    return RecordHead(data[_HEAD.size:key_end], tuple(tags), expires_at,
                      bool(flags & FLAG_STALE), end, end + value_length)


def decode_record(data: bytes) -> Tuple[RecordHead, bytes]:
    """The head and value bytes of the whole record ``data``; ValueError if it is corrupt
    or truncated."""
    head = decode_head(data)
    if head.length != len(data):
        raise ValueError("cache file: %d bytes, the head says %d" % (len(data), head.length))
    return head, data[head.value_offset:]


def read_head(path: str, file_size: int) -> RecordHead:
    """The head of the record file at ``path`` (``file_size`` bytes long), reading only the
    head; ValueError if the file is not a whole record, OSError if it cannot be read."""
    with open(path, "rb") as f:
        prefix = f.read(_HEAD.size)
        end = head_size(prefix)
        if end > file_size:
            raise ValueError("cache file: truncated head")
        head = decode_head(prefix + f.read(end - len(prefix)))
    if head.length != file_size:
        raise ValueError("cache file: %d bytes, the head says %d" % (file_size, head.length))
    return head


def read_record(path: str, key: bytes, stream_above=None, io=None):
    """The head and the decoded value (``value_from_bytes``) of the record file at ``path``,
    which must hold ``key``. Raises OSError when it cannot be read, ValueError when it is
    not a whole, valid record of ``key``. Pure function of the file: safe in a thread.

    With ``stream_above`` (bytes), a complete entry (not a 206) whose body is longer is not
    read: its body is a ``FileBody`` on the open file, read later through ``io``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if stream_above is None or size <= stream_above:
            return _whole_record(_read_all(fd, size), key)
        prefix = os.pread(fd, 65536, 0)
        head = decode_head(prefix)
        if head.length != size:
            raise ValueError("cache file: %d bytes, the head says %d" % (size, head.length))
        if head.key != key:
            raise ValueError("cache file: holds another key")
        value = prefix[head.value_offset:]
        if value[3:4] != KIND_ENTRY:
            return _whole_record(_read_all(fd, size), key)
        meta_length = CacheEntry.meta_length(value)
        if meta_length is None:  # headers larger than the first read
            value = os.pread(fd, size - head.value_offset, head.value_offset)
            meta_length = CacheEntry.meta_length(value)
            if meta_length is None:
                raise ValueError("cache file: truncated entry")
        body_offset = head.value_offset + meta_length
        body_length = size - body_offset
        if body_length <= stream_above or _ENTRY_STATUS.unpack_from(value, 5)[0] == 206:
            # small, or the packed parts of a 206 (read whole to be unpacked)
            return _whole_record(_read_all(fd, size), key)
        entry = CacheEntry.from_meta(value[:meta_length] if len(value) >= meta_length
                                     else os.pread(fd, meta_length, head.value_offset),
                                     _Length(body_length))
        entry.body = FileBody(fd, body_offset, body_length, io)
        fd = -1  # owned by the body now
        return head, entry
    finally:
        if fd >= 0:
            os.close(fd)


class _Length:
    """Stands for a body of ``n`` bytes while an entry's head is checked."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def _read_all(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _whole_record(data: bytes, key: bytes):
    head, value_bytes = decode_record(data)
    if head.key != key:
        raise ValueError("cache file: holds another key")
    return head, value_from_bytes(value_bytes)


def copy_from(fd: int, offset: int, length: int, f) -> None:
    """Write ``length`` bytes at ``offset`` of ``fd`` to the file object ``f``; ValueError
    when ``fd`` holds fewer (never store a short body as whole)."""
    end = offset + length
    while offset < end:
        chunk = os.pread(fd, min(1 << 20, end - offset), offset)
        if not chunk:
            raise ValueError("cache body file: %d bytes short" % (end - offset))
        f.write(chunk)
        offset += len(chunk)


def write_atomically(path: str, data, fsync: bool, mtime_ns=None) -> None:
    """Make ``path`` hold ``data`` through a temp file in its directory and ``os.replace``
    (creating the directory if needed); with ``fsync``, data and directory are synced
    first; with ``mtime_ns``, the file's access and modification times are set to it.
    Raises OSError (or ValueError for a short body copy), leaving no temp file behind.
    ``data`` is bytes, or a list of bytes and ``(fd, offset, length)`` pieces copied from
    the file ``fd`` (closed afterwards, whatever happens)."""
    pieces = [data] if isinstance(data, bytes) else list(data)
    try:
        _write_pieces(path, pieces, fsync, mtime_ns)
    finally:
        for piece in pieces:
            if not isinstance(piece, bytes):
                _close_fd(piece[0])


def _close_fd(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def _write_pieces(path, pieces, fsync, mtime_ns):
    directory, name = os.path.split(path)
    temp = os.path.join(directory, "%s%s.%d.%d" % (
        TEMP_PREFIX, name, os.getpid(), next(_temp_serial)))
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileNotFoundError:
        os.makedirs(directory, 0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                if isinstance(piece, bytes):
                    f.write(piece)
                else:
                    copy_from(piece[0], piece[1], piece[2], f)
            f.flush()
            if mtime_ns is not None:
                os.utime(f.fileno(), ns=(mtime_ns, mtime_ns))
            if fsync:
                os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        _unlink_quietly(temp)
        raise
    if fsync:
        _sync_directory(directory)


def mark_stale(path: str) -> None:
    """Set the soft-purge flag of the record file at ``path`` in place. Raises OSError."""
    with open(path, "r+b") as f:
        f.seek(FLAGS_OFFSET)
        f.write(bytes([FLAG_STALE]))


def scan(root: str) -> Iterator[Tuple[str, str, os.stat_result]]:
    """``(name, path, stat)`` of every record file under ``root``; temp files (left by a
    crash mid-write) are deleted on the way. Other files are left alone."""
    for fanout in _list(root):
        directory = os.path.join(root, fanout)
        if not _FANOUT_RE.match(fanout) or not os.path.isdir(directory):
            continue
        for entry in _scandir(directory):
            if entry.name.startswith(TEMP_PREFIX):
                _unlink_quietly(entry.path)
            elif _NAME_RE.match(entry.name) and entry.name[:2] == fanout:
                try:
                    yield entry.name, entry.path, entry.stat()
                except OSError:
                    continue


def unlink(path: str) -> None:
    """Delete ``path``; a file already gone is no error."""
    _unlink_quietly(path)


def _list(directory: str) -> List[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def _scandir(directory: str) -> List[os.DirEntry]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_directory(directory: str) -> None:
    # The rename is durable only once the directory entry is; not every OS allows it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
