"""The HPACK memo coders give exactly what hpack's own give, block by block, and leave the
same compression state, whatever the sequence of header lists, repeats, sensitive fields and
table size changes."""

from __future__ import annotations

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hpack.exceptions import HPACKError
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.http2 import hpackmemo

names = st.sampled_from([b":status", b"content-type", b"x-a", b"x-b"])
values = st.sampled_from([b"200", b"text/html", b"v" * 40, b"w" * 90, b""])
field = st.tuples(names, values)
header_list = st.lists(st.one_of(field, field, field,
                                 field.map(lambda f: NeverIndexedHeaderTuple(*f)),
                                 field.map(lambda f: f + (True,))), max_size=4)
# a header list, sent again later most of the time; now and then a table size change
steps = st.lists(st.one_of(
    st.tuples(st.just("headers"), header_list),
    st.tuples(st.just("again"), st.integers(0, 20)),
    st.tuples(st.just("again"), st.just(-1)),
    st.tuples(st.just("size"), st.sampled_from([0, 64, 256, 4096])),
), min_size=1, max_size=40)


def table_state(coder):
    table = coder.header_table
    return (list(table.dynamic_entries), table.maxsize, table._current_size)


class MemoCoderTests(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(steps)
    def test_same_blocks_and_state_as_hpack(self, plan):
        """Both encoders give the same block for every list; decoding each block with both
        decoders gives the same headers (or the same error); all tables stay equal."""
        plain_enc, memo_enc = Encoder(), hpackmemo.MemoEncoder()
        plain_dec, memo_dec = Decoder(), hpackmemo.MemoDecoder()
        sent = []
        for kind, arg in plan:
            if kind == "size":
                plain_enc.header_table_size = memo_enc.header_table_size = arg
                plain_dec.header_table_size = memo_dec.header_table_size = arg
                plain_dec.max_allowed_table_size = memo_dec.max_allowed_table_size = arg
                continue
            if kind == "again":
                if not sent:
                    continue
                headers = sent[arg % len(sent)]
            else:
                headers = arg
                sent.append(headers)
            block = plain_enc.encode(list(headers))
            self.assertEqual(memo_enc.encode(list(headers)), block)
            self.assertEqual(table_state(memo_enc), table_state(plain_enc))
            try:
                expected = plain_dec.decode(block, raw=True)
            except HPACKError as e:
                self.assertRaises(type(e), memo_dec.decode, block, True)
            else:
                got = memo_dec.decode(block, raw=True)
                self.assertEqual(got, expected)
                self.assertEqual([type(h) for h in got], [type(h) for h in expected])
            self.assertEqual(table_state(memo_dec), table_state(plain_dec))

    def test_repeated_block_is_served_from_the_memo(self):
        """A block that left the table alone is decoded once; an equal block after a change
        of the table is decoded again."""
        decoder = hpackmemo.MemoDecoder()
        calls = []
        real = hpackmemo.Decoder.decode
        self.patch(hpackmemo.Decoder, "decode",
                   lambda self, data, raw=False: calls.append(data) or real(self, data, raw))
        indexed = b"\x82\x84"  # :method GET, :path / (static table)
        self.assertEqual(decoder.decode(indexed, True), [(b":method", b"GET"), (b":path", b"/")])
        self.assertEqual(decoder.decode(indexed, True), [(b":method", b"GET"), (b":path", b"/")])
        self.assertEqual(len(calls), 1)
        decoder.decode(Encoder().encode([(b"x-new", b"1")]), True)  # adds to the table
        decoder.decode(indexed, True)
        self.assertEqual(len(calls), 3)

    def test_oversized_list_still_refused_after_a_memo_hit(self):
        """Lowering max_header_list_size invalidates the memo: the same block is refused."""
        decoder = hpackmemo.MemoDecoder()
        block = Encoder().encode([(b"x-a", b"v" * 100)])
        decoder.decode(block, True)
        decoder.decode(block, True)
        decoder.max_header_list_size = 50
        self.assertRaises(HPACKError, decoder.decode, block, True)

    def test_installed_on_h2_with_its_limits(self):
        """install() swaps h2's coders for the memo ones and keeps the limits h2 set."""
        from h2.config import H2Configuration
        from h2.connection import H2Connection

        connection = H2Connection(H2Configuration(client_side=False))
        limit = connection.decoder.max_header_list_size
        hpackmemo.install(connection)
        self.assertIsInstance(connection.decoder, hpackmemo.MemoDecoder)
        self.assertIsInstance(connection.encoder, hpackmemo.MemoEncoder)
        self.assertEqual(connection.decoder.max_header_list_size, limit)

    def test_memo_bounded_whatever_the_client_sends(self):
        """A client cannot make one connection's memo hold more than MEMO_ENTRIES blocks,
        nor a block of more than MEMO_FIELDS fields (cheap indexed fields that decode to a
        long list are decoded every time)."""
        decoder = hpackmemo.MemoDecoder()
        for n in range(1, 3 * hpackmemo.MEMO_ENTRIES):
            decoder.decode(b"\x82" * n, True)  # n times ":method GET", from the static table
        self.assertLessEqual(len(decoder._memo), hpackmemo.MEMO_ENTRIES)
        self.assertTrue(all(len(found) <= hpackmemo.MEMO_FIELDS
                            for found in decoder._memo.values()))
        fresh = hpackmemo.MemoDecoder()
        longest = b"\x82" * hpackmemo.MEMO_FIELDS
        fresh.decode(longest + b"\x82", True)
        fresh.decode(longest, True)
        self.assertEqual(list(fresh._memo), [(longest, True)])
