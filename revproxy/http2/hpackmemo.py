"""HPACK with a memo of the header blocks that left the compression state alone.

A client sends nearly the same request headers on every stream, and after the first
request of a connection each of them is in the dynamic table: the request's header block
is the same handful of index bytes, and decoding it changes nothing. The same holds for our
responses (the date changes once a second). Decoding or encoding such a block again, with
the table unchanged, gives the same result, so it is remembered: ``MemoDecoder`` maps a
block to its header list, ``MemoEncoder`` a header list to its block, each valid only while
its table has not changed since (``CountingTable.changes`` counts every change: an entry
added, the size set). A block that changed the table is not remembered and clears the memo.

Measured with h2load (CPython, one connection per stream set): the hpack library's Python
calls per request drop from about 100 to a handful. h2 takes the two objects as they are
(``H2Connection.encoder`` / ``.decoder``); everything else (limits, errors, the table
size updates) is hpack's own.
"""

from __future__ import annotations

from hpack import Decoder, Encoder
from hpack.table import HeaderTable

# Bounds on what one connection can make the memo hold (a client chooses the blocks): at
# most MEMO_ENTRIES blocks of MEMO_BLOCK bytes decoding to MEMO_FIELDS fields each, some
# 40 KiB per connection at worst; a request's headers are a dozen or two fields.
MEMO_ENTRIES = 16  # blocks remembered per direction and connection
MEMO_BLOCK = 1024  # longer blocks are not remembered (bytes)
MEMO_FIELDS = 32  # nor blocks of more header fields than this
_PLAIN, _PAIRS = {tuple}, {2}


class CountingTable(HeaderTable):
    """hpack's header table, counting its changes."""

    def __init__(self) -> None:
        HeaderTable.__init__(self)
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        HeaderTable.add(self, name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)


class MemoDecoder(Decoder):
    """hpack's ``Decoder``, remembering the blocks whose decoding changed no state."""

    def __init__(self, *args, **kwargs) -> None:
        Decoder.__init__(self, *args, **kwargs)
        table = CountingTable()
        table.maxsize = self.header_table.maxsize
        self.header_table = table
        self._memo = {}
        self._memo_state = None

    def _state(self):
        return (self.header_table.changes, self.max_header_list_size,
                self.max_allowed_table_size)

    def decode(self, data, raw=False):
        state = self._state()
        if state != self._memo_state:
            self._memo.clear()
            self._memo_state = state
        key = (data, raw) if type(data) is bytes else None
        if key is not None:
            found = self._memo.get(key)
            if found is not None:
                return list(found)
        headers = Decoder.decode(self, data, raw)
        if (key is not None and len(data) <= MEMO_BLOCK and len(headers) <= MEMO_FIELDS
                and self._state() == state and len(self._memo) < MEMO_ENTRIES):
            self._memo[key] = tuple(headers)
        return headers


class MemoEncoder(Encoder):
    """hpack's ``Encoder``, remembering the header lists whose encoding changed no state.
    Only lists of plain ``(name, value)`` byte pairs are remembered (never a
    ``NeverIndexedHeaderTuple`` or a three-tuple naming a sensitive field)."""

    def __init__(self) -> None:
        Encoder.__init__(self)
        table = CountingTable()
        table.maxsize = self.header_table.maxsize
        table.resized = False
        self.header_table = table
        self._memo = {}
        self._memo_state = None

    def encode(self, headers, huffman=True):
        table = self.header_table
        key = None
        if (type(headers) is list and len(headers) <= MEMO_FIELDS and not table.resized
                and set(map(type, headers)) == _PLAIN and set(map(len, headers)) == _PAIRS):
            key = (tuple(headers), huffman)
            state = table.changes
            if state != self._memo_state:
                self._memo.clear()
                self._memo_state = state
            try:
                found = self._memo.get(key)
            except TypeError:  # an unhashable field: not remembered
                key = None
                found = None
            if found is not None:
                return found
        block = Encoder.encode(self, headers, huffman)
        if key is not None and table.changes == state and len(self._memo) < MEMO_ENTRIES:
            self._memo[key] = block
        return block


def install(connection) -> None:
    """Give the h2 ``connection`` (new, nothing sent or received yet) the memo coders, with
    the limits h2 gave its own."""
    old = connection.decoder
    decoder = MemoDecoder(old.max_header_list_size)
    decoder.max_allowed_table_size = old.max_allowed_table_size
    connection.decoder = decoder
    connection.encoder = MemoEncoder()
