"""``%{...}`` macro expansion, compiled once at load.

A macro names a variable the way a rule target does, with ``.`` (or ``:``) between the
collection and the key: ``%{tx.anomaly_score}``, ``%{TX.0}``, ``%{MATCHED_VAR}``,
``%{REQUEST_HEADERS.host}``, ``%{rule.id}``. Names are case-insensitive. A macro whose
variable does not exist expands to the empty string (ModSecurity v3 / Coraza); ``%{`` without a
closing ``}`` is literal text. Expansion reads the transaction through
``tx.macro_value(collection, key) -> bytes`` (``key`` lower-cased, None for a scalar).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple, Union

from .scalars import WRITABLE

_MACRO = re.compile(r"%\{([A-Za-z_][A-Za-z0-9_]*)(?:[.:]([^}]*))?\}")

Part = Union[bytes, Tuple[str, Optional[str]]]


class Macro:
    """A compiled text: literal bytes and variable references.

    ``constant`` is the expansion when the text holds no macro (then ``expand`` costs
    nothing); ``expand(tx) -> bytes``."""

    __slots__ = ("text", "parts", "constant", "steps")

    def __init__(self, text: str) -> None:
        self.text = text
        parts: List[Part] = []
        pos = 0
        for m in _MACRO.finditer(text):
            if m.start() > pos:
                parts.append(text[pos:m.start()].encode("utf-8"))
            key = m.group(2)
            parts.append((m.group(1).upper(), key.lower() if key is not None else None))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:].encode("utf-8"))
        self.parts = tuple(parts)
        self.constant: Optional[bytes] = None
        if all(isinstance(p, bytes) for p in parts):
            self.constant = b"".join(parts)  # type: ignore[arg-type]
        # what expand does per part: (_LITERAL, bytes, None); (_STORE, store, key) for a
        # key of a writable collection (``%{tx.score}``: the store read directly, as
        # Variables.macro_value reads it); (_OTHER, collection, key) for the rest
        self.steps = tuple(_step(p) for p in parts)

    def expand(self, tx) -> bytes:
        if self.constant is not None:
            return self.constant
        out = []
        stores = tx.stores
        for kind, a, b in self.steps:
            if kind is _LITERAL:
                out.append(a)
            elif kind is _STORE:
                out.append(stores[a].get(b, b""))
            else:
                out.append(tx.macro_value(a, b))
        return b"".join(out)

    def __repr__(self) -> str:
        return "Macro(%r)" % self.text


_LITERAL, _STORE, _OTHER = "literal", "store", "other"


def _step(part: Part) -> tuple:
    if isinstance(part, bytes):
        return (_LITERAL, part, None)
    collection, key = part
    if collection in WRITABLE:
        if key is None:
            return (_LITERAL, b"", None)  # %{tx}: no key, no value
        return (_STORE, collection.lower(), key)
    return (_OTHER, collection, key)


_compiled: Dict[str, Macro] = {}


def compile_macro(text: str) -> Macro:
    """The Macro for ``text``, memoised (texts come from rule files only, so the memo is
    bounded by the loaded rules)."""
    m = _compiled.get(text)
    if m is None:
        if len(_compiled) > 10000:
            _compiled.clear()
        m = _compiled[text] = Macro(text)
    return m


def has_macro(text: str) -> bool:
    return _MACRO.search(text) is not None
