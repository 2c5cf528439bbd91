"""Answering one request from a stored response, for its ``CacheStage``.

``serve_entry`` sends a stored (or still filling) response through the request's sink: Age and
Cache-Status added, the route's response headers applied, the client's conditionals answered
(304 / 412), a Range answered from the body (in memory, or in a file: one range streamed), the
serialised head of a full answer remembered on the entry for the hits of the same second.
``serve_part`` answers a single-range GET from a stored part (RFC 9111 §3.3). These are
functions of the stage (passed as ``stage``), not methods, only to keep ``server/caching.py``
to the stage's decisions; each call here replaces a method call one for one (the hit path).
"""

from __future__ import annotations

from revproxy.cache import ranges, validation
from revproxy.cache.bodies import BodyFill
from revproxy.cache.parts import part_response
from revproxy.cache.ranges import has_range
from revproxy.cache.status import cache_status
from revproxy.cache.validation import CONDITIONAL_FIELDS
from revproxy.server.streaming import BodyStreamer


def serve_entry(stage, entry, age, status_header, validated=False):
    """Answer from a stored response: Age, Cache-Status, client conditionals, HEAD;
    ``validated`` when this request just revalidated it (a 304 from the origin)."""
    head = stage.head
    if stage.state is not None:
        stage.state.served = status_header
    headers = stage.cache.served_headers(entry, stage.rt.via_field, validated) + [
        (b"age", b"%d" % max(0, int(age))), (b"cache-status", status_header)]
    routing = stage.owner.routing
    if routing is not None:  # the route's response headers apply to hits too
        headers = routing.response_headers(headers)
    conditional = None
    if any(h[0] in CONDITIONAL_FIELDS for h in head.headers):
        conditional = validation.client_conditional(head.headers, entry.headers, head.method)
    sink = stage.sink
    if conditional is not None:
        kept = [h for h in headers if h[0] not in (b"content-length", b"content-type",
                                                    b"content-encoding", b"content-range")]
        sink.start(conditional, b"Not Modified" if conditional == 304
                   else b"Precondition Failed", kept, 0 if conditional == 412 else None)
        sink.finish()
        return
    body = entry.body
    in_file = not isinstance(body, bytes)
    length = _full_length(body)  # None: a fill of a length still unknown
    ranged = None
    if has_range(head.headers) and in_file and length is not None:
        plan = ranges.range_plan(entry.status, headers, length, head.headers,
                                 head.method)
        if plan is not None and plan[1] is not None:  # one range, or none satisfiable
            status, headers, spans = plan
            first, last = spans[0] if spans else (0, -1)
            sink.start(status, b"Partial Content" if status == 206
                       else b"Range Not Satisfiable", headers, last - first + 1)
            _stream(stage, body, first, last + 1)
            return
        # several ranges of a body in a file: the 200 (RFC 9110 §14.2 allows it)
    elif has_range(head.headers):
        ranged = ranges.range_response(entry.status, headers, body, head.headers,
                                       head.method)
    if ranged is not None:
        status, headers, body = ranged
        sink.start(status, b"Partial Content" if status == 206
                   else b"Range Not Satisfiable", headers, len(body))
        sink.write(body)
        sink.finish()
        return
    if isinstance(body, BodyFill):  # still filling: no remembered head
        sink.start(entry.status, entry.reason, headers, length)
        _stream(stage, body, 0, length)
        return
    _start_full(stage, entry, headers, int(age), status_header)
    if in_file:
        _stream(stage, body, 0, len(body))
        return
    sink.write(body)
    sink.finish()


def serve_part(stage, entry, now):
    """Answer a single-range GET from a stored part; False when it cannot."""
    cache, head = stage.cache, stage.head
    decision = cache.decide(entry, head.headers, now)
    if not decision.usable or head.method != b"GET":
        return False
    answer = part_response(entry, head.headers)
    if answer is None:
        return False
    status, content_range, body = answer
    cache.metrics["hits"] += 1
    stage.state.served = cache_status(hit=True, ttl=decision.ttl, detail="partial")
    headers = cache.served_headers(entry, stage.rt.via_field) + content_range + [
        (b"age", b"%d" % max(0, int(decision.age))), (b"cache-status", stage.state.served)]
    stage.sink.start(status, b"Partial Content", headers, len(body))
    stage.sink.write(body)
    stage.sink.finish()
    return True


def _stream(stage, source, start, end):
    """Send bytes [start, end) of a body kept in a file, chunk by chunk, never whole."""
    if stage.head.method == b"HEAD" or (end is not None and end <= start):
        stage.sink.finish()
        return
    BodyStreamer(stage.sink, source, start, end).start()


def _start_full(stage, entry, headers, age, status_header):
    """Start a full 200-style answer from ``entry``; the serialised head is remembered (on
    the entry) for the hits that follow within the same second (same Age, same
    Cache-Status)."""
    sink, head = stage.sink, stage.head
    if stage.rt.stats.shutting_down or entry.status in (204, 304) or entry.status < 200 \
            or stage.owner.routing is not None:  # per-request header values: never memoised
        sink.start(entry.status, entry.reason, headers, len(entry.body))
        return
    memo = stage.cache.memo(entry)
    heads = memo.heads
    key = (age, status_header, head.method, head.version, sink.keep_alive)
    if heads is not None:
        known = heads.get(key)
        if known is not None:
            sink.start_prepared(entry.status, known, len(entry.body))
            return
    sink.start(entry.status, entry.reason, headers, len(entry.body))
    if sink.pending_head is not None:
        if heads is None or len(heads) >= memo.MAX_HEADS:
            heads = memo.heads = {}
        heads[key] = sink.pending_head


def _full_length(body):
    """The whole length of a body (bytes or in a file), or None while a fill of unknown
    length is open."""
    if isinstance(body, BodyFill):
        return body.length if body.length is not None else body.expected
    return len(body)
