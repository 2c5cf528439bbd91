"""What a cache store holds: a stored response (``CacheEntry``) or the list of a URL's
variants (``VariantIndex``), and their byte serialisation.

The format is our own, not pickle: a shared store (memcached, a disk another process wrote)
must never turn into code execution. Every value starts with ``b"RPX"``, a kind byte
(``E`` entry, ``V`` variant index) and a version byte; then fixed-size numbers (big-endian)
and *blob lists*: a count, every length, then the raw bytes. Reading checks every length
against the data, so corrupt or truncated input raises ValueError, never anything else.

Entry, version 1::

    "RPX" "E" 0x01 | status u16 | flags u8 (1 = stale) | request_time f64 |
    response_time f64 | stored_at f64 | body length u64 |
    blobs [key, reason] | blobs [name1, value1, name2, value2, ...] | blobs [tags...] | body

Variant index, version 1::

    "RPX" "V" 0x01 | blobs [key] | blobs [vary names...] | blobs [variant keys...]

where ``blobs [b1 .. bn]`` is ``n u32 | len(b1) u32 .. len(bn) u32 | b1 .. bn``.
"""

from __future__ import annotations

import struct
from typing import Iterable, List, Sequence, Tuple

MAGIC = b"RPX"
KIND_ENTRY = b"E"
KIND_VARIANTS = b"V"
VERSION = 1

_PREFIX = struct.Struct(">3scB")
_ENTRY_FIXED = struct.Struct(">3scBHBdddQ")
_COUNT = struct.Struct(">I")
_FLAG_STALE = 1
# Rough per-object costs (Python object headers, list/tuple slots) so that ``size`` tracks
# memory use rather than only payload bytes: thousands of tiny entries are not free.
_ENTRY_OVERHEAD = 200
_FIELD_OVERHEAD = 120


def pack_blobs(blobs: Sequence[bytes]) -> bytes:
    """``blobs`` as a blob list: a count, every length (u32 each), the bytes."""
    count = len(blobs)
    head = struct.pack(">I%dI" % count, count, *[len(b) for b in blobs])
    return head + b"".join(blobs)


def unpack_blobs(data: bytes, offset: int) -> Tuple[List[bytes], int]:
    """The blob list at ``offset`` and the offset after it; ValueError when it overruns."""
    (count,) = _COUNT.unpack_from(data, offset)
    offset += 4
    if count * 4 > len(data) - offset:
        raise ValueError("cache value: blob count %d overruns the data" % count)
    lengths = struct.unpack_from(">%dI" % count, data, offset)
    offset += count * 4
    if offset + sum(lengths) > len(data):
        raise ValueError("cache value: blob lengths overrun the data")
    blobs = []
    for length in lengths:
        blobs.append(data[offset:offset + length])
        offset += length
    return blobs, offset


def _check_prefix(data: bytes, kind: bytes) -> None:
    magic, found_kind, version = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC or found_kind != kind:
        raise ValueError("cache value: not a %r value" % (kind,))
    if version != VERSION:
        raise ValueError("cache value: unsupported version %d" % version)


