"""Range requests answered from a complete stored 200 response (RFC 9110 §14, §13.1.5).

Pure functions: ``has_range`` tells whether a request carries a ``Range`` at all,
``parse_range`` reads a ``Range`` value, ``if_range_allows`` evaluates ``If-Range``,
``range_response`` makes the whole decision and builds the 206 / 416, and ``accept_ranges``
advertises range support on full responses served from the cache.

Choices where the RFC leaves latitude:

* An invalid ``Range`` (other unit, bad syntax, ``last-pos < first-pos``, more than one field
  line, numbers of more than 64 significant digits) is ignored: the full 200 is served (§14.2
  lets a server ignore it). Optional whitespace is tolerated around list members, ``=`` and
  ``-``; empty list members are skipped (§5.6.1); the unit is case-insensitive (§14.1).
* Abuse defence (§14.2 security note, §14.6): ranges are sorted and coalesced when they
  overlap, touch, or leave a gap smaller than ``MIN_GAP`` (about the cost of a part header);
  when nothing had to be coalesced the client's order is kept (§14.6 SHOULD). More than
  ``MAX_SPECS`` range-specs, or more than ``MAX_RANGES`` ranges after coalescing, and the
  ``Range`` is ignored (200). Coalescing also bounds the 206 body to the representation size
  plus ``MAX_RANGES`` part headers.
* A zero-length representation: int-ranges are unsatisfiable (416); a non-zero suffix-range is
  "satisfiable" (§14.1.1) but no byte range can express it, so the 200 is served.
* ``If-Range`` with an entity-tag is true only on a strong match with a strong stored ETag
  (§8.8.3.2). With a date it is true only when it names the same instant as the stored
  ``Last-Modified`` (both valid HTTP-dates; the instant, not the spelling, is compared) and that
  Last-Modified is strong for a cache: the stored ``Date`` is at least one second later
  (§8.8.2.2). Anything else (junk, a list, a weak tag) is false: the full 200 is served.
* Only GET (§14.2) on a stored 200. Several ranges of a response with a ``Content-Encoding``
  are not sent as multipart (the top-level coding would wrongly describe the multipart
  container): the 200 is served. A single range of an encoded body is a slice of the encoded
  bytes, with the coding kept, as §14.1.2 ranges count representation data.
* The 416 drops ``Content-Type`` and ``Content-Encoding`` (they describe a body not sent) and
  keeps the other stored fields. The stored ``Accept-Ranges`` (even ``none``) is not consulted:
  slicing a complete stored body costs the origin nothing.
* The multipart boundary is derived from a SHA-256 of the ranges and the body, re-derived with a
  counter until it occurs neither in the body nor in the part Content-Type: deterministic, and
  an attacker cannot plant it in a body whose hash it depends on.
"""

from __future__ import annotations

import hashlib
import re
from typing import List, Optional, Sequence, Tuple, Union

from revproxy.cache.dates import parse_http_date
from revproxy.cache.directives import first_field, get_field
from revproxy.cache.validation import parse_entity_tags

__all__ = [
    "MAX_RANGES", "MAX_SPECS", "MIN_GAP", "UNSATISFIABLE", "accept_ranges", "has_range",
    "if_range_allows", "multipart_boundary", "parse_range", "range_response",
]

Headers = Sequence[Tuple[bytes, bytes]]
Range = Tuple[int, int]

UNSATISFIABLE = "unsatisfiable"  # parse_range result: no range overlaps the representation
MAX_RANGES = 16  # ranges left after coalescing; more and the Range is ignored
MAX_SPECS = 100  # range-specs parsed at all; more and the Range is ignored unread
MIN_GAP = 80  # bytes; a smaller gap between two ranges costs less to send than a part header
_MAX_DIGITS = 64

_OWS = b" \t"
_SPEC = re.compile(rb"([0-9]*)[ \t]*-[ \t]*([0-9]*)\Z")
_FRAMING = frozenset([b"content-length", b"content-range"])
_NOT_IN_416 = frozenset([b"content-length", b"content-range", b"content-type",
                         b"content-encoding"])


def has_range(headers: Headers) -> bool:
    """True when a request's ``headers`` hold a ``Range`` field (valid or not)."""
    return any(name == b"range" for name, _ in headers)


