"""Content-coding negotiation (RFC 9110 §12.5.3 Accept-Encoding, §12.4.2 quality values).

``choose`` is pure: given the request's ``Accept-Encoding`` field lines and the codings the
proxy can produce (in its order of preference), it returns the coding to use or None for
identity. It never returns a coding the client refused (``q=0``, or unlisted without a
positive ``*``).
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Sequence, Tuple

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_MEMBER = re.compile(rb"(" + _TOKEN + rb")[ \t]*(?:;[ \t]*[qQ][ \t]*=[ \t]*([0-9.]+))?[ \t]*\Z")
_QVALUE = re.compile(rb"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
_ALIASES = {b"x-gzip": b"gzip", b"x-compress": b"compress"}
_MAX_MEMBERS = 64  # attacker-sized lists: the rest is ignored


def parse(values: Sequence[bytes]) -> Dict[bytes, int]:
    """coding -> q in thousandths for every well-formed member of the field lines (lower-
    cased, ``x-gzip`` read as ``gzip``); a member with a bad q-value or bad syntax is ignored
    (it cannot be understood, so it grants nothing). A coding listed twice keeps its first q."""
    weights: Dict[bytes, int] = {}
    seen = 0
    for value in values:
        for member in value.split(b","):
            member = member.strip(b" \t")
            if not member:
                continue
            seen += 1
            if seen > _MAX_MEMBERS:
                return weights
            found = _MEMBER.match(member)
            if found is None:
                continue
            q = found.group(2)
            if q is not None and not _QVALUE.match(q):
                continue
            coding = found.group(1).lower()
            weights.setdefault(_ALIASES.get(coding, coding), _milli(q))
    return weights


def _milli(qvalue: Optional[bytes]) -> int:
    if qvalue is None:
        return 1000
    whole, _, fraction = qvalue.partition(b".")
    return int(whole) * 1000 + int((fraction + b"000")[:3])


def acceptable(weights: Dict[bytes, int], coding: bytes) -> int:
    """The q (thousandths) the client gives ``coding``: its own, else ``*``'s, else 0."""
    if coding in weights:
        return weights[coding]
    return weights.get(b"*", 0)


def choose(values: Sequence[bytes], offered: Sequence[bytes]) -> Optional[bytes]:
    """The coding of ``offered`` (the proxy's preference order) to use for a request whose
    ``Accept-Encoding`` lines are ``values``, or None for identity.

    * no ``Accept-Encoding`` line: identity (a client that says nothing may not decode);
    * the highest q wins; ties go to the proxy's order; q=0 is "not acceptable";
    * identity wins when the client ranks it explicitly above every offered coding
      (``gzip;q=0.5, identity``). Identity is otherwise the fallback, even when refused
      (``identity;q=0``): RFC 9110 lets a server send it rather than a 406.
    """
    if not values:
        return None
    weights = parse(values)
    best, best_q = None, 0
    for coding in offered:
        q = acceptable(weights, coding)
        if q > best_q:
            best, best_q = coding, q
    if best is None:
        return None
    identity_q = weights.get(b"identity")
    if identity_q is not None and identity_q > best_q:
        return None
    return best


def offered_order(codings: Sequence[str]) -> Tuple[bytes, ...]:
    """Config coding names as the byte tokens ``choose`` compares."""
    return tuple(c.encode("ascii") for c in codings)
