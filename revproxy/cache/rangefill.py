"""What a ranged miss leaves the cache to fetch in the background (pure).

A ranged request the cache cannot answer goes to the origin as is, so the client never waits
for a whole video. When the origin answers 206, ``range_fill_head`` says what to fetch for the
cache besides, never what it has or is getting now, and nothing for an object longer than
``range_fill_max``: while parts are kept (RFC 9111 §3.3), the first range missing besides
this one (a single range, stored as a part); when they are not (no strong ETag...), the
whole 200.
"""

from __future__ import annotations

from revproxy.cache.directives import first_field
from revproxy.cache.parts import Parts, parse_content_range


def range_fill_head(head, response_headers, stored_part, keeps_parts, max_length):
    """The request head to fetch in the background after the 206 answering ``head`` (a
    request head), or None when there is nothing to fetch. ``stored_part`` is the 206 entry
    found for the key (or None), ``keeps_parts`` whether this 206 is being stored as a part,
    ``max_length`` the cache's ``range_fill_max``."""
    content_range = parse_content_range(first_field(response_headers, b"content-range"))
    if content_range is None:
        return None
    first, last, length = content_range
    if length > max_length:
        return None
    gaps = [(0, length - 1)]
    if stored_part is not None:
        try:
            gaps = Parts.unpack(stored_part.body).missing()
        except ValueError:
            pass
    gaps = missing_besides(gaps, first, last)
    if not gaps:
        return None
    if keeps_parts:  # parts are kept: ask only for bytes the cache lacks
        return with_range(head, gaps[0])
    return without_range(head)  # they are not (no strong ETag...): the whole 200


def missing_besides(gaps, first, last):
    """The inclusive ranges of ``gaps`` (sorted, disjoint) without ``first..last``."""
    out = []
    for a, b in gaps:
        if b < first or a > last:
            out.append((a, b))
            continue
        if a < first:
            out.append((a, first - 1))
        if b > last:
            out.append((last + 1, b))
    return out


def with_range(head, span):
    """A copy of a request head asking for the single range ``span`` (first, last)."""
    headers = [h for h in head.headers if h[0] not in (b"range", b"if-range")]
    return head.replace(headers=headers + [(b"range", b"bytes=%d-%d" % span)])


def without_range(head):
    """A copy of a request head asking for the whole representation."""
    return head.replace(headers=[h for h in head.headers if h[0] not in (b"range", b"if-range")])