def parse_range(value: bytes, length: int) -> Union[List[Range], None, str]:
    """Inclusive ``(first, last)`` byte ranges of a ``Range`` value within ``length`` bytes,
    coalesced as described above; ``None`` when the field must be ignored (serve 200),
    ``UNSATISFIABLE`` when no range overlaps (serve 416). Never raises."""
    unit, sep, specs = value.partition(b"=")
    if not sep or unit.strip(_OWS).lower() != b"bytes":
        return None
    members = specs.split(b",")
    if len(members) > MAX_SPECS:
        return None
    ranges: List[Range] = []
    seen_spec = False
    suffix_wanted = False
    for member in members:
        member = member.strip(_OWS)
        if not member:
            continue  # empty list element (RFC 9110 §5.6.1)
        spec = _parse_spec(member)
        if spec is None:
            return None
        seen_spec = True
        first, last = spec
        if first is None:
            suffix_wanted = suffix_wanted or last > 0
            if last > 0 and length > 0:
                ranges.append((max(0, length - last), length - 1))
        elif first < length:
            ranges.append((first, length - 1 if last is None else min(last, length - 1)))
    if not seen_spec:
        return None
    if not ranges:
        return None if (length == 0 and suffix_wanted) else UNSATISFIABLE
    ranges = _coalesce(ranges)
    return ranges if len(ranges) <= MAX_RANGES else None


def _parse_spec(member: bytes) -> Optional[Tuple[Optional[int], Optional[int]]]:
    """``(first, last)`` of ``a-b`` / ``a-`` (last ``None``), ``(None, n)`` of ``-n``;
    ``None`` when invalid."""
    match = _SPEC.match(member)
    if match is None:
        return None
    first_digits, last_digits = match.groups()
    if not first_digits:
        suffix = _number(last_digits)
        return None if suffix is None else (None, suffix)
    first = _number(first_digits)
    if first is None:
        return None
    if not last_digits:
        return first, None
    last = _number(last_digits)
    if last is None or last < first:  # §14.1.1: last-pos < first-pos is invalid
        return None
    return first, last


def _number(digits: bytes) -> Optional[int]:
    # bounded so int() stays cheap (and under CPython's int-string limit); no body is this long
    significant = digits.lstrip(b"0")
    if not digits or len(significant) > _MAX_DIGITS:
        return None
    return int(significant) if significant else 0


def _coalesce(ranges: List[Range]) -> List[Range]:
    """Ranges merged when they overlap, touch or sit less than ``MIN_GAP`` apart (§14.6), in
    ascending order; the input order when nothing merged."""
    ordered = sorted(ranges)
    merged = [list(ordered[0])]
    for first, last in ordered[1:]:
        current = merged[-1]
        if first <= current[1] + 1 + MIN_GAP:
            if last > current[1]:
                current[1] = last
        else:
            merged.append([first, last])
    if len(merged) == len(ranges):
        return list(ranges)  # each merge removes one: none happened, keep the client's order
    return [(first, last) for first, last in merged]


def if_range_allows(if_range: Optional[bytes], stored_headers: Headers) -> bool:
    """Whether the range condition (RFC 9110 §13.1.5) lets ``Range`` apply to the stored
    response: true without ``If-Range``; see the module notes for tags and dates."""
    if if_range is None:
        return True
    value = if_range.strip(_OWS)
    if value.startswith(b'"') or value.startswith(b"W/"):
        wanted = _single_tag(value)
        stored = _single_tag(first_field(stored_headers, b"etag"))
        return wanted is not None and stored is not None and not wanted[0] \
            and not stored[0] and wanted[1] == stored[1]
    when = parse_http_date(value)
    last_modified = parse_http_date(first_field(stored_headers, b"last-modified"))
    date = parse_http_date(first_field(stored_headers, b"date"))
    if when is None or last_modified is None or date is None:
        return False
    return when == last_modified and date - last_modified >= 1


def _single_tag(value: Optional[bytes]) -> Optional[Tuple[bool, bytes]]:
    """``(weak, opaque-tag)`` when ``value`` is exactly one entity-tag, else ``None``."""
    if value is None:
        return None
    value = value.strip(_OWS)
    tags = parse_entity_tags(value)
    if len(tags) != 1:
        return None
    weak, tag = tags[0]
    if len(value) != len(tag) + 2 + (2 if weak else 0):
        return None  # junk around the tag
    return weak, tag


