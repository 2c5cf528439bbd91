"""Which keys of a collection a target reads: its ``!`` exclusions taken away from the
entries (``drop_excluded``), and the store keys a regex key selects, remembered per
target (``KeyMatcher``)."""

from __future__ import annotations

from typing import List, Sequence


def drop_excluded(entries: List, exclusions: Sequence) -> List:
    """``entries`` (lower-case key first) without those an exclusion of their collection
    removes (``Target.excludes``): a whole-collection exclusion removes all, keys compare
    through one set, each regex key is searched."""
    keys = set()
    searches = []
    for x in exclusions:
        if x.regex is not None:
            searches.append(x.regex.search)
        elif x.key_bytes is None:
            return []
        else:
            keys.add(x.key_bytes)
    if not searches:
        return [e for e in entries if e[0] not in keys]
    out = []
    for e in entries:
        k = e[0]
        if k in keys:
            continue
        for search in searches:
            if search(k) is not None:
                break
        else:
            out.append(e)
    return out


_KEY_MEMO_MAX = 4096


class KeyMatcher:
    """Which store keys a regex key (``TX:/^MSC_/``) selects, remembered per key (the
    target keeps it): the CRS reads such targets on every request over the same keys, so
    a request costs a set comparison instead of a search (or a call) per key."""

    __slots__ = ("_search", "_seen", "_yes", "_max")

    def __init__(self, rx, memo_max: int = _KEY_MEMO_MAX) -> None:
        self._search = rx.search
        self._seen: set = set()  # keys classified so far
        self._yes: set = set()   # those of them that match
        self._max = memo_max

    def matching(self, store) -> set:
        """A set holding exactly the keys of ``store`` (str keys, searched Latin-1
        encoded) that match, and possibly keys of earlier stores."""
        seen = self._seen
        if seen.issuperset(store):
            return self._yes
        if len(seen) + len(store) > self._max:
            seen.clear()
            self._yes = set()
        yes = self._yes
        search = self._search
        for k in store:
            if k not in seen:
                seen.add(k)
                if search(k.encode("latin-1")) is not None:
                    yes.add(k)
        return yes
