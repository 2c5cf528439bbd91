"""Atoms: the pieces of a request each source's values come from, recorded whole.

cleanskip.py records values per *source* (a collection, one key of it, a scalar) and, at
each phase start, builds every source's values and looks each one up: 20 sources and
their values per phase for a plain GET, most of them derived from the same few inputs. An
*atom* is one such input, and every value of the sources it feeds is a function of it:

- a request header ``(name, value)``: ``REQUEST_HEADERS``, ``REQUEST_HEADERS:name``,
  ``REQUEST_HEADERS_NAMES`` (a response header likewise for ``RESPONSE_HEADERS*``);
- the request line ``(method, target, protocol)``: the request-line scalars
  (``REQUEST_LINE``, ``REQUEST_FILENAME``, ``QUERY_STRING`` ...) and the query's
  arguments (``ARGS_GET*``, and ``ARGS``, ``ARGS_NAMES`` with the body's);
- the Cookie header values together: ``REQUEST_COOKIES*``;
- the parsed body (its processor, Content-Type and bytes): ``ARGS_POST*``, ``FILES*``,
  ``MULTIPART_PART_HEADERS`` and the body's part of ``ARGS``, ``ARGS_NAMES``;
- the scalars of the body's intake (``REQUEST_BODY``, ``REQBODY_ERROR`` ... ``BODY_SCALARS``),
  which are functions of the body atom: that atom feeds them, and a phase reading them
  always has one (``("B", ...)`` with no bytes for a request without a body), so it never
  parses the body to look them up (``Variables.body`` parses when first read); likewise
  the counts of the body's own collections (``&MULTIPART_PART_HEADERS`` ...);
- any other scalar ``(name, value)`` (``REMOTE_ADDR`` ...);
- a count source's count ``("#", collection, key, n)`` (purity.py: a count is a function
  of the whole collection, not of one piece of it); the counts of request headers
  (``&REQUEST_HEADERS:Host`` ...) are functions of the header names, which make one atom
  ``("#H", name, name ...)`` feeding all of them (six counts of a phase-1 list at the cost
  of one tuple).

Each source of a phase's Plan is fed only by atoms of one or two of those kinds, and its
values are the union of what its atoms give (``XML`` is never recorded: its readers run
whenever a document was parsed). A phase records per atom ``(feeds, clean)``: the mask of
the sources it gave values to, and the pure readers (cleanskip's ``cbit``) known clean for
them, with every reader of no fed source set as well. When every atom of a request is
recorded, the sources no atom feeds are the empty ones and a pure reader cannot match when
its bit is set in every atom's ``clean``: the phase's list follows from a handful of
lookups, without building a source's values (``Atoms.start``). Otherwise the phase takes
cleanskip's per-source path and, after it, records the request's atoms
(``Atoms.learn``):
a reader was clean for an atom when it was cleared during the phase or left out as clean,
since it then matched none of its values, those the atom gave included.

Only used with the shipped parsers of queries, cookies and bodies (the atoms' values must
be functions of them), and for Plans all of whose sources are of the kinds above (or the
collections that are always empty). Bounds as cleanskip's: an atom longer than its
``VALUE_MAX`` is never recorded, a dict of records holds at most ``MEMO_MAX`` atoms, and
atoms count towards the phase's ``PLAN_MAX`` and ``PLAN_BYTES``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .atomkinds import (
    ALWAYS_EMPTY, BODY, BODY_SCALARS, COOKIE, HDR, KINDS, LINE, LINE_SCALARS, RHDR, Feeds,
)
from .emptyskip import _COUNT, _KEYED, _SCALAR, _WHOLE, _XML

ENABLED = True  # tests load rule sets with and without it
HEADS_MAX = 256  # header lists whose atoms' result a Plan keeps
HEADS_BYTES = 8192  # the longest header list (names and values) kept

# the body atom's flags: no bytes taken, REQUEST_BODY populated, truncated
_FLAGS = tuple(b"%d%d%d" % (n >> 2, n >> 1 & 1, n & 1) for n in range(8))


class Atoms:
    """The atom kinds one Plan reads and how they feed its sources (built at load)."""

    def __init__(self, sources: tuple, readers: List[int], all_bits: int) -> None:
        self.readers = readers
        self.all_bits = all_bits
        self.covered = (1 << len(sources)) - 1
        self.line_bits = 0
        self.scalars: List[Tuple[str, int]] = []  # other scalars: (name, bit)
        self.counts: List[Tuple[str, Optional[bytes], int]] = []  # (name, key, bit)
        self.hcounts = 0  # the bits of the request-header counts (the "#H" atom)
        self.body_scalars: List[Tuple[str, int]] = []  # BODY_SCALARS read: (name, bit)
        self.body_counts = 0  # the bits of counts of the body's own collections (ARGS_POST ...)
        self.xml = 0  # the XML source's bit, if read
        # per collection: which group of feeds it belongs to
        self.groups: Dict[tuple, Feeds] = {}
        for j, (kind, name, key) in enumerate(sources):
            bit = 1 << j
            if kind == _COUNT:
                if name == "REQUEST_HEADERS":
                    self.hcounts |= bit
                elif KINDS.get(name) == (BODY,):
                    self.body_counts |= bit
                else:
                    self.counts.append((name, key, bit))
            elif kind == _SCALAR:
                if name in LINE_SCALARS:
                    self.line_bits |= bit
                elif name in BODY_SCALARS:
                    self.body_scalars.append((name, bit))
                else:
                    self.scalars.append((name, bit))
            elif kind == _XML:
                self.xml |= bit
            elif name in ALWAYS_EMPTY:
                continue
            else:
                group = self._group(name)
                if kind == _WHOLE:
                    group.whole |= bit
                else:
                    group.keyed[key] = group.keyed.get(key, 0) | bit
        kinds = {k[0] for k in self.groups}
        self.hdr, self.rhdr, self.cookie = HDR in kinds, RHDR in kinds, COOKIE in kinds
        # ARGS and ARGS_NAMES (kind LINE) take the body's arguments too
        self.body = BODY in kinds or (LINE, "ARGS") in self.groups or \
            bool(self.body_scalars) or bool(self.body_counts)
        self.line = bool(self.line_bits) or LINE in kinds
        self._hfeeds: Dict[bytes, int] = {}  # header name -> feeds (HDR)
        self._rfeeds: Dict[bytes, int] = {}  # likewise (RHDR)
        self._rmask: Dict[int, int] = {}  # feeds -> the readers of those sources

    def _group(self, name: str) -> Feeds:
        """The feeds object of the (atom kind, part) ``name`` belongs to: ``ARGS`` has
        its own (fed by both the query and the body), ``ARGS_GET`` and ``ARGS_POST``
        theirs, and so on."""
        kinds = KINDS[name]
        base = name[:-6] if name.endswith("_NAMES") else name
        key = (kinds[0], base)
        got = self.groups.get(key)
        if got is None:
            got = self.groups[key] = Feeds()
        return got

    # -- feeds of one atom (on a miss) -----------------------------------------------------
    def _of(self, kind: int, base: str, keys) -> int:
        group = self.groups.get((kind, base))
        if group is None:
            return 0
        m = 0
        for k in keys:
            m |= group.of(k)
        return m

    def header_feeds(self, name: bytes, response: bool = False) -> int:
        memo = self._rfeeds if response else self._hfeeds
        got = memo.get(name)
        if got is None:
            base = "RESPONSE_HEADERS" if response else "REQUEST_HEADERS"
            got = self._of(RHDR if response else HDR, base, (name,))
            if len(memo) < 1024:
                memo[name] = got
        return got

    def line_feeds(self, v) -> int:
        keys = [k for k, _ in v.query_args()]
        return self.line_bits | self._of(LINE, "ARGS_GET", keys) | self._of(LINE, "ARGS", keys)

    def body_feeds(self, v) -> int:
        bits = self.body_counts
        for name, bit in self.body_scalars:
            if v.scalar(name) is not None:
                bits |= bit
        if not v.has_body:
            return bits
        body = v.body
        keys = [k for k, _ in body.args]
        names = [f.name for f in body.files]
        return bits | (self._of(BODY, "ARGS_POST", keys) | self._of(LINE, "ARGS", keys)
                | self._of(BODY, "FILES", names) | self._of(BODY, "FILES_SIZES", names)
                | self._of(BODY, "MULTIPART_PART_HEADERS", [k for k, _ in body.part_headers]))

    def cookie_feeds(self, v) -> int:
        return self._of(COOKIE, "REQUEST_COOKIES",
                        [k for k, _ in v._pairs("REQUEST_COOKIES")])

    def reader_mask(self, feeds: int) -> int:
        got = self._rmask.get(feeds)
        if got is None:
            got, j, m = 0, 0, feeds
            while m:
                if m & 1:
                    got |= self.readers[j]
                m >>= 1
                j += 1
            if len(self._rmask) < 4096:
                self._rmask[feeds] = got
        return got

    # -- the transaction's atoms ---------------------------------------------------------
    def keys(self, v) -> List[Tuple[int, object]]:
        """The atoms of the transaction whose ``Variables`` is ``v``: (record dict index,
        key) each; dict 0 holds request headers, 1 response headers, 2 the others."""
        out: List[Tuple[int, object]] = []
        cookies = []
        ctype = b""
        for h in v.view.headers:
            if self.hdr:
                out.append((0, h))
            if h[0] == b"cookie":
                cookies.append(h[1])
            elif h[0] == b"content-type" and not ctype:
                ctype = h[1]
        if self.rhdr:
            out.extend((1, h) for h in v.response_headers)
        out.extend((2, key) for key in self._others(v, cookies, ctype))
        return out

    def _others(self, v, cookies: list, ctype: bytes) -> list:
        """The atoms other than headers (record dict 2): the request line first (the atom
        most often new), the Cookie values, the body, scalars, counts."""
        return self._rest(v, ctype) + self._of_headers(v, cookies)

    def _of_headers(self, v, cookies: list) -> list:
        """The atoms of record dict 2 that are functions of the request headers alone:
        the header names (counts) and the Cookie values."""
        out = []
        if self.hcounts:
            out.append(("#H",) + v.header_names())
        if self.cookie and cookies:
            out.append(("C",) + tuple(cookies))
        return out

    def _rest(self, v, ctype: bytes) -> list:
        """The other atoms of record dict 2: the request line, the body, scalars, counts."""
        view = v.view
        out = [(view.method, view.uri_raw, view.protocol)] if self.line else []
        if self.body and (self.body_scalars or self.body_counts or v.has_body):
            raw = v.body_raw
            out.append(("B", v.body_parser or "", ctype, raw or b"",
                        _FLAGS[(raw is None) << 2 | v.body_variable << 1 | v.body_truncated]))
        for name, _bit in self.scalars:
            value = v.scalar(name)
            if value is not None:
                out.append((name, value))
        for name, key, _bit in self.counts:
            out.append(_count_key(v, name, key))
        return out

    def feeds(self, v, which: int, key) -> int:
        """What the atom ``key`` (of record dict ``which``) feeds on ``v``."""
        if which == 0:
            return self.header_feeds(key[0].lower())
        if which == 1:
            return self.header_feeds(key[0].lower(), response=True)
        tag = key[0]
        if tag == "C":
            return self.cookie_feeds(v)
        if tag == "B":
            return self.body_feeds(v)
        if tag == "#H":
            return self.hcounts
        if tag == "#":
            for name, ckey, bit in self.counts:
                if name == key[1] and (ckey or b"") == key[2]:
                    return bit
            return 0
        if isinstance(tag, str):
            for name, bit in self.scalars:
                if name == tag:
                    return bit
            return 0
        return self.line_feeds(v)

    def credit(self, recs: tuple, v, add: int) -> None:
        """Add the readers ``add`` to the clean ones of each atom of the transaction whose
        ``v`` took its list from the records ``recs`` (``start``: they are all there)."""
        for which, key in self.keys(v):
            record = recs[which]
            got = record.get(key)
            if got and add & ~got[1]:
                record[key] = (got[0], got[1] | add)

    def learn(self, plan, recs: tuple, v, known: int, bounds: tuple) -> None:
        """Record the transaction's atoms in ``recs`` (the three record dicts of ``plan``,
        a cleanskip.Plan, whose ``entries``/``bytes``/``forget`` bound them all) with the
        readers ``known`` clean; ``bounds``: cleanskip's (VALUE_MAX, MEMO_MAX, PLAN_MAX,
        PLAN_BYTES). An atom seen for the first time is stored with its key alone (most
        atoms of a request with new values never come back)."""
        value_max, memo_max, plan_max, plan_bytes = bounds
        outside = self.all_bits
        for which, key in self.keys(v):
            record = recs[which]
            old = record.get(key, False)
            if old:
                if known & ~old[1]:
                    record[key] = (old[0], old[1] | known)
            elif old is None:  # seen once before: recorded now
                feeds = self.feeds(v, which, key)
                record[key] = (feeds, known | outside & ~self.reader_mask(feeds))
            else:
                size = sum(map(len, key))
                if size > value_max:
                    continue
                if plan.entries >= plan_max or plan.bytes + size > plan_bytes:
                    plan.forget()
                if len(record) >= memo_max:
                    plan.entries -= len(record)
                    plan.bytes -= sum(sum(map(len, k)) for k in record)
                    record.clear()
                record[key] = None
                plan.entries += 1
                plan.bytes += size

    def start(self, v, recs: tuple, heads: dict, version: int, sig: tuple = ()
              ) -> Optional[Tuple[int, int, tuple]]:
        """(empty sources, droppable readers, ``recs``) when every atom of the
        transaction is recorded in ``recs`` (the three record dicts), else None. The
        atoms of ``keys``: the headers looked up as they are read, then ``_others`` (one
        loop over ``keys``' (dict, key) pairs measured 8% more instructions per repeated
        GET: a tuple and an index per header).

        ``heads`` (the Plan's): the request's header list -> ``(version, sig, present,
        drop, Content-Type)``, what the atoms of the headers alone (each header, the
        names, the Cookie values) gave under the removals' signature ``sig`` (``recs``')
        while the records were at ``version`` (``Plan.atoms_version``, bumped by every
        change to them): one lookup instead of a Python loop over the headers (a repeated
        request's phases 1 and 2 spent a quarter of their instructions in it)."""
        view = v.view
        hrec, rrec, orec = recs
        headers = view.headers
        hkey = headers if headers.__class__ is tuple else tuple(headers)
        got = heads.get(hkey)
        if got is not None and got[0] == version and got[1] == sig:
            _version, _sig, present, drop, ctype = got
        else:
            present = 0
            drop = self.all_bits
            cookies = []
            ctype = b""
            size = 0
            for h in headers:
                if self.hdr:
                    got = hrec.get(h)
                    if got is None:
                        return None
                    present |= got[0]
                    drop &= got[1]
                name = h[0]
                size += len(name) + len(h[1])
                if name == b"cookie":
                    cookies.append(h[1])
                elif name == b"content-type" and not ctype:
                    ctype = h[1]
            for key in self._of_headers(v, cookies):
                got = orec.get(key)
                if got is None:
                    return None
                present |= got[0]
                drop &= got[1]
            if size <= HEADS_BYTES:
                if len(heads) >= HEADS_MAX:
                    heads.clear()
                heads[hkey] = (version, sig, present, drop, ctype)
        for h in v.response_headers if self.rhdr else ():
            got = rrec.get(h)
            if got is None:
                return None
            present |= got[0]
            drop &= got[1]
        for key in self._rest(v, ctype):
            got = orec.get(key)
            if got is None:
                return None
            present |= got[0]
            drop &= got[1]
        if self.xml and v.body_parser == "XML" and v.body.xml is not None:
            present |= self.xml
            drop &= ~self.reader_mask(self.xml)
        return self.covered & ~present, drop, recs


def _count_key(v, name: str, key: Optional[bytes]) -> tuple:
    """The atom of a count source: ("#", collection, key, the count)."""
    if key is None:
        n = len(v.collection(name))
    else:
        got = v._index.get(name)
        n = len((got if got is not None else v._indexed(name)).get(key, ()))
    return "#", name, key or b"", b"%d" % n


def build(plan) -> Optional[Atoms]:
    """The Atoms of a cleanskip Plan, or None when one of its sources is of another kind."""
    if not ENABLED:
        return None
    for kind, name, _key in plan.sources:
        if kind in (_KEYED, _WHOLE) and name not in KINDS and name not in ALWAYS_EMPTY:
            return None
    return Atoms(plan.sources, plan.readers, plan.all_bits)
