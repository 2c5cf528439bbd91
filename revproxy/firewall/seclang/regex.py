"""Regular expressions for @rx: RE2 when it can, Python ``re`` on a bounded input when not.

``compile_rx(pattern)`` compiles the rule's pattern (its UTF-8 bytes) once, the way
Coraza does: DOTALL on (``.`` matches a newline), no multi-line, a byte is a character
(RE2 in Latin-1 mode; ``re`` on bytes), so ``\\w``, ``\\d`` and case folding are ASCII.

- RE2 (``google-re2``, CPython) runs in linear time; every pattern it accepts uses it.
- Patterns RE2 refuses (look-around, back references, possessive quantifiers ...) and
  every pattern where RE2 is missing (PyPy) use ``re``, which backtracks: its subject is
  cut to the first ``RE_FALLBACK_LIMIT`` bytes so that one evaluation stays bounded.

A pattern neither engine accepts raises ``RegexError`` (a ValueError) naming the reason.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

from .pcre2py import TranslationError, translate

try:  # pragma: no cover - depends on the interpreter
    import re2 as _re2

    _RE2_OPTIONS = _re2.Options()
    _RE2_OPTIONS.encoding = _re2.Options.Encoding.LATIN1
    _RE2_OPTIONS.dot_nl = True
    _RE2_OPTIONS.log_errors = False
    _RE2_OPTIONS.max_mem = 64 << 20
except ImportError:  # pragma: no cover
    _re2 = None

_UNANCHORED = getattr(getattr(_re2, "_Anchor", None), "UNANCHORED", None)

RE2_AVAILABLE = _re2 is not None
QUICK = True  # tests compile without the quick negative answer
RE_FALLBACK_LIMIT = 32 * 1024
MAX_CAPTURES = 10  # TX:0 .. TX:9


class RegexError(ValueError):
    """A pattern that neither RE2 nor Python's ``re`` compiles."""


class Regex:
    """A compiled @rx pattern. ``engine`` is "re2" or "re"."""

    __slots__ = ("pattern", "engine", "_search", "limit", "_quick", "_spans")

    def __init__(self, pattern: bytes, engine: str, compiled, limit: Optional[int],
                 quick=None):
        self.pattern = pattern
        self.engine = engine
        self._search = compiled.search
        self.limit = limit
        # RE2: the pattern alone in a set, whose C Match (a list of indexes, empty when it
        # does not match) answers the usual "no" without the wrapper's frames and groups
        self._quick = quick
        # RE2: the compiled pattern's C Match (the spans of every group, (-1, -1) when
        # it took no part), which the wrapper's search turns into a match object
        self._spans = _c_match(compiled) if engine == "re2" else None

    def search(self, data: bytes) -> Optional[Tuple[bytes, Tuple[bytes, ...]]]:
        """(group 0, groups 0..9 with b"" for groups that did not take part) or None."""
        quick = self._quick
        if quick is not None and not quick(data):
            return None
        if self.limit is not None and len(data) > self.limit:
            data = data[: self.limit]
        spans = self._spans
        if spans is not None:
            got = spans(_UNANCHORED, data, 0, len(data))
            start, end = got[0]
            if start < 0:
                return None
            whole = data[start:end]
            return whole, (whole,) + tuple(data[a:b] if a >= 0 else b""
                                           for a, b in got[1:MAX_CAPTURES])
        m = self._search(data)
        if m is None:
            return None
        groups = m.groups()[: MAX_CAPTURES - 1]
        whole = m.group(0)
        return whole, (whole,) + tuple(g if g is not None else b"" for g in groups)


def _c_match(compiled):
    """google-re2's C ``Match(anchor, text, pos, endpos) -> [(start, end), ...]`` behind
    ``compiled`` (a private attribute: None when this version has no such thing)."""
    inner = getattr(compiled, "_regexp", None)
    return getattr(inner, "Match", None) if _UNANCHORED is not None else None


def compile_re2(pattern: bytes) -> Optional[Regex]:
    """The RE2 form of ``pattern``, or None when RE2 is missing or refuses it."""
    if _re2 is None:
        return None
    try:
        return Regex(pattern, "re2", _re2.compile(pattern, _RE2_OPTIONS), None,
                     quick_match(pattern))
    except Exception:  # re2.error: a construct RE2 does not have
        return None


def quick_match(pattern: bytes):
    """``match(data) -> list``: ``pattern`` alone in an RE2 set with the options of
    ``compile_re2`` (non-empty where a search finds it), or None."""
    if _re2 is None or not QUICK:
        return None
    try:
        rset = _re2.Set.SearchSet(_RE2_OPTIONS)
        rset.Add(pattern)
        rset.Compile()
    except Exception:  # refused or too big: the search alone
        return None
    inner = getattr(rset, "_set", None)
    return inner.Match if inner is not None else rset.Match


def compile_python(pattern: bytes, limit: Optional[int] = RE_FALLBACK_LIMIT) -> Regex:
    try:
        compiled = re.compile(translate(pattern), re.DOTALL)
    except (re.error, OverflowError, RecursionError, TranslationError) as e:
        raise RegexError("cannot compile regular expression %r: %s"
                         % (pattern.decode("utf-8", "replace"), e))
    return Regex(pattern, "re", compiled, limit)


def compile_rx(pattern: str) -> Regex:
    """``pattern`` (rule-file text) compiled with RE2 if possible, else with ``re``."""
    raw = pattern.encode("utf-8")
    return compile_re2(raw) or compile_python(raw)
