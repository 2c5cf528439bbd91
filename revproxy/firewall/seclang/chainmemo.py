"""Chain records: a chain that did not match, replayed whole when its inputs come back.

Some chains start with a link that matches every request: CRS 920450 captures each header
name (``REQUEST_HEADERS_NAMES "@rx ^.*$"``) into ``TX:header_name_920450_<name>`` for its
second link to test against ``%{tx.restricted_headers_basic}``; 920440 does the same with
the file extension, 920420 with the content type; 920171 and 920180 start with
``REQUEST_METHOD``, 920340 with ``Content-Length``. Their first link never leaves the
phase's list, and each request pays every link: about a third of a plain GET's phase 1.

A chain qualifies (``eligible``, at load) when what it does is a function of what it reads:

- its first link is pure as purity.py means it (request or response sources, a shipped
  operator whose argument holds no macro);
- every later link reads only such sources, counts of request or response collections,
  and TX (or another writable collection) by key or by regex key, with a shipped pure
  operator whose argument reads at most writable-collection keys (``%{tx.name}``);
- every link but the last runs only ``setvar`` ``=``/``!`` from the capture variables and
  ``capture`` (replay.py's replayable effects), so its writes are absolute; no link is
  ``multiMatch``.

Its *inputs* are then the values of every link's targets and the macro keys as they are
before the chain runs (the later links read the TX keys the earlier ones write, but those
writes are functions of the inputs too). ``ChainMemo.run`` reads the inputs (the values
are the ones the links themselves read, kept by the transaction), and when a record holds
them, applies what the chain did instead of evaluating it: the TX keys it wrote (set,
moved to the end or removed, so the store's order is the evaluation's), ``MATCHED_VAR``,
``MATCHED_VAR_NAME``, ``MATCHED_VARS``, the rule being evaluated, the link that failed
(cleanskip's) and the work counted. A record also holds which of those TX keys existed
before the chain (the capture keys' stale groups are removed only where present, and the
order depends on it): it is used only when they exist now as they did then.

Only chains that did not match are recorded: a match runs the last link's actions (the
score), logs and may disrupt, and is always evaluated. A record is made on the second
sighting of its inputs (the first records the inputs alone), by evaluating the chain with
the TX store swapped for a copy that notes every key written or removed (``_Tracking``).
Not used in detect mode, nor for a chain a ``ctl:ruleRemoveTarget*`` of the transaction
may concern. Bounds: inputs over ``KEY_MAX`` bytes are never recorded, a chain holds at
most ``MEMO_MAX`` records and ``BYTES_MAX`` bytes (emptied when either is reached), so a
client sending new inputs costs one small entry per chain. Records belong to a loaded WAF.
"""

from __future__ import annotations

from typing import Dict

from . import emptyskip, purity, replay
from .evaluate import _CAPTURE_KEYS
from .macros import _LITERAL, _STORE, compile_macro
from .rules import CACHED, LIVE
from .scalars import WRITABLE
from .variables import _COLLECTION_NAMES

ENABLED = True  # tests load rule sets with and without it
KEY_MAX = 8192
MEMO_MAX = 256
BYTES_MAX = 512 * 1024
_MATCHES = object()  # the record of inputs whose chain matched: always evaluated
_ABSENT = object()


def _reads(link, first: bool, default_ops: bool) -> bool:
    """Whether ``link``'s targets and operator argument are inputs a record can hold."""
    if link.multi_match or link.always or not link.targets:
        return False
    if link.op_name.lower() not in purity.PURE_OPS:
        return False
    if first:
        return purity.pure_sources(link, default_ops) is not None
    for t in link.targets:
        if t.count:
            if t.name not in _COLLECTION_NAMES and t.name not in purity.PURE_SCALARS:
                return False
        elif t.name in WRITABLE:
            if t.key is None and t.regex is None:
                return False  # the whole store: not worth its inputs
        elif t.name == "XML" or \
                emptyskip.target_sources([t], purity.PURE_SCALARS) is None:
            return False
    steps = compile_macro(link.op_arg).steps
    return all(kind is _LITERAL or kind is _STORE for kind, _a, _b in steps)


