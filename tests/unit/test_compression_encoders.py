"""Each available encoder round-trips in pieces; gzip always exists (zlib fallback)."""

from __future__ import annotations

import gzip

import pytest

from revproxy.compression import encoders

BODY = b"".join(b"<li>item %d</li>\n" % i for i in range(20000))


def decode(coding, data):
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return encoders._brotli.decompress(data)
    return encoders._zstd.ZstdDecompressor().decompressobj().decompress(data)


@pytest.mark.parametrize("coding", sorted(encoders.available()))
def test_round_trip_in_pieces(coding):
    """Fed in 16 KiB pieces with flushes in between, the output decodes byte for byte and is
    smaller than the input."""
    encoder = encoders.available()[coding](encoders.DEFAULT_LEVELS[coding])
    out = []
    for start in range(0, len(BODY), 16384):
        out.append(encoder.compress(BODY[start:start + 16384]))
        if start % 65536 == 0:
            out.append(encoder.flush())
    out.append(encoder.finish())
    data = b"".join(out)
    assert decode(coding, data) == BODY
    assert len(data) < len(BODY) // 4


def test_gzip_without_isal_uses_zlib():
    """fast=False (and any interpreter without isal) gives a plain zlib gzip stream."""
    encoder = encoders.GzipEncoder(5, fast=False)
    assert encoder._lib.__name__ == "zlib"
    data = encoder.compress(BODY) + encoder.finish()
    assert gzip.decompress(data) == BODY


def test_isal_levels_map_in_thirds():
    assert [encoders.isal_level(n) for n in range(1, 10)] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_describe_names_every_coding():
    text = encoders.describe()
    assert "gzip" in text and "br" in text and "zstd" in text


def test_usable_keeps_config_order_and_drops_missing():
    have = encoders.available()
    assert encoders.usable(("zstd", "br", "gzip")) == tuple(
        c for c in ("zstd", "br", "gzip") if c in have)
    assert encoders.usable(("gzip",)) == ("gzip",)
