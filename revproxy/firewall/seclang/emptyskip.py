"""Phase lists without the rules that can only read empty collections, chosen once per phase.

A rule whose first link reads only request or response collections (``ARGS``,
``REQUEST_COOKIES``, ``FILES``, ``XML:/*``, ``REQUEST_HEADERS:Content-Type`` ...; no ``&``
count, no TX) or the bodies (``REQUEST_BODY``, ``RESPONSE_BODY``) gets no value when each
of those is empty on this transaction, so it cannot match and has no effect: the
evaluation loop takes no value, runs no operator and no action (a chain stops at its first
link). A benign GET has no arguments, cookies, files or body, and 40-odd such rules.

``plan(rules)`` finds, at load, the *sources* (collection, key) those rules read; at the
start of a phase ``Plan.lists(vars)`` tests each source once (a key: whether the
collection's index holds it; a whole collection: whether it has entries; XML: whether a
document was parsed; a body: whether it is set) into a bit mask and returns the phase's
list without the rules whose every source is empty, with its marker positions, built once
per mask and kept by the WAF. The collections and bodies cannot change during a phase (the
request body is taken before phase 2, the response headers before phase 3, its body
before phase 4), and ``!`` exclusions or removed targets only take values away. Not used
for a phase with a counted ``skip:N`` (removing rules would move its count) nor on the
unfolded lists (fold.py), which run everything.

A chain stops at a later link too: when the links before it have no effect (no action to
run on a match, no ``capture``), a later link reading only empty sources makes the chain
fail with nothing done, so the rule is left out when *any* such link's sources are empty
(CRS 920170, ``REQUEST_METHOD "@rx ^(?:GET|HEAD)$"`` then ``REQUEST_HEADERS:Content-Length``,
drops out of a GET without a body). Its earlier links would have set ``MATCHED_VAR``, which
outlives the rule; so this is done only when no rule's first link reads ``MATCHED_VAR`` or
``MATCHED_VAR_NAME`` (``chains_safe``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from . import delta
from .variables import _COLLECTION_NAMES

ENABLED = True  # tests load rule sets with and without it
CHAINS = True  # the later links of chains too (tests load with and without)
CACHE_MAX = 64  # masks kept per phase (each a list of the phase's rules)
_KEYED, _WHOLE, _XML, _SCALAR = 0, 1, 2, 3
_COUNT = 4  # (cleanskip.py's sources only: a count of a collection or of one key)
# scalars set only when a body arrives (None: absent, no value); not the MULTIPART_*
# flags, which a ctl:requestBodyProcessor in the phase may turn on
_SCALARS = frozenset(("REQUEST_BODY", "RESPONSE_BODY"))


def _sources(rule) -> Optional[List[Tuple[int, str, Optional[bytes]]]]:
    """The sources of ``rule``'s first link when it reads only collections, else None."""
    if rule.marker is not None or rule.delta is not None or not rule.targets:
        return None
    return target_sources(rule.targets, _SCALARS)


def stop_links(rule, chains: bool = True) -> list:
    """The links of ``rule`` whose failing to match ends the chain with nothing done: the
    first link, and (``chains``) each later link reached through links without effects
    (no action to run on a match, no ``capture``; see the module doc)."""
    out = [rule]
    link = rule
    while chains and link.child is not None and not link.effects and not link.capture:
        link = link.child
        out.append(link)
    return out


def link_sources(rule, chains: bool = True) -> list:
    """``(link, its sources)`` for each link of ``rule`` that stops the chain when its
    sources are all empty (``stop_links``)."""
    out = []
    for link in stop_links(rule, chains):
        got = _sources(link)
        if got is not None:
            out.append((link, got))
    return out


_MATCHED = ("MATCHED_VAR", "MATCHED_VAR_NAME")


