"""A collection's entries with their names, remembered across requests.

An entry of a request collection is ``(lower-case key, display name, value, key)``; the
display name is what ``MATCHED_VAR_NAME`` and the log show (``ARGS:q``). Browsers and
forms send the same header, cookie and argument names on every request, so the lower-case
key and the display name of a (collection, key) are kept here instead of being built
again for every entry of every request: the CRS reads ``ARGS``, ``ARGS_NAMES``,
``ARGS_POST`` and ``ARGS_POST_NAMES`` of a 56-field form, 224 names. Reusing the same str
objects also makes the records of cleanskip.py cheaper to look up (their hash is kept by
the object).

Bounds: keys longer than ``KEY_MAX`` bytes are not kept, and a collection keeps at most
``MEMO_MAX`` keys (its memo is emptied when full): a few MiB over every collection, however
many new names clients send.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

KEY_MAX = 64
MEMO_MAX = 1024

_MEMO: Dict[str, Dict[bytes, Tuple[bytes, str]]] = {}  # collection -> key -> (lower, display)


def _memo(name: str) -> Dict[bytes, Tuple[bytes, str]]:
    memo = _MEMO.get(name)
    if memo is None:
        memo = _MEMO[name] = {}
    return memo


def entries(name: str, pairs: Iterable[Tuple[bytes, bytes]]) -> List[tuple]:
    """The entries of collection ``name`` for its (key, value) ``pairs``, in order."""
    memo = _memo(name)
    prefix = name + ":"
    out: List[tuple] = []
    add = out.append
    for k, v in pairs:
        got = memo.get(k)
        if got is None:
            got = (k.lower(), prefix + k.decode("latin-1"))
            if len(k) <= KEY_MAX:
                if len(memo) >= MEMO_MAX:
                    memo.clear()
                memo[k] = got
        add((got[0], got[1], v, k))
    return out


def name_entries(name: str, base: List[tuple]) -> List[tuple]:
    """The entries of ``name`` (``ARGS_NAMES`` ...): each key of ``base`` (the entries of
    ``ARGS`` ...) as its value."""
    return entries(name, [(e[3], e[3]) for e in base])