def eligible(rule, default_ops: bool) -> bool:
    """Whether the chain starting at ``rule`` qualifies (module doc)."""
    if not ENABLED or rule.child is None or not default_ops:
        return False
    links = list(rule.chain_rules())
    for i, link in enumerate(links):
        if not _reads(link, i == 0, default_ops):
            return False
        if i < len(links) - 1 and not all(replay._replayable_effect(e)
                                           for e in link.effects):
            return False
    return True


def _identity(t):
    """``(tag, ev -> what the values of t are a function of)``: a collection's entries
    (its index's, for a key), kept by the transaction; a scalar's value. None: the
    values themselves then."""
    name = t.name
    if name == "REQUEST_HEADERS_NAMES":  # (the names as sent, without building entries)
        return ("header names",), lambda ev: ev.vars.header_names()
    if name == "REQUEST_HEADERS" and t.key is not None and t.regex is None:
        kb = t.key_bytes  # the headers the index files under it, as sent: no index built
        return ("header", kb), \
            lambda ev: tuple([h for h in ev.vars.view.headers if h[0].lower() == kb])
    if name in _COLLECTION_NAMES:
        if t.key is not None and t.regex is None:
            kb = t.key_bytes
            return ("index", name, kb), \
                lambda ev: tuple(ev.vars._indexed(name).get(kb, ()))
        return ("collection", name), lambda ev: tuple(ev.vars.collection(name))
    if name in purity.PURE_SCALARS:
        return ("scalar", name), lambda ev: ev.vars.scalar(name)
    return None


def _size(part) -> int:
    """The bytes an input holds (bytes and str lengths, nested tuples)."""
    if part is None:
        return 0
    if part.__class__ is tuple:
        return sum(map(_size, part))
    return len(part)


class _Tracking(dict):
    """The TX store while a chain is recorded: notes each key written or removed, and the
    order in which keys were (re)inserted."""

    __slots__ = ("written", "inserted")

    def __init__(self, items) -> None:
        super().__init__(items)
        self.written: Dict[str, None] = {}
        self.inserted: Dict[str, None] = {}  # keys added while absent, last last

    def __setitem__(self, key, value) -> None:
        if not dict.__contains__(self, key):
            self.inserted.pop(key, None)
            self.inserted[key] = None
        self.written[key] = None
        dict.__setitem__(self, key, value)

    def __delitem__(self, key) -> None:
        dict.__delitem__(self, key)
        self.inserted.pop(key, None)
        self.written[key] = None

    def pop(self, key, *default):
        self.inserted.pop(key, None)
        self.written[key] = None
        return dict.pop(self, key, *default)

    def update(self, other=(), **kw) -> None:
        for key, value in dict(other, **kw).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if not dict.__contains__(self, key):
            self[key] = default
        return dict.__getitem__(self, key)

    def _refused(self, *_a, **_kw):
        raise TypeError("not used on the TX store while a chain is recorded")

    clear = popitem = _refused


