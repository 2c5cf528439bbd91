"""Case-insensitive multi-phrase search for @pm / @pmFromFile.

``PhraseMatcher(phrases).search(data)`` returns a phrase (as written in the rule) that
occurs in ``data`` ignoring ASCII case, or None. Two engines, one answer to "does any
phrase occur": pyahocorasick's automaton when it imports (CPython), else one Python
regular expression built from the phrases' trie (``(?:ab(?:c|d)|x)``): the regex engine
then walks the trie at each position, so thousands of phrases cost about the longest
phrase's length per input byte, never the number of phrases. Which phrase is reported
when several occur may differ between the engines (the first to end vs the first to
start).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Optional

try:  # pragma: no cover - depends on the interpreter
    import ahocorasick as _ahocorasick
except ImportError:  # pragma: no cover
    _ahocorasick = None

AHOCORASICK_AVAILABLE = _ahocorasick is not None


def _trie_regex(words: Iterable[bytes]) -> bytes:
    """A regex source matching exactly the given (non-empty) words."""
    trie: Dict = {}
    for word in words:
        node = trie
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = True

    def emit(node: Dict) -> bytes:
        end = None in node
        branches = [re.escape(bytes((byte,))) + emit(child)
                    for byte, child in sorted((k, v) for k, v in node.items() if k is not None)]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if end:
            return b"(?:" + body + b")?"
        return body

    # Recursion depth is the longest phrase; phrases are short lines of rule files.
    return emit(trie)


class PhraseMatcher:
    """Finds any of ``phrases`` in a byte string, ignoring ASCII case."""

    def __init__(self, phrases: Iterable[bytes], engine: Optional[str] = None):
        self.by_lower: Dict[bytes, bytes] = {}
        for phrase in phrases:
            if phrase:
                self.by_lower.setdefault(phrase.lower(), phrase)
        if engine is None:
            engine = "ahocorasick" if _ahocorasick is not None else "regex"
        self.engine = engine
        if not self.by_lower:
            self._search = lambda data: None
        elif engine == "ahocorasick":
            automaton = _ahocorasick.Automaton()
            for lower, phrase in self.by_lower.items():
                automaton.add_word(lower.decode("latin-1"), phrase)
            automaton.make_automaton()
            self._search = self._aho_search(automaton)
        else:
            import sys
            limit = sys.getrecursionlimit()
            longest = max(len(w) for w in self.by_lower)
            if longest + 50 > limit:
                sys.setrecursionlimit(longest + 100)
            regex = re.compile(_trie_regex(self.by_lower))
            by_lower = self.by_lower

            def search(data: bytes) -> Optional[bytes]:
                m = regex.search(data.lower())
                return by_lower[m.group(0)] if m is not None else None
            self._search = search

    @staticmethod
    def _aho_search(automaton):
        def search(data: bytes) -> Optional[bytes]:
            for _end, phrase in automaton.iter(data.lower().decode("latin-1")):
                return phrase
            return None
        return search

    def search(self, data: bytes) -> Optional[bytes]:
        return self._search(data)
