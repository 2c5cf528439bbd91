"""CacheEntry and VariantIndex: their serialisation round-trips, and any corrupt or truncated
input raises ValueError (never another exception, never a wrong value silently)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.cache.entry import (
    CacheEntry, VariantIndex, marked_stale, value_from_bytes, value_to_bytes)
from revproxy.testing import sample_entry

times = st.floats(min_value=0.0, max_value=4e9, allow_nan=False)
short = st.binary(max_size=40)
entries = st.builds(
    CacheEntry,
    key=st.binary(max_size=200), status=st.integers(100, 999), reason=short,
    headers=st.lists(st.tuples(short, short), max_size=12), body=st.binary(max_size=3000),
    request_time=times, response_time=times, stored_at=times,
    tags=st.lists(short, max_size=5).map(tuple), stale=st.booleans(),
)
indexes = st.builds(VariantIndex, key=short, vary=st.lists(short, max_size=5),
                    keys=st.lists(st.binary(max_size=80), max_size=8))


class EntrySerialisationTests(unittest.TestCase):
    @settings(max_examples=200, deadline=None)
    @given(entries)
    def test_entry_round_trips(self, entry):
        """from_bytes(to_bytes(e)) == e for any entry, header pairs and order included."""
        back = CacheEntry.from_bytes(entry.to_bytes())
        self.assertEqual(back, entry)
        self.assertEqual(back.headers, entry.headers)

    @settings(max_examples=100, deadline=None)
    @given(indexes)
    def test_variant_index_round_trips(self, index):
        """VariantIndex.from_bytes(to_bytes(i)) == i."""
        self.assertEqual(VariantIndex.from_bytes(index.to_bytes()), index)

    @settings(max_examples=100, deadline=None)
    @given(st.one_of(entries, indexes))
    def test_value_codec_dispatches_on_kind(self, value):
        """value_from_bytes(value_to_bytes(v)) gives back v, an entry or an index."""
        back = value_from_bytes(value_to_bytes(value))
        self.assertIs(type(back), type(value))
        self.assertEqual(back, value)

    @settings(max_examples=100, deadline=None)
    @given(st.one_of(entries, indexes), st.data())
    def test_every_truncation_is_a_value_error(self, value, data):
        """Any strict prefix of a serialised value raises ValueError."""
        raw = value.to_bytes()
        cut = data.draw(st.integers(0, len(raw) - 1))
        self.assertRaises(ValueError, value_from_bytes, raw[:cut])
        self.assertRaises(ValueError, type(value).from_bytes, raw[:cut])

    @settings(max_examples=100, deadline=None)
    @given(st.one_of(entries, indexes), st.binary(min_size=1, max_size=5))
    def test_trailing_bytes_are_a_value_error(self, value, extra):
        """Bytes after a whole value make it corrupt."""
        self.assertRaises(ValueError, value_from_bytes, value.to_bytes() + extra)

    @settings(max_examples=200, deadline=None)
    @given(entries, st.data())
    def test_corrupted_bytes_raise_only_value_error(self, entry, data):
        """Overwriting bytes of a serialised entry gives a ValueError or some entry, never
        another exception."""
        raw = bytearray(entry.to_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        try:
            self.assertIsInstance(value_from_bytes(bytes(raw)), (CacheEntry, VariantIndex))
        except ValueError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from([b"", b"RPX", b"RPXE\x01", b"RPXV\x01", b"RPXE\x02"]),
           st.binary(max_size=120))
    def test_random_bytes_raise_only_value_error(self, prefix, tail):
        """Arbitrary bytes, even after a valid-looking prefix, raise ValueError or parse."""
        try:
            value_from_bytes(prefix + tail)
        except ValueError:
            pass

    def test_unknown_version_is_refused(self):
        """A value written by another format version is a ValueError (a miss, not a guess)."""
        raw = bytearray(sample_entry().to_bytes())
        raw[4] = 2
        self.assertRaises(ValueError, CacheEntry.from_bytes, bytes(raw))

    def test_kinds_are_not_confused(self):
        """Entry bytes are no VariantIndex and index bytes no CacheEntry."""
        index = VariantIndex(b"k", (b"accept",), (b"k1",))
        self.assertRaises(ValueError, VariantIndex.from_bytes, sample_entry().to_bytes())
        self.assertRaises(ValueError, CacheEntry.from_bytes, index.to_bytes())

    def test_huge_declared_counts_are_refused_cheaply(self):
        """A blob count near 2**32 is refused before any list of that size is built."""
        raw = sample_entry().to_bytes()
        fixed = struct.calcsize(">3scBHBdddQ")
        bad = raw[:fixed] + b"\xff\xff\xff\xff" + raw[fixed + 4:]
        self.assertRaises(ValueError, CacheEntry.from_bytes, bad)

    def test_bytearray_and_memoryview_accepted(self):
        """from_bytes takes bytearray and memoryview as well as bytes."""
        entry = sample_entry()
        raw = entry.to_bytes()
        self.assertEqual(CacheEntry.from_bytes(bytearray(raw)), entry)
        self.assertEqual(value_from_bytes(memoryview(raw)), entry)

    def test_non_bytes_input_is_a_value_error(self):
        """A str or None given to from_bytes is a ValueError, like any corrupt input."""
        self.assertRaises(ValueError, value_from_bytes, "RPXE")
        self.assertRaises(ValueError, CacheEntry.from_bytes, None)

    def test_value_to_bytes_refuses_other_objects(self):
        """Only entries and indexes are serialised: anything else is a TypeError."""
        self.assertRaises(TypeError, value_to_bytes, b"raw bytes")
        self.assertRaises(TypeError, value_to_bytes, {"status": 200})


class EntryObjectTests(unittest.TestCase):
    def test_size_grows_with_body_headers_and_key(self):
        """size counts at least body, header and key bytes, so bounds follow content."""
        small = sample_entry(body=b"")
        self.assertGreater(small.size, 0)
        self.assertEqual(sample_entry(body=b"x" * 1000).size, small.size + 1000)
        more = sample_entry(headers=[(b"a", b"b" * 500)], body=b"")
        self.assertGreaterEqual(more.size, 501)
        self.assertGreater(sample_entry(key=b"k" * 300, body=b"").size, small.size + 200)

    def test_replace_copies(self):
        """replace returns a changed copy and leaves the original alone."""
        entry = sample_entry()
        stale = entry.replace(stale=True)
        self.assertTrue(stale.stale)
        self.assertFalse(entry.stale)
        self.assertEqual(stale.replace(stale=False), entry)

    def test_marked_stale(self):
        """marked_stale turns an entry into a stale copy and leaves an index unchanged."""
        entry = sample_entry()
        self.assertTrue(marked_stale(entry).stale)
        self.assertFalse(entry.stale)
        index = VariantIndex(b"k", (b"accept",), ())
        self.assertIs(marked_stale(index), index)

    def test_variant_index_with_key(self):
        """with_key puts a key first, moves a known one, and trims to the limit."""
        index = VariantIndex(b"k", (b"accept",), (b"a", b"b", b"c"))
        self.assertEqual(index.with_key(b"d").keys, (b"d", b"a", b"b", b"c"))
        self.assertEqual(index.with_key(b"b").keys, (b"b", b"a", b"c"))
        self.assertEqual(index.with_key(b"d", limit=2).keys, (b"d", b"a"))
        self.assertEqual(index.keys, (b"a", b"b", b"c"))

    def test_equality(self):
        """Entries are equal field by field and never equal to other types."""
        self.assertEqual(sample_entry(), sample_entry())
        self.assertNotEqual(sample_entry(), sample_entry(body=b"other"))
        self.assertNotEqual(sample_entry(), sample_entry().replace(stale=True))
        self.assertNotEqual(sample_entry(), "entry")
