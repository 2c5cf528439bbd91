"""Per-value records of what a pure rule's match does, replayed when the value comes back.

Some rules match every request and act on each match: CRS 920450 captures every header
name (``REQUEST_HEADERS_NAMES "@rx ^.*$"``, ``capture``) and writes
``setvar:'tx.header_name_920450_%{tx.0}=/%{tx.0}/'`` for its chain's second link to read;
920440 and 920420 do the same for the file extension and the content type. Their first
link never leaves the list (it matches), and each value costs the transformation, the
operator, the capture and the setvar's two macro expansions: about 8 µs per header on
CPython, so 100 µs for a browser's dozen headers.

When such a link is *replayable*, what one value does is a function of the value alone:

- the link is pure as cleanskip.py means it (request or response sources, a shipped
  operator whose argument holds no macro, shipped transformations) and not ``multiMatch``;
- its actions are only ``setvar`` on TX with ``=`` or ``!`` whose name and value macros
  read nothing but the capture variables ``TX:0``-``TX:9`` (and whose name, a constant or
  literal text then macros, cannot itself be a capture variable).

Then, for a value, the engine's match (or not), the transformed value that becomes
``MATCHED_VAR``, and the final state of every TX key the link touches (the ten capture
keys, set or removed, and the setvar keys, set or removed) are the same every time,
whatever the transaction's TX held before. ``Replay.run`` evaluates a value the usual way
the first time, records that outcome, and on later values found in the record applies it
(``MATCHED_VAR``, ``MATCHED_VAR_NAME``, ``MATCHED_VARS``, the TX keys) without the operator
or the actions. The records belong to a loaded WAF (a reload starts empty); values over
``VALUE_MAX`` bytes are not recorded, and a link's record holds at most ``MEMO_MAX``
values and ``BYTES_MAX`` bytes of names, values and what they set (it is emptied when
either is reached), so a client sending new values costs one record each and cannot pin
more than a few MiB over all the links. A rule in ``detect`` mode (effects not run) takes
the usual path.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from .actions import SetVar
from .api import Match
from .evaluate import _CAPTURE_KEYS  # TX:0 .. TX:9
from .macros import _LITERAL, _STORE

ENABLED = True  # tests load rule sets with and without it
VALUE_MAX = 4096
MEMO_MAX = 1024
BYTES_MAX = 256 * 1024
_NO = ()  # the record of a value that does not match


def _capture_macro(macro) -> bool:
    """Whether ``macro`` reads nothing but TX:0-9."""
    return all(kind is _LITERAL or (kind is _STORE and a == "tx" and b in _CAPTURE_KEYS)
               for kind, a, b in macro.steps)


def _replayable_effect(e) -> bool:
    if not isinstance(e, SetVar) or e.collection != "tx" or e.op not in ("=", "!"):
        return False
    if not _capture_macro(e.name) or not _capture_macro(e.value):
        return False
    if e.name.constant is not None:
        return e.name.constant.decode("latin-1").lower() not in _CAPTURE_KEYS
    first = e.name.steps[0]  # literal text before the first macro: not a digit alone
    return first[0] is _LITERAL and (len(first[1]) > 1 or not first[1].isdigit())


def replayable(link, pure: bool) -> bool:
    """Whether ``link`` (``pure``: purity.pure_sources found its sources) qualifies
    (see the module doc)."""
    return ENABLED and pure and not link.multi_match and bool(link.effects or link.capture) \
        and all(_replayable_effect(e) for e in link.effects)


def _size(x, record) -> int:
    """What a record costs, roughly: its key's name and value, and the bytes it sets."""
    size = len(x[0]) + len(x[1])
    if record is not _NO:
        size += len(record[0]) + sum(len(k) + len(v) for k, v in record[1].items())
    return size


class Replay:
    """The record of one link: (display name, value) -> ``_NO`` or (transformed value,
    the TX keys set with their values, the TX keys removed)."""

    __slots__ = ("memo", "bytes")

    def __init__(self) -> None:
        self.memo: Dict[Tuple[str, bytes], tuple] = {}
        self.bytes = 0  # the sizes of what memo holds (see _size)

    def run(self, ev, rule, vals, transform, t_class) -> bool:
        """What ``Evaluator._eval_general``'s loop does for ``vals`` of ``rule`` (not in
        detect mode): whether a value matched."""
        memo = self.memo
        v = ev.vars
        tx = ev.stores["tx"]
        matched = False
        for x in vals:
            got = memo.get(x)
            if got is None:
                got = self._evaluate(ev, rule, x, transform, t_class)
                if len(x[1]) <= VALUE_MAX:
                    size = _size(x, got)
                    if len(memo) >= MEMO_MAX or self.bytes + size > BYTES_MAX:
                        memo.clear()
                        self.bytes = 0
                    memo[x] = got
                    self.bytes += size
                matched = matched or got is not _NO
                continue
            if got is _NO:
                continue
            matched = True
            tv, sets, removes = got
            v.matched_var = tv
            v.matched_var_name = x[0].encode("latin-1", "replace")
            v.matched.append((x[0], tv))
            tx.update(sets)
            for key in removes:
                tx.pop(key, None)
        return matched

    @staticmethod
    def _evaluate(ev, rule, x, transform, t_class) -> tuple:
        """Evaluate one value as the general loop does (effects applied) and return its
        record."""
        name, value = x
        if transform is None:
            tv = value
        elif t_class is not None and not value.translate(None, t_class[0]):
            tv = value.lower() if t_class[1] else value  # as Evaluator._eval_general
        else:
            tv = transform(rule, value)
        m: Optional[Match] = rule.operator(tv, ev.expand_text)
        if rule.negated:
            m = Match(tv) if m is None else None
        if m is None:
            return _NO
        ev._matched(rule, name, tv, m, False)
        tx = ev.stores["tx"]
        keys = list(_CAPTURE_KEYS) if rule.capture else []
        for e in rule.effects:  # the key each setvar wrote (as SetVar.apply names it)
            keys.append(e.name.expand(ev).decode("latin-1").lower())
        sets = {k: tx[k] for k in keys if k in tx}
        removes = tuple(k for k in keys if k not in tx)
        return tv, sets, removes