def _as_bytes(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise ValueError("cache value: expected bytes, not %s" % type(data).__name__)


class CacheEntry:
    """One stored response. Treat as immutable: ``replace`` makes a changed copy.

    ``key`` is the full key (with the Vary part), ``headers`` a list of ``(name, value)``
    bytes pairs in received order (repeated names kept), ``tags`` the purge tags (from
    Cache-Tag / Surrogate-Key), ``stale`` True once soft-purged (must revalidate before use).
    Times are seconds since the epoch.
    """

    _FIELDS = ("key", "status", "reason", "headers", "body", "request_time",
               "response_time", "stored_at", "tags", "stale")
    # ``memo``: what the cache engine derived from this very object (freshness facts, the
    # served headers, serialised heads), kept ON the entry so it dies with it: a store that
    # builds a new entry per hit leaves nothing behind (a memo dict by id() kept thousands
    # of whole bodies alive). Never serialised, never copied by ``replace``.
    __slots__ = _FIELDS + ("memo",)

    def __init__(self, key: bytes, status: int, reason: bytes, headers, body: bytes,
                 request_time: float, response_time: float, stored_at: float,
                 tags: Iterable[bytes] = (), stale: bool = False) -> None:
        self.key = key
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.request_time = request_time
        self.response_time = response_time
        self.stored_at = stored_at
        self.tags = tuple(tags)
        self.stale = stale
        self.memo = None

    @property
    def size(self) -> int:
        """Approximate bytes of memory this entry takes (payload plus object overheads)."""
        header_bytes = sum([len(n) + len(v) for n, v in self.headers])
        return (_ENTRY_OVERHEAD + len(self.key) + len(self.reason) + len(self.body)
                + header_bytes + _FIELD_OVERHEAD * len(self.headers)
                + sum([len(t) + _FIELD_OVERHEAD for t in self.tags]))

    def replace(self, **changes) -> "CacheEntry":
        """A copy with the given attributes changed (e.g. ``replace(stale=True)``)."""
        fields = {name: getattr(self, name) for name in self._FIELDS}
        fields.update(changes)
        return CacheEntry(**fields)

    def meta_bytes(self) -> bytes:
        """The version-1 serialisation up to the body (which follows it, ``len(body)``
        bytes): what a store writes before copying a body kept in a file."""
        fixed = _ENTRY_FIXED.pack(
            MAGIC, KIND_ENTRY, VERSION, self.status, _FLAG_STALE if self.stale else 0,
            self.request_time, self.response_time, self.stored_at, len(self.body))
        flat = [part for pair in self.headers for part in pair]
        return b"".join([fixed, pack_blobs([self.key, self.reason]), pack_blobs(flat),
                         pack_blobs(self.tags)])

    def to_bytes(self) -> bytes:
        """The version-1 serialisation described in the module docstring (the body must be
        bytes here)."""
        return self.meta_bytes() + self.body

    @staticmethod
    def meta_length(prefix: bytes):
        """How long the serialisation up to the body is, read from its first bytes
        ``prefix``; None when ``prefix`` is too short to tell (read more); ValueError when it
        is not an entry's start."""
        if len(prefix) < _ENTRY_FIXED.size:
            return None
        _check_prefix(prefix, KIND_ENTRY)
        offset = _ENTRY_FIXED.size
        for _ in range(3):  # [key, reason], headers, tags
            if len(prefix) < offset + 4:
                return None
            (count,) = _COUNT.unpack_from(prefix, offset)
            if len(prefix) < offset + 4 + 4 * count:
                return None
            lengths = struct.unpack_from(">%dI" % count, prefix, offset + 4)
            offset += 4 + 4 * count + sum(lengths)
        return offset

    @classmethod
    def from_meta(cls, meta: bytes, body) -> "CacheEntry":
        """The entry serialised up to its body in ``meta`` (see ``meta_length``), with
        ``body`` (bytes, or a body kept in a file: anything with ``len``) as its body;
        ValueError unless ``meta`` is whole and announces ``len(body)`` bytes."""
        meta = _as_bytes(meta)
        try:
            fields, offset, body_length = cls._parse_meta(meta)
        except struct.error as e:
            raise ValueError("cache entry: truncated (%s)" % (e,))
        if offset != len(meta) or body_length != len(body):
            raise ValueError("cache entry: lengths disagree with the data")
        return cls(*fields[:4], body, *fields[4:])

    @classmethod
    def from_bytes(cls, data) -> "CacheEntry":
        """The entry serialised in ``data``; ValueError if it is not a whole, valid one."""
        data = _as_bytes(data)
        try:
            return cls._parse(data)
        except struct.error as e:
            raise ValueError("cache entry: truncated (%s)" % (e,))

    @classmethod
    def _parse(cls, data: bytes) -> "CacheEntry":
        fields, offset, body_length = cls._parse_meta(data)
        if offset + body_length != len(data):
            raise ValueError("cache entry: lengths disagree with the data")
        return cls(*fields[:4], data[offset:], *fields[4:])

    @classmethod
    def _parse_meta(cls, data: bytes):
        """(constructor arguments but the body, where the body starts, its length)."""
        _check_prefix(data, KIND_ENTRY)
        (_, _, _, status, flags, request_time, response_time, stored_at,
         body_length) = _ENTRY_FIXED.unpack_from(data, 0)
        (key, reason), offset = unpack_blobs(data, _ENTRY_FIXED.size)
        flat, offset = unpack_blobs(data, offset)
        tags, offset = unpack_blobs(data, offset)
        if len(flat) % 2:
            raise ValueError("cache entry: lengths disagree with the data")
        if not 100 <= status <= 999 or flags & ~_FLAG_STALE:
            raise ValueError("cache entry: bad status or flags")
        fields = (key, status, reason, list(zip(flat[0::2], flat[1::2])), request_time,
                  response_time, stored_at, tags, bool(flags & _FLAG_STALE))
        return fields, offset, body_length

    def __eq__(self, other):
        if not isinstance(other, CacheEntry):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._FIELDS)

    __hash__ = None

    def __repr__(self):
        return "<CacheEntry %r %d %d body bytes%s>" % (
            self.key, self.status, len(self.body), " stale" if self.stale else "")


