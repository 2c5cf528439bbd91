"""Streaming encoders for the content codings the proxy can produce, and which are available.

Every encoder has ``compress(data) -> bytes`` (may return b"": the library buffers),
``flush() -> bytes`` (what is buffered, as a complete block the client can decode now) and
``finish() -> bytes`` (the end of the stream). Each holds only its library's window (32 KiB
for gzip, a few MiB at most for brotli and zstd at the levels used), never the body.

gzip always works (the standard ``zlib``); ``isal`` (python-isal's ``isal_zlib``) is used for
gzip when importable (several times faster at similar ratio; its levels are 0-3, so zlib's
1-9 map to 1, 2, 3 in thirds). brotli needs ``brotli`` (CPython) or ``brotlicffi`` (PyPy);
zstd needs ``zstandard``. The missing ones are simply not offered (``available()``).
"""

from __future__ import annotations

import zlib
from typing import Callable, Dict, Tuple

try:
    from isal import isal_zlib as _isal
except ImportError:  # optional: python-isal is CPython-only here
    _isal = None

try:
    import brotli as _brotli
except ImportError:
    try:
        import brotlicffi as _brotli  # type: ignore[no-redef]  # the PyPy flavour, same API
    except ImportError:
        _brotli = None

try:
    import zstandard as _zstd
except ImportError:
    _zstd = None

KNOWN = ("zstd", "br", "gzip")  # every coding the config may name
DEFAULT_LEVELS = {"gzip": 5, "br": 4, "zstd": 3}
LEVEL_RANGES = {"gzip": (1, 9), "br": (0, 11), "zstd": (1, 19)}


class GzipEncoder:
    """gzip (RFC 1952) through zlib, or isal when ``fast`` and importable."""

    __slots__ = ("_obj", "_sync", "_lib")

    def __init__(self, level: int, fast: bool = True):
        lib = _isal if (fast and _isal is not None) else zlib
        self._lib = lib
        if lib is zlib:
            self._obj = zlib.compressobj(level, zlib.DEFLATED, 31, 8)
        else:
            self._obj = lib.compressobj(isal_level(level), lib.DEFLATED, 31)
        self._sync = lib.Z_SYNC_FLUSH

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush(self._sync)

    def finish(self) -> bytes:
        return self._obj.flush()


def isal_level(level: int) -> int:
    """zlib's 1-9 as isal's 1-3 (isal's 0 is a store-like mode, never chosen)."""
    return min(3, max(1, (level + 2) // 3))


class BrotliEncoder:
    """brotli (RFC 7932), text mode."""

    __slots__ = ("_obj",)

    def __init__(self, level: int):
        self._obj = _brotli.Compressor(quality=level, mode=_brotli.MODE_TEXT)

    def compress(self, data: bytes) -> bytes:
        return self._obj.process(data)

    def flush(self) -> bytes:
        return self._obj.flush()

    def finish(self) -> bytes:
        return self._obj.finish()


class ZstdEncoder:
    """zstd (RFC 8878) frames; a flush ends a block, so the receiver can decode it at once."""

    __slots__ = ("_obj",)

    def __init__(self, level: int):
        self._obj = _zstd.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush(_zstd.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._obj.flush()


def available() -> Dict[str, Callable[[int], object]]:
    """coding name -> encoder factory (taking a level) for what this interpreter can produce."""
    found: Dict[str, Callable[[int], object]] = {"gzip": GzipEncoder}
    if _brotli is not None:
        found["br"] = BrotliEncoder
    if _zstd is not None:
        found["zstd"] = ZstdEncoder
    return found


def describe() -> str:
    """One line for the start-up log: what is available and what is missing."""
    parts = ["gzip (%s)" % ("isal" if _isal is not None else "zlib")]
    parts.append("br (%s)" % _brotli.__name__ if _brotli is not None
                 else "br unavailable (install brotli, or brotlicffi on PyPy)")
    parts.append("zstd" if _zstd is not None else "zstd unavailable (install zstandard)")
    return ", ".join(parts)


def usable(configured: Tuple[str, ...]) -> Tuple[str, ...]:
    """The configured codings this interpreter can produce, in the configured order."""
    have = available()
    return tuple(name for name in configured if name in have)