def chains_safe(rules) -> bool:
    """Whether no first link of ``rules`` reads ``MATCHED_VAR``/``MATCHED_VAR_NAME`` (a
    target or a macro of its operator): a chain left out at a later link then changes
    nothing another rule can see."""
    for r in rules:
        if r.marker is not None or r.delta is not None:
            continue
        if any(t.name in _MATCHED for t in r.targets):
            return False
        arg = r.op_arg.upper()
        if "%{MATCHED_VAR" in arg:
            return False
    return True


def target_sources(targets, scalars) -> Optional[List[Tuple[int, str, Optional[bytes]]]]:
    """The source of each of ``targets`` (one per target, in order), or None when one is
    a count or neither XML, a request/response collection nor one of ``scalars``."""
    out = []
    for t in targets:
        if t.count:
            return None
        if t.name == "XML":
            out.append((_XML, "XML", None))
        elif t.name in scalars:
            out.append((_SCALAR, t.name, None))
        elif t.name not in _COLLECTION_NAMES:
            return None
        elif t.key is not None and t.regex is None:
            out.append((_KEYED, t.name, t.key_bytes))
        else:
            out.append((_WHOLE, t.name, None))
    return out


class Plan:
    """One phase's sources, which rules read only which of them, and the lists per mask."""

    def __init__(self, rules: list, sources: list, needs: Dict[int, tuple]) -> None:
        self.rules = rules
        self.sources = tuple(sources)
        # list index -> the masks of the sources its links read (link_sources): the rule
        # is left out when every source of one mask is empty
        self.needs = needs
        self._lists: Dict[int, Tuple[list, Dict[str, int]]] = {}
        self._merged: Dict[tuple, object] = {}  # runs of adjacent Deltas merged (delta.py)

    def mask(self, v) -> int:
        """The sources empty on the transaction whose ``Variables`` is ``v``."""
        mask, bit = 0, 1
        for kind, name, key in self.sources:
            if kind == _KEYED:
                empty = key not in v._indexed(name)
            elif kind == _WHOLE:
                empty = not v.collection(name)
            elif kind == _XML:
                empty = v.body.xml is None
            else:
                empty = v.scalar(name) is None
            if empty:
                mask |= bit
            bit <<= 1
        return mask

    def lists(self, v) -> Tuple[list, Dict[str, int]]:
        """(rules, marker positions) of the phase for this transaction."""
        mask = self.mask(v)
        got = self._lists.get(mask)
        if got is None:
            if len(self._lists) >= CACHE_MAX:
                self._lists.clear()
            got = self._lists[mask] = self._build(mask)
        return got

    def _build(self, mask: int) -> Tuple[list, Dict[str, int]]:
        needs = self.needs
        out = delta.merge_adjacent([r for i, r in enumerate(self.rules)
                                    if i not in needs or not empty_link(needs[i], mask)],
                                   self._merged)
        markers: Dict[str, int] = {}
        for i, r in enumerate(out):
            if r.marker is not None:
                markers.setdefault(r.marker, i)
        return out, markers


def empty_link(masks: tuple, empty: int) -> bool:
    """Whether one of ``masks`` (a rule's ``Plan.needs``) has only sources in ``empty``."""
    for m in masks:
        if not m & ~empty:
            return True
    return False


def plan(rules: list, chains: bool = True) -> Optional[Plan]:
    """The Plan of a phase list, or None (nothing to skip, or a counted ``skip:N``);
    ``chains``: also later links (``link_sources``, ``chains_safe``)."""
    if any(r.skip for r in rules if r.marker is None and r.delta is None):
        return None
    index: Dict[tuple, int] = {}
    needs: Dict[int, tuple] = {}
    for i, r in enumerate(rules):
        if r.marker is not None or r.delta is not None:
            continue
        masks = []
        for _link, got in link_sources(r, chains):
            m = 0
            for s in got:
                m |= 1 << index.setdefault(s, len(index))
            masks.append(m)
        if masks:
            needs[i] = tuple(masks)
    if not needs:
        return None
    return Plan(rules, sorted(index, key=index.get), needs)