class ChainMemo:
    """The records of one chain: inputs -> None (seen once), ``_MATCHES``, or what the
    chain did (``_Record``)."""

    __slots__ = ("links", "reads", "macro_keys", "memo", "bytes")

    def __init__(self, rule) -> None:
        self.links = tuple(rule.chain_rules())
        keys = []
        for link in self.links[1:]:
            for kind, a, b in compile_macro(link.op_arg).steps:
                if kind is _STORE:
                    keys.append((a, b))
        self.macro_keys = tuple(keys)
        # per target: (identity function or None, target, cache key, read kind,
        # exclusions); an identity is read once per chain
        reads, tags = [], set()
        for link in self.links:
            for t, key, kind in link.plan:
                got = _identity(t) if kind is CACHED else None
                if got is not None:
                    if got[0] in tags:
                        continue
                    tags.add(got[0])
                reads.append((got[1] if got else None, t, key, kind, link.exclusions))
        self.reads = tuple(reads)
        self.memo: Dict[tuple, object] = {}
        self.bytes = 0

    def inputs(self, ev) -> tuple:
        """What the chain reads, as it is now."""
        v = ev.vars
        values, vcache, stores = v.values, v._vcache, ev.stores
        parts = []
        for ident, t, key, kind, excl in self.reads:
            if ident is not None:
                parts.append(ident(ev))
            elif kind is CACHED:
                vals = vcache.get(key)
                parts.append(tuple(vals if vals is not None else values(t, excl, key)))
            elif kind is LIVE:
                parts.append(tuple(values(t, excl, key)))
            else:  # TX:name read live
                parts.append(stores[kind[0]].get(kind[1]))
        for a, b in self.macro_keys:
            parts.append(stores[a].get(b))
        return tuple(parts)

    def run(self, ev, rule) -> bool:
        """``Evaluator._eval_chain(rule, detect=False)`` through the records."""
        rt = ev._rt_links
        if rt and any(link in rt for link in self.links):
            return _evaluate(ev, rule)
        key = self.inputs(ev)
        got = self.memo.get(key, _ABSENT)
        if got is _ABSENT:  # the first sighting: the inputs alone
            self._store(key, None, 0)
            return _evaluate(ev, rule)
        if got is None:  # the second: recorded now
            return self._record(ev, rule, key)
        if got is _MATCHES:
            return _evaluate(ev, rule)
        tx = ev.stores["tx"]
        if tuple(map(tx.__contains__, got.keys)) != got.present:
            return self._record(ev, rule, key)
        got.apply(ev, tx)
        return False

    def _record(self, ev, rule, key: tuple) -> bool:
        stores = ev.stores
        tx = stores["tx"]
        tracking = stores["tx"] = _Tracking(tx)
        work = ev.work
        record = None
        try:
            matched = _evaluate(ev, rule)
            if not matched:
                written = tracking.written
                if "0" in written:  # a capture writes all ten keys (stale ones removed)
                    for k in _CAPTURE_KEYS:
                        written[k] = None
                record = _Record(tracking, tx, ev, work)
        finally:
            stores["tx"] = tx
            tx.clear()
            tx.update(tracking)
        if record is None:
            self._store(key, _MATCHES, 0)
            return True
        self._store(key, record, record.size)
        return False

    def _store(self, key: tuple, record, size: int) -> None:
        """Keep ``record`` for ``key`` (``size``: what the record itself holds); inputs
        over KEY_MAX bytes are not kept."""
        memo = self.memo
        old = memo.get(key, _ABSENT)
        if old is _ABSENT or old is None:
            if old is _ABSENT:
                ksize = _size(key) + 64
                if ksize > KEY_MAX:
                    return
                size += ksize
            if len(memo) >= MEMO_MAX or self.bytes + size > BYTES_MAX:
                memo.clear()
                self.bytes = 0
                if old is None:  # its inputs are counted again
                    size += _size(key) + 64
            self.bytes += size
        elif old is not _MATCHES:
            self.bytes += size - old.size
        memo[key] = record


class _Record:
    """What a chain that did not match did (see the module doc): with the TX keys it
    wrote (``keys``) present before as ``present`` says, delete ``pops`` then set
    ``sets`` in order (the keys it kept in place, then those it (re)inserted, in the
    order of their last insertion), and set the match variables."""

    __slots__ = ("keys", "present", "pops", "sets", "state", "size")

    def __init__(self, tracking: _Tracking, before: dict, ev, work: int) -> None:
        keys = tuple(tracking.written)
        self.keys = keys
        self.present = tuple(k in before for k in keys)
        inserted = tracking.inserted
        self.pops = tuple(k for k in keys
                          if k in before and (k not in tracking or k in inserted))
        self.sets = tuple([(k, tracking[k]) for k in keys
                           if k in before and k in tracking and k not in inserted]
                          + [(k, tracking[k]) for k in inserted if k in tracking])
        v = ev.vars
        # MATCHED_VAR, MATCHED_VAR_NAME, MATCHED_VARS, RULE, the failed link, the work
        self.state = (v.matched_var, v.matched_var_name, tuple(v.matched), v.rule, ev.failed,
                      ev.work - work)
        self.size = sum(map(len, keys)) + sum(len(val) for _k, val in self.sets) + \
            len(v.matched_var) + 64

    def apply(self, ev, tx: dict) -> None:
        for k in self.pops:
            del tx[k]
        tx.update(self.sets)
        v = ev.vars
        v.matched_var, v.matched_var_name, matched, v.rule, ev.failed, work = self.state
        v.matched = list(matched)
        ev.work += work


def _evaluate(ev, rule) -> bool:
    """The chain evaluated link by link (``Evaluator._eval_chain``'s loop)."""
    return ev._eval_links(rule, False)
