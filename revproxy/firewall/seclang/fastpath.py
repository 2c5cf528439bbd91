"""Specialised evaluation for the commonest rule shape: one key of a writable collection.

Half the rules the CRS runs for a benign request read one TX variable: the paranoia-level
gates (``TX:DETECTION_PARANOIA_LEVEL "@lt 1" ... skipAfter``), the setup defaults
(``&TX:crs_setup_version "@eq 0"``) and the anomaly-score checks. ``specialise(rule,
default_ops)`` returns, for such a rule, a function ``run(tx, detect) -> bool`` that does
what ``Evaluator._eval_general`` does for it with no target loop, no value list and, for a
static numeric comparison, no regular expression per value: it reads the store, transforms
the value, compares, and on a match hands over to ``tx._matched`` (MATCHED_VAR, captures,
effects) exactly as the general loop does. Any other rule gets None (the general loop).

Taken: a rule (or chain link) with exactly one target, ``TX:name`` or ``&TX:name`` (any
writable collection), no prefilter, no ``multiMatch``. The numeric shortcut applies only to
the shipped operators (``default_ops``), with an argument holding no macro.

The same shape with one request/response count or scalar, no ``!`` exclusion: a count of a
collection or of one of its keys (``&REQUEST_HEADERS:Host "@eq 0"``, ``&ARGS``; the CRS
checks a dozen per request), or a scalar (``REQBODY_ERROR "!@eq 0"``, ``REQUEST_BODY_LENGTH``,
``REQUEST_PROTOCOL "!@within %{tx.allowed_http_versions}"``), read as ``Variables.values``
reads them. A link that cleanskip.py may take as pure (a ``PURE_SCALARS`` target with no
macro in the operator's argument, as a first link or a later one that ends its chain) is
specialised too, its function marked ``run.pure = True`` so that purity.pure_sources
still takes it: its one source has one value, so when that value is known clean for it the
phase's list leaves the rule out, and the function never meets a value to skip.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

from .api import Match
from .purity import PURE_SCALARS
from .operators import to_int
from .rules import SCALARS
from .variables import _COLLECTION_NAMES

_COMPARE: Dict[str, Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b, "ge": lambda a, b: a >= b, "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}
_INTS: Dict[bytes, int] = {}  # value -> to_int(value): TX values are few and repeat
_INTS_MAX = 4096


def _int(value: bytes) -> int:
    n = _INTS.get(value)
    if n is None:
        if len(_INTS) >= _INTS_MAX:
            _INTS.clear()
        n = _INTS[value] = to_int(value)
    return n


def maybe_pure(rule, t, stop: bool) -> bool:
    """Whether cleanskip.py may take the link ``rule`` reading ``t`` as pure."""
    if not stop or "%{" in rule.op_arg and not rule.macro_known:
        return False
    if t.count:  # (_request_reader took it: no exclusion, no regex key)
        return t.name in _COLLECTION_NAMES
    return t.name in PURE_SCALARS and t.key is None


def _request_reader(rule, t):
    """``(read(tx) -> value or None, display name)`` for a request count or scalar (see
    the module doc), or None."""
    if rule.exclusions or t.regex is not None:
        return None
    name = t.name
    if name in _COLLECTION_NAMES and t.count:
        display = t.text.lstrip("&")
        if t.key is not None:
            key = t.key_bytes
            return (lambda tx: b"%d" % len(tx.vars._indexed(name).get(key, ()))), display
        return (lambda tx: b"%d" % len(tx.vars.collection(name))), display
    if name in _SCALAR_NAMES and t.key is None:
        if t.count:
            return (lambda tx: b"0" if tx.vars.scalar(name) is None else b"1"), name
        return (lambda tx: tx.vars.scalar(name)), name
    return None


def _reader(rule):
    """``(read(tx) -> value or None, display name)`` of the rule's one target, or None."""
    if len(rule.plan) != 1 or rule.multi_match or rule.pre is not None or rule.always:
        return None
    t = rule.plan[0][0]
    if t.name not in _WRITABLE:
        return _request_reader(rule, t)
    if t.regex is not None or t.key is None:
        return None
    store, key = t.name.lower(), t.key
    if t.count:
        if rule.exclusions:
            return None
        return (lambda tx: b"1" if key in tx.stores[store] else b"0"), t.text.lstrip("&")
    return (lambda tx: tx.stores[store].get(key)), t.name + ":" + t.key


def specialise(rule, default_ops: bool, stop: bool = False) -> Optional[Callable]:
    """``run(tx, detect) -> bool`` for a one-key rule (see the module doc), else None;
    ``stop``: the link is one of ``emptyskip.stop_links`` of its rule (the first link,
    or a later one whose failing ends the chain with nothing done)."""
    reader = _reader(rule)
    if reader is None:
        return None
    read, name = reader
    negated = rule.negated
    has_t = bool(rule.t_funcs)
    compare = None
    if default_ops and rule.op_name.lower() in _COMPARE and "%{" not in rule.op_arg:
        compare = _COMPARE[rule.op_name.lower()]
        constant = to_int(rule.op_arg.encode("utf-8"))
    op = rule.operator

    def run(tx, detect: bool) -> bool:
        tx.vars.rule = rule
        if rule in tx._rt_links and tx._extra_for(rule)[0]:
            return tx._eval_general(rule, detect)
        value = read(tx)
        if value is None:
            return False
        tx.work += 1
        tv = tx._transform(rule, value) if has_t else value
        if compare is not None:
            if compare(_int(tv), constant) == negated:
                return False
            m = Match(tv)
        else:
            m = op(tv, tx.expand_text)
            if negated:
                m = Match(tv) if m is None else None
            if m is None:
                return False
        tx._matched(rule, name, tv, m, detect)
        return True
    run.pure = maybe_pure(rule, rule.plan[0][0], stop)
    return run


_WRITABLE = frozenset(("TX", "IP", "GLOBAL", "SESSION", "USER", "RESOURCE", "ENV"))
# scalars read through Variables.scalar (not MATCHED_VAR*, which the rule loop changes,
# nor the writable and collection names)
_SCALAR_NAMES = frozenset(SCALARS) - {"MATCHED_VAR", "MATCHED_VAR_NAME"}
