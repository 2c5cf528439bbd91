"""What the memcached store writes, as pure functions: item names, value heads, chunks, the
URL prefixes a key can be purged by, and generation counters.

Item names are ``prefix + hex(blake2b(key))`` (always under memcached's 250-byte limit, never
a space or control byte); the original key goes inside the head so a hash collision is a miss.

A value is one *head* item::

    "RPM" | version u8 | expires_at f64 | payload length u64 | chunk count u32 | write id u32 |
    digest 16 B (blake2b of the payload) | generation count u32 |
    blobs [key, tag1, tag2, ...] | generations u64 x count | payload (when not chunked)

The payload is ``value_to_bytes(value)``. When head and payload would pass ``item_max`` the
payload goes in chunk items ``<head name>/<write id>/<i>`` (a fresh write id per put, so a
reader never mixes two writes' chunks); a missing chunk or a wrong digest is a miss.

Purges use generation counters (memcached cannot list keys): one counter item per *purge
point* (``""`` for everything, then every URL prefix of the key ending in "/") and per tag,
on every server (a value's counters are read on its own server). A head records the
counters' values when it was written; a reader compares them with the current ones. Each
counter holds ``hard << 32 | soft``: a hard purge adds ``HARD_STEP`` (the value is gone), a
soft purge adds 1 (the value comes back stale).
"""

from __future__ import annotations

import hashlib
import struct
from typing import List, Optional, Sequence

from revproxy.cache.entry import pack_blobs, unpack_blobs

MAGIC = b"RPM"
VERSION = 1
HARD_STEP = 1 << 32
SOFT_MASK = HARD_STEP - 1
PREFIX_DEPTH = 8  # "/"-ending prefixes of a key that are purge points, root first
FRESH, STALE, GONE = "fresh", "stale", "gone"

_HEAD = struct.Struct(">3sBdQII16sI")
_NAME_DIGEST = 20


def item_name(prefix: bytes, key: bytes) -> bytes:
    """The memcached key of the head item for cache key ``key``."""
    return prefix + hashlib.blake2b(key, digest_size=_NAME_DIGEST).hexdigest().encode("ascii")


def chunk_name(head_name: bytes, write_id: int, index: int) -> bytes:
    """The memcached key of chunk ``index`` of the write ``write_id`` of a head."""
    return b"%s/%08x/%d" % (head_name, write_id, index)


def counter_name(prefix: bytes, kind: bytes, name: bytes) -> bytes:
    """The memcached key of the generation counter of a purge point (``kind`` b"p") or a
    tag (b"t"). "g" is no hex digit, so it never looks like a head's name."""
    digest = hashlib.blake2b(kind + b"\x00" + name, digest_size=_NAME_DIGEST).hexdigest()
    return prefix + b"g" + digest.encode("ascii")


def _head_end(key: bytes) -> int:
    """Where the path of ``key`` ends: at the first "?" or NUL (query, key extras)."""
    end = len(key)
    for stop in (b"?", b"\x00"):
        found = key.find(stop, 0, end)
        if found >= 0:
            end = found
    return end


def prefix_points(key: bytes, depth: int = PREFIX_DEPTH) -> List[bytes]:
    """The purge points of ``key``: ``b""`` then ``key`` cut after each "/" of its path
    (before any "?" or NUL), at most ``depth`` of them; the "/" of "://" are skipped, so
    ``http://h/a/b`` gives ``["", "http://h/", "http://h/a/"]``."""
    points = [b""]
    end = _head_end(key)
    pos = key.find(b"/", 0, end)
    while pos >= 0 and len(points) <= depth:
        # Whether a "/" belongs to "://" depends only on the bytes before it, so a prefix
        # and every key starting with it agree on which cuts count.
        if key[pos - 1:pos] != b":" and key[pos - 2:pos] != b":/":
            points.append(key[:pos + 1])
        pos = key.find(b"/", pos + 1, end)
    return points


def purge_point(prefix: bytes, depth: int = PREFIX_DEPTH) -> bytes:
    """The purge point a prefix purge bumps: the longest purge point of ``prefix`` itself.
    It is a purge point of every key starting with ``prefix``, so the purge removes at
    least what was asked, and more when ``prefix`` does not end at a "/"."""
    return prefix_points(prefix, depth)[-1]