class VariantIndex:
    """What the cache knows of the variants of one primary key: the request header names
    the response varies on (``vary``, lower-case, in Vary order) and the full keys of the
    variants stored (``keys``, most recently stored first)."""

    __slots__ = ("key", "vary", "keys")

    def __init__(self, key: bytes, vary: Iterable[bytes], keys: Iterable[bytes]) -> None:
        self.key = key
        self.vary = tuple(vary)
        self.keys = tuple(keys)

    @property
    def size(self) -> int:
        """Approximate bytes of memory this index takes."""
        return (_ENTRY_OVERHEAD + len(self.key)
                + sum([len(n) + _FIELD_OVERHEAD for n in self.vary])
                + sum([len(k) + _FIELD_OVERHEAD for k in self.keys]))

    def with_key(self, key: bytes, limit: int = 0) -> "VariantIndex":
        """A copy with ``key`` first among the variant keys (moved there if known),
        keeping at most ``limit`` keys when ``limit`` > 0."""
        keys = (key,) + tuple(k for k in self.keys if k != key)
        if limit > 0:
            keys = keys[:limit]
        return VariantIndex(self.key, self.vary, keys)

    def to_bytes(self) -> bytes:
        """The version-1 serialisation described in the module docstring."""
        return b"".join([_PREFIX.pack(MAGIC, KIND_VARIANTS, VERSION), pack_blobs([self.key]),
                         pack_blobs(self.vary), pack_blobs(self.keys)])

    @classmethod
    def from_bytes(cls, data) -> "VariantIndex":
        """The index serialised in ``data``; ValueError if it is not a whole, valid one."""
        data = _as_bytes(data)
        try:
            _check_prefix(data, KIND_VARIANTS)
            key, offset = unpack_blobs(data, _PREFIX.size)
            vary, offset = unpack_blobs(data, offset)
            keys, offset = unpack_blobs(data, offset)
        except struct.error as e:
            raise ValueError("variant index: truncated (%s)" % (e,))
        if len(key) != 1 or offset != len(data):
            raise ValueError("variant index: lengths disagree with the data")
        return cls(key[0], vary, keys)

    def __eq__(self, other):
        if not isinstance(other, VariantIndex):
            return NotImplemented
        return (self.key, self.vary, self.keys) == (other.key, other.vary, other.keys)

    __hash__ = None

    def __repr__(self):
        return "<VariantIndex %r vary=%r %d variants>" % (self.key, self.vary, len(self.keys))


def value_to_bytes(value) -> bytes:
    """``value`` (a CacheEntry or VariantIndex) serialised; TypeError for anything else."""
    if not isinstance(value, (CacheEntry, VariantIndex)):
        raise TypeError("cache stores hold CacheEntry or VariantIndex, not %r" % (value,))
    return value.to_bytes()


def value_from_bytes(data):
    """The CacheEntry or VariantIndex serialised in ``data``; ValueError if corrupt."""
    data = _as_bytes(data)
    kind = data[3:4]
    if data[:3] != MAGIC or kind not in (KIND_ENTRY, KIND_VARIANTS):
        raise ValueError("cache value: unknown format")
    if kind == KIND_ENTRY:
        return CacheEntry.from_bytes(data)
    return VariantIndex.from_bytes(data)


def marked_stale(value):
    """``value`` as a soft purge leaves it: an entry becomes a stale copy; a variant index,
    which is no response, is returned unchanged."""
    if isinstance(value, CacheEntry) and not value.stale:
        return value.replace(stale=True)
    return value