def range_response(status: int, headers: Headers, body: bytes, request_headers: Headers,
                   method: bytes) -> Optional[Tuple[int, List[Tuple[bytes, bytes]], bytes]]:
    """The 206 or 416 answering a GET's ``Range`` from a stored 200 (``status``, ``headers``,
    complete ``body``), or ``None`` to serve the full 200. Returned headers are the stored
    ones without Content-Length / Content-Range (framing is the caller's) plus the new
    Content-Range / Content-Type."""
    plan = range_plan(status, headers, len(body), request_headers, method)
    if plan is None:
        return None
    answer, out, ranges = plan
    if answer == 416:
        return 416, out, b""
    if out is not None:
        first, last = ranges[0]
        return 206, out, body[first:last + 1]
    return _multipart(headers, body, ranges)


def range_plan(status: int, headers: Headers, length: int, request_headers: Headers,
               method: bytes):
    """What answers a GET's ``Range`` from a stored 200 of ``length`` bytes, without the
    body: None (serve the 200), ``(416, headers, None)``, ``(206, headers, [(first, last)])``
    for one range (headers as ``range_response`` gives them), or ``(206, None, ranges)`` for
    several (a multipart answer, which needs the body)."""
    if method != b"GET" or status != 200:
        return None
    range_lines = get_field(request_headers, b"range")
    if len(range_lines) != 1:
        return None  # absent, or a repeated singleton field: invalid, ignored
    if_range = get_field(request_headers, b"if-range")
    if len(if_range) > 1 or not if_range_allows(if_range[0] if if_range else None, headers):
        return None
    ranges = parse_range(range_lines[0], length)
    if ranges is None:
        return None
    if ranges == UNSATISFIABLE:
        out = [(name, value) for name, value in headers if name not in _NOT_IN_416]
        out.append((b"content-range", b"bytes */%d" % length))
        return 416, out, None
    if len(ranges) == 1:
        first, last = ranges[0]
        out = [(name, value) for name, value in headers if name not in _FRAMING]
        out.append((b"content-range", _content_range(first, last, length)))
        return 206, out, ranges
    if first_field(headers, b"content-encoding") is not None:
        return None
    return 206, None, ranges


def _multipart(headers: Headers, body: bytes,
               ranges: List[Range]) -> Tuple[int, List[Tuple[bytes, bytes]], bytes]:
    """The ``multipart/byteranges`` 206 (§14.6) of several ranges."""
    content_type = first_field(headers, b"content-type")
    boundary = multipart_boundary(body, ranges, content_type or b"")
    length = len(body)
    type_line = b"" if content_type is None else b"Content-Type: " + content_type + b"\r\n"
    chunks = []
    for first, last in ranges:
        chunks.append(b"--%s\r\n%sContent-Range: %s\r\n\r\n" % (
            boundary, type_line, _content_range(first, last, length)))
        chunks.append(body[first:last + 1])
        chunks.append(b"\r\n")
    chunks.append(b"--%s--\r\n" % boundary)
    out = [(name, value) for name, value in headers
           if name not in _FRAMING and name != b"content-type"]
    out.append((b"content-type", b"multipart/byteranges; boundary=" + boundary))
    return 206, out, b"".join(chunks)


def multipart_boundary(body: bytes, ranges: Sequence[Range], avoid: bytes = b"") -> bytes:
    """A deterministic boundary (49 ASCII characters) derived from ``body`` and ``ranges``
    that occurs neither in ``body`` nor in ``avoid``."""
    seed = hashlib.sha256(repr(list(ranges)).encode("ascii") + b"\n" + body).digest()
    counter = 0
    while True:
        candidate = b"revproxy-" + hashlib.sha256(
            seed + b"%d" % counter).hexdigest()[:40].encode("ascii")
        if candidate not in body and candidate not in avoid:
            return candidate
        counter += 1


def _content_range(first: int, last: int, length: int) -> bytes:
    return b"bytes %d-%d/%d" % (first, last, length)


def accept_ranges(headers: Headers) -> List[Tuple[bytes, bytes]]:
    """``headers`` with ``accept-ranges: bytes`` appended when no Accept-Ranges is present
    (RFC 9110 §14.3); for full 200s served from the cache, which can answer ranges."""
    out = list(headers)
    if first_field(out, b"accept-ranges") is None:
        out.append((b"accept-ranges", b"bytes"))
    return out