class Head:
    """A decoded head item (see the module docstring); ``inline`` is the payload when it
    is not chunked, else b""."""

    __slots__ = ("key", "tags", "expires_at", "length", "chunks", "write_id", "digest",
                 "generations", "inline")

    def __init__(self, key, tags, expires_at, length, chunks, write_id, digest, generations,
                 inline=b""):
        self.key = key
        self.tags = tuple(tags)
        self.expires_at = expires_at
        self.length = length
        self.chunks = chunks
        self.write_id = write_id
        self.digest = digest
        self.generations = tuple(generations)
        self.inline = inline


def payload_digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


def head_overhead(key: bytes, tags: Sequence[bytes], count: int) -> int:
    """The bytes of a head without its payload, for ``count`` generations."""
    return (_HEAD.size + 4 * (2 + len(tags)) + len(key) + sum(len(t) for t in tags)
            + 8 * count)


def encode_head(key: bytes, tags: Sequence[bytes], expires_at: float, payload: bytes,
                generations: Sequence[int], chunks: int, write_id: int) -> bytes:
    """A head item; the payload is appended only when ``chunks`` is 0."""
    fixed = _HEAD.pack(MAGIC, VERSION, expires_at, len(payload), chunks, write_id,
                       payload_digest(payload), len(generations))
    gens = struct.pack(">%dQ" % len(generations), *generations)
    return b"".join([fixed, pack_blobs([key] + list(tags)), gens,
                     b"" if chunks else payload])


def decode_head(data: bytes) -> Head:
    """The head in ``data``; ValueError when it is not a whole, valid one."""
    try:
        (magic, version, expires_at, length, chunks, write_id, digest,
         count) = _HEAD.unpack_from(data, 0)
        if magic != MAGIC or version != VERSION:
            raise ValueError("memcached item: not a version-%d head" % VERSION)
        blobs, offset = unpack_blobs(data, _HEAD.size)
        if 8 * count > len(data) - offset:
            raise ValueError("memcached item: generation count overruns the data")
        generations = struct.unpack_from(">%dQ" % count, data, offset)
    except struct.error as e:
        raise ValueError("memcached item: truncated head (%s)" % (e,))
    offset += 8 * count
    inline = data[offset:]
    if not blobs or len(inline) != (0 if chunks else length):
        raise ValueError("memcached item: head lengths disagree with the data")
    if not chunks and payload_digest(inline) != digest:
        raise ValueError("memcached item: payload digest mismatch")
    return Head(blobs[0], blobs[1:], expires_at, length, chunks, write_id, digest,
                generations, inline)


def split_payload(payload: bytes, size: int) -> List[bytes]:
    """``payload`` in pieces of ``size`` bytes (the last one shorter)."""
    return [payload[i:i + size] for i in range(0, len(payload), size)]


def join_chunks(head: Head, chunks: Sequence[Optional[bytes]]) -> Optional[bytes]:
    """The payload from its chunks, or None when one is missing or the digest is wrong."""
    if len(chunks) != head.chunks or any(chunk is None for chunk in chunks):
        return None
    payload = b"".join(chunks)
    if len(payload) != head.length or payload_digest(payload) != head.digest:
        return None
    return payload


def parse_counter(raw: Optional[bytes]) -> Optional[int]:
    """A counter item's value, or None when it is missing or not a decimal number."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def verdict(recorded: Sequence[int], current: Sequence[Optional[int]]) -> str:
    """GONE when a counter is missing (evicted, server lost: a purge may be lost with it)
    or its hard part moved; STALE when only a soft part moved; else FRESH."""
    result = FRESH
    for then, now in zip(recorded, current):
        if now is None or (now ^ then) & ~SOFT_MASK:
            return GONE
        if now != then:
            result = STALE
    return result


def initial_generation(rng) -> int:
    """A fresh counter's value: a random hard part, soft part 0. Random, so a counter that
    was evicted and made again does not come back to a value old heads recorded."""
    return rng.randrange(1, 1 << 31) << 32
