"""Building a phase's cleanskip Plan at load (``plan``): which sources each rule's links
read, the pure links and their bits, each source's representative target, the targets
the union scan may leave values out of; the Plan (cleanskip.py) uses them per request."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from . import atoms as atoms_mod, emptyskip, listmemo
from .cleanskip import Plan
from .emptyskip import _WHOLE, _XML
from .purity import pure_sources
from .rules import Target


def plan(rules: list, default_ops: bool, chains: bool = True, parsers: bool = False
         ) -> Optional[Plan]:
    """The Plan of a phase list, or None (nothing to skip, or a counted ``skip:N``);
    ``chains`` as emptyskip.plan's; ``parsers``: the shipped query, cookie and body
    parsers are in use (the atoms' tier needs them, atoms.py)."""
    if any(r.skip for r in rules if r.marker is None and r.delta is None):
        return None
    index: Dict[tuple, int] = {}
    reps: Dict[int, Optional[Tuple[object, str]]] = {}
    keyidx: Dict[str, int] = {}
    needs: Dict[int, tuple] = {}
    pure: Dict[int, tuple] = {}
    cbit = 1

    def mask(r, got) -> int:
        m = 0
        for t, s in zip(r.targets, got):  # one source per target, in order
            j = index.setdefault(s, len(index))
            if j not in reps:
                reps[j] = _representative(t, s)
            m |= 1 << j
        return m
    for i, r in enumerate(rules):
        if emptyskip.ENABLED and r.marker is None and r.delta is None:
            masks = tuple(mask(link, got) for link, got in
                          emptyskip.link_sources(r, chains))
            if masks:
                needs[i] = masks
        links = []
        for link in (emptyskip.stop_links(r, chains) if r.marker is None and r.delta is None
                     else ()):
            got = pure_sources(link, default_ops)
            if got is None:
                continue
            links.append((cbit, mask(link, got)))
            link.cbit = cbit
            cbit <<= 1
            link.csrc = tuple(index[s] for s in got)
            if link is r:
                for t, s in zip(r.targets, got):
                    if s[0] != _XML:
                        keyidx[t.text + "|"] = index[s]
        if links:
            pure[i] = tuple(links)
    if not needs and not pure:
        return None
    # the union scan may leave out a value known clean for every pure reader only where
    # no other prefilter link (a chain's later link, an impure rule) reads its target
    for r in rules:
        if r.marker is None and r.delta is None:
            for link in r.chain_rules():
                if link.pre is not None and (link is not r or not r.cbit):
                    for t in link.targets:
                        keyidx.pop(t.text + "|", None)
    order = sorted(index, key=index.get)
    got = Plan(rules, order, needs, pure, [reps[i] for i in range(len(order))], keyidx)
    got.list_records = default_ops and listmemo.ENABLED
    if parsers:
        got.atoms = atoms_mod.build(got)
    return got


def _representative(t, source) -> Optional[Tuple[object, str]]:
    """(a target reading every value of ``source``, its cache key) for ``Plan.start``;
    None for XML (never recorded). A whole collection's is the plain collection, not
    ``t`` when ``t`` selects keys by regex (``REQUEST_COOKIES:/^x/``): its values would
    leave out the keys other readers of the collection read."""
    kind, name, _key = source
    if kind == _XML:
        return None
    if kind == _WHOLE and (t.regex is not None or t.key is not None):
        return Target(name, None, None, False, name), name + "|"
    return t, t.text + "|"
