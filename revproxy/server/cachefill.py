"""Filling the cache from the origin's answer to one request, for its ``CacheStage``.

A body within ``max_object`` is teed in memory and stored whole when the exchange ends
(``store_teed``: a response, or a 206 combined with the parts stored before it). A larger
GET 200 goes to a file of the store as it arrives (``begin_body_fill``, ``write_body_fill``:
the origin is paused while the disk lags behind, dropped past the store's own
``max_object``) and is stored once every byte is on disk (``end_body_fill``); other requests
read along meanwhile (``HttpCache.filling``). These are functions of the stage (passed as
``stage``), kept apart from its decisions in ``server/caching.py``.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.cache import storing
from revproxy.cache.bodies import FILL_BACKLOG

log = Logger(namespace="revproxy.cache")


def begin_body_fill(stage, head, expected):
    """Start writing this 200's body to a file of the store (True), or not (False: not
    a streaming store, too large for it, not a plain GET 200)."""
    state, route = stage.state, stage.ctx.route
    if head.status != 200 or stage.head.method != b"GET" or state.part:
        return False
    fill = stage.cache.begin_stream(
        state.key, stage.head.headers, head.status, head.reason,
        stage.rt.cache_headers(head.headers), state.request_time, route.cache_ttl,
        route.cache_set_cookie, expected)
    state.fill = fill
    return fill is not None


def write_body_fill(stage, data):
    state, cache = stage.state, stage.cache
    fill = state.fill
    if fill.queued + len(data) > cache.store.max_object:
        drop_body_fill(stage)
        return
    fill.write(data)
    upstream = stage.owner.exchange.upstream if stage.owner.exchange is not None else None
    if fill.backlog > FILL_BACKLOG and upstream is not None and fill.on_drained is None:
        # the disk is slower than the origin: hold the origin, not the bytes
        upstream.pauseProducing()
        fill.on_drained = upstream.resumeProducing


def drop_body_fill(stage):
    state = stage.state
    fill, state.fill = state.fill, None
    state.store = False
    if fill is not None:
        fill.fail()
        stage.cache.end_stream(state.key, fill)


def end_body_fill(stage):
    """The body is complete: store the entry once every byte is on disk."""
    state, cache, head = stage.state, stage.cache, stage.state.head
    fill, state.fill = state.fill, None
    route = stage.ctx.route

    def store(body):
        return storing.put_response(
            cache, state.key, stage.head.headers, head.status, head.reason,
            stage.rt.cache_headers(head.headers), body, state.request_time,
            stage.rt.clock.seconds(), route.cache_ttl, route.cache_set_cookie)

    d = fill.end()
    d.addCallback(store)
    d.addErrback(lambda f: log.warn("cache fill of {key!r} not stored: {error}",
                                    key=state.key, error=f.value))
    d.addBoth(lambda _: cache.end_stream(state.key, fill))


def store_teed(stage):
    """The exchange completed with its body teed in memory: store it (a 206 as a part)."""
    state, rt, route = stage.state, stage.rt, stage.ctx.route
    head = state.head
    if state.part:
        storing.put_part(
            stage.cache, state.key, stage.head.headers, rt.cache_headers(head.headers),
            b"".join(state.tee), state.request_time, rt.clock.seconds(),
            route.cache_set_cookie)
    else:
        storing.put_response(
            stage.cache, state.key, stage.head.headers, head.status, head.reason,
            rt.cache_headers(head.headers), b"".join(state.tee), state.request_time,
            rt.clock.seconds(), route.cache_ttl, route.cache_set_cookie)
    state.tee = None
