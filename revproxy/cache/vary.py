"""Vary (RFC 9111 §4.1): which request fields select a stored response, and a canonical key.

``vary_key`` renders, for each name in ``vary_names``, the request's field value after the
normalisations §4.1 allows ("adding or removing whitespace where allowed", "combining multiple
field lines", "normalizing both header field values in a way that is known to have identical
semantics"). So two requests get the same key only when a server must treat them alike:

* every field: lines combined (as a comma list), leading/trailing OWS removed, empty lines
  dropped; a field that is absent differs from one that is present and empty;
* ``accept-encoding`` (RFC 9110 §12.5.3): codings are case-insensitive and their order carries
  no meaning, so members are lower-cased, ``x-gzip``/``x-compress`` read as ``gzip``/
  ``compress`` (§8.4.1), q-values parsed (``q=1`` is the default), sorted; a ``q=0`` member is
  dropped when that equals its absence (not ``identity``, no positive ``*``). So
  ``gzip, br`` == ``br,gzip`` and an empty value == ``gzip;q=0``;
* ``accept-language``, ``accept-charset`` (RFC 9110 §12.5.4, §12.5.2): tags are
  case-insensitive and preference is carried by q-values alone (equal q-values are equal
  preferences, §12.4.2), so members are lower-cased, OWS removed, q-values parsed, ``q=0``
  members dropped when that equals their absence (no positive ``*``), and the list is sorted by
  descending q, then by text: ``en, fr`` == ``FR,en`` and ``de;q=0.5, en`` == ``en,de;q=0.50``;
* ``accept`` (§12.5.1): the same order rule; only the media range and parameter names are
  lower-cased (parameter values may be case-sensitive, §8.3.1), the media-type parameters
  before ``q`` keep their order (they are part of the range), accept extensions after ``q``
  are kept as written.

A value holding a quote or a parameter we do not understand falls back to the generic rule.
``variant_key`` is where a variant is stored: its primary key, a NUL, then this key.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CODING = re.compile(rb"(" + _TOKEN + rb")(?:[ \t]*;[ \t]*[qQ][ \t]*=[ \t]*([0-9.]+))?\Z")
_QVALUE = re.compile(rb"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
_ALIASES = {b"x-gzip": b"gzip", b"x-compress": b"compress"}


def vary_names(response_headers: Sequence[Tuple[bytes, bytes]]) -> Optional[Tuple[bytes, ...]]:
    """The lower-cased, deduplicated, sorted field names of every ``Vary`` line; ``()`` when
    there is none; ``None`` for ``Vary: *`` (no later request can match, §4.1)."""
    names = set()
    for key, value in response_headers:
        if key != b"vary":
            continue
        for member in value.split(b","):
            name = member.strip(b" \t").lower()
            if name == b"*":
                return None
            if name:
                names.add(name)
    return tuple(sorted(names))


def vary_key(names: Sequence[bytes], request_headers: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """A canonical secondary key: one ``name`` (absent) or ``name=value`` line per name."""
    if not names:
        return b""
    parts = []
    for name in names:
        values = [value for key, value in request_headers if key == name]
        if not values:
            parts.append(name)
        else:
            normalise = _NORMALISERS.get(name, _generic)
            parts.append(name + b"=" + normalise(values))
    return b"\n".join(parts)


def variant_key(primary: bytes, names: Sequence[bytes],
                request_headers: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """The full key of the variant of ``primary`` a request selects (after a NUL)."""
    return primary + b"\x00v:" + vary_key(names, request_headers)


def _generic(values: List[bytes]) -> bytes:
    return b", ".join(v for v in (value.strip(b" \t") for value in values) if v)


def _members(values: List[bytes]) -> List[bytes]:
    members = []
    for value in values:
        for member in value.split(b","):
            member = member.strip(b" \t")
            if member:
                members.append(member)
    return members


def _accept_encoding(values: List[bytes]) -> bytes:
    parsed = []
    for member in _members(values):
        match = _CODING.match(member)
        if match is None or (match.group(2) is not None and not _QVALUE.match(match.group(2))):
            return _generic(values)
        coding = match.group(1).lower()
        parsed.append((_ALIASES.get(coding, coding), _milli(match.group(2))))
    star = any(coding == b"*" and q > 0 for coding, q in parsed)
    kept = set()
    for coding, q in parsed:
        if q == 0 and not star and coding not in (b"identity", b"*"):
            continue  # "not acceptable", as it is when unlisted
        kept.add((coding, q))
    return b",".join(_coding_text(coding, q) for coding, q in sorted(kept))


def _milli(qvalue: Optional[bytes]) -> int:
    if qvalue is None:
        return 1000
    whole, _, fraction = qvalue.partition(b".")
    return int(whole) * 1000 + int((fraction + b"000")[:3])


def _coding_text(coding: bytes, q: int) -> bytes:
    if q == 1000:
        return coding
    return coding + (b";q=0.%03d" % q).rstrip(b"0").rstrip(b".")


def _ordered_list(lower_all: bool) -> Callable[[List[bytes]], bytes]:
    """A normaliser for ``Accept``-style lists (``range *( ";" param )`` with an optional q):
    members canonicalised, sorted by descending q, then by their text."""
    def normalise(values: List[bytes]) -> bytes:
        if any(b'"' in value for value in values):
            return _generic(values)
        parsed = []
        for member in _members(values):
            text, q = _weighted(member, lower_all)
            if q is None:
                return _generic(values)
            parsed.append((text, q))
        star = any(q > 0 and (text == b"*" or text.startswith(b"*/*"))
                   for text, q in parsed)
        kept = set()
        for text, q in parsed:
            if q == 0 and not star and text != b"*" and not text.startswith(b"*/*"):
                continue  # "not acceptable", as it is when unlisted
            kept.add((-q, text))
        return b",".join(_coding_text(text, -negq) for negq, text in sorted(kept))
    return normalise


def _weighted(member: bytes, lower_all: bool):
    """(canonical member without its q, q in thousandths), or (b"", None) for a bad q."""
    text = _member_text(member, lower_all)
    pieces = text.split(b";")
    for index, piece in enumerate(pieces[1:], 1):
        if piece[:2] == b"q=":
            qvalue = piece[2:]
            if not _QVALUE.match(qvalue):
                return b"", None
            rest = pieces[:index] + pieces[index + 1:]
            return b";".join(rest), _milli(qvalue)
    return text, 1000


def _member_text(member: bytes, lower_all: bool) -> bytes:
    """``range *( ";" name "=" value )`` without OWS; the range and names lower-cased (and
    the values too when ``lower_all``). Split/strip, not a regex: no quadratic blank runs."""
    pieces = member.split(b";")
    out = [pieces[0].strip(b" \t").lower()]
    for piece in pieces[1:]:
        name, eq, value = piece.partition(b"=")
        value = value.strip(b" \t")
        out.append(name.strip(b" \t").lower() + eq + (value.lower() if lower_all else value))
    return b";".join(out)


_NORMALISERS: Dict[bytes, Callable[[List[bytes]], bytes]] = {
    b"accept-encoding": _accept_encoding,
    b"accept-language": _ordered_list(True),
    b"accept-charset": _ordered_list(True),
    b"accept": _ordered_list(False),
}
