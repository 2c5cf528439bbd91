"""The cache tier in the request path, on a fake reactor with the memory store."""

from __future__ import annotations

from twisted.internet import error
from twisted.trial import unittest

from tests.unit.world import World, config_dict


def get(path=b"/a", extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: a.test\r\n" + extra + b"\r\n"


def response(body=b"hello", headers=b"Cache-Control: max-age=60\r\n", status=b"200 OK"):
    return (b"HTTP/1.1 " + status + b"\r\n" + headers
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def header(data, name):
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.lower() == name:
            return value.strip()
    return None


class CacheWorld(World):
    def __init__(self, testcase, route=None, **cache):
        cache.setdefault("store", "memory")
        sections = {"cache": cache}
        if route is not None:
            sections["routes"] = [dict(name="r", pool="main", **route)]
        World.__init__(self, testcase, config_dict(**sections))

    def fetch(self, request, answer=None, client=None):
        """Send ``request``; if it reaches a backend (new or pooled connection), answer with
        ``answer``. Returns what the client received and what the origin was sent (or None)."""
        proto, transport = client or self.client()
        mark = len(self._last[1].value()) if self._last is not None else 0
        proto.dataReceived(request)
        asked = None
        if self.pending_connects:
            backend, upstream = self.accept_backend()
            asked = upstream.value()
        elif self._last is not None and len(self._last[1].value()) > mark:
            backend, upstream = self._last
            asked = upstream.value()[mark:]
        if asked is not None and answer is not None:
            backend.dataReceived(answer)
        return transport.value(), asked

    _last = None

    def accept_backend(self):
        self._last = World.accept_backend(self)
        return self._last


class HitMissTests(unittest.TestCase):
    def test_miss_is_stored_then_hit_from_cache(self):
        """The first GET goes to the origin and is stored; the second is a hit with Age."""
        world = CacheWorld(self)
        first, asked = world.fetch(get(), response())
        self.assertIsNotNone(asked)
        self.assertEqual(header(first, b"cache-status"), b"revproxy; fwd=uri-miss; fwd-status=200; stored")
        world.reactor.advance(5)
        second, asked = world.fetch(get())
        self.assertIsNone(asked, "no origin contact on a fresh hit")
        self.assertTrue(second.startswith(b"HTTP/1.1 200 OK"))
        self.assertTrue(second.endswith(b"hello"))
        self.assertEqual(header(second, b"age"), b"5")
        self.assertEqual(header(second, b"cache-status"), b"revproxy; hit; ttl=55")

    def test_private_and_unlabelled_responses_are_not_stored(self):
        """private is never stored by a shared cache; a response that says nothing neither."""
        world = CacheWorld(self)
        for headers in (b"Cache-Control: private, max-age=60\r\n", b""):
            first, _ = world.fetch(get(b"/p"), response(headers=headers))
            self.assertEqual(header(first, b"cache-status"), b"revproxy; fwd=uri-miss; fwd-status=200")
            again, asked = world.fetch(get(b"/p"), response(headers=headers))
            self.assertIsNotNone(asked)

    def test_head_answered_from_stored_get(self):
        """A HEAD after a stored GET is answered from the cache, with no body."""
        world = CacheWorld(self)
        world.fetch(get(), response())
        answer, asked = world.fetch(b"HEAD /a HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertIsNone(asked)
        self.assertEqual(header(answer, b"content-length"), b"5")
        self.assertTrue(answer.endswith(b"\r\n\r\n"))

    def test_client_conditional_answered_304_from_fresh_entry(self):
        """If-None-Match matching the stored ETag gets 304 from the cache."""
        world = CacheWorld(self)
        world.fetch(get(), response(headers=b'Cache-Control: max-age=60\r\nETag: "v1"\r\n'))
        answer, asked = world.fetch(get(extra=b'If-None-Match: "v1"\r\n'))
        self.assertIsNone(asked)
        self.assertTrue(answer.startswith(b"HTTP/1.1 304 "))
        self.assertEqual(header(answer, b"etag"), b'"v1"')

    def test_only_if_cached_miss_is_504(self):
        """only-if-cached with nothing stored: 504, the origin is not contacted."""
        world = CacheWorld(self)
        answer, asked = world.fetch(get(extra=b"Cache-Control: only-if-cached\r\n"))
        self.assertIsNone(asked)
        self.assertTrue(answer.startswith(b"HTTP/1.1 504 "))

    def test_tag_headers_are_not_relayed(self):
        """Cache-Tag / Surrogate-Key are for purging: stored as tags, not sent to clients."""
        world = CacheWorld(self)
        first, _ = world.fetch(get(), response(headers=b"Cache-Control: max-age=60\r\nCache-Tag: a b\r\n"))
        self.assertIsNone(header(first, b"cache-tag"))
        second, _ = world.fetch(get())
        self.assertIsNone(header(second, b"cache-tag"))


class RevalidationTests(unittest.TestCase):
    def test_stale_entry_revalidated_with_304(self):
        """Past its max-age the entry is revalidated with If-None-Match; a 304 refreshes it
        and the client gets the stored body."""
        world = CacheWorld(self)
        world.fetch(get(), response(headers=b'Cache-Control: max-age=10\r\nETag: "v1"\r\n'))
        world.reactor.advance(11)
        answer, asked = world.fetch(
            get(), b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nCache-Control: max-age=10\r\n\r\n')
        self.assertIn(b'if-none-match: "v1"', asked)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"))
        self.assertTrue(answer.endswith(b"hello"))
        self.assertEqual(header(answer, b"cache-status"), b"revproxy; fwd=stale; fwd-status=304")
        again, asked = world.fetch(get())
        self.assertIsNone(asked, "fresh again after the 304")

    def test_request_no_cache_forces_revalidation(self):
        """A client's no-cache sends a conditional request even for a fresh entry."""
        world = CacheWorld(self)
        world.fetch(get(), response(headers=b'Cache-Control: max-age=60\r\nETag: "v1"\r\n'))
        answer, asked = world.fetch(get(extra=b"Cache-Control: no-cache\r\n"),
                                    b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')
        self.assertIn(b'if-none-match: "v1"', asked)
        self.assertEqual(header(answer, b"cache-status"), b"revproxy; fwd=request; fwd-status=304")

    def test_stale_if_error_serves_stale_on_5xx(self):
        """A stale entry allowing stale-if-error is served when the origin answers 503."""
        world = CacheWorld(self)
        world.fetch(get(), response(
            headers=b'Cache-Control: max-age=10, stale-if-error=60\r\nETag: "v1"\r\n'))
        world.reactor.advance(20)
        answer, asked = world.fetch(get(), response(b"down", headers=b"", status=b"503 Busy"))
        self.assertIsNotNone(asked)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"))
        self.assertTrue(answer.endswith(b"hello"))
        self.assertIn(b"stale-if-error", header(answer, b"cache-status"))

    def test_stale_if_error_on_connect_failure(self):
        """The same when the origin cannot even be reached."""
        world = CacheWorld(self)
        world.fetch(get(), response(
            headers=b'Cache-Control: max-age=10, stale-if-error=60\r\nETag: "v1"\r\n'
                    b"Connection: close\r\n"))
        world.reactor.advance(20)
        proto, transport = world.client()
        proto.dataReceived(get())
        world.fail_connect(error.ConnectionRefusedError())
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"))


class VaryTests(unittest.TestCase):
    def test_variants_by_accept_encoding(self):
        """Vary: Accept-Encoding keeps one variant per (normalised) Accept-Encoding."""
        world = CacheWorld(self)
        vary = b"Cache-Control: max-age=60\r\nVary: Accept-Encoding\r\n"
        world.fetch(get(extra=b"Accept-Encoding: gzip, br\r\n"), response(b"zipped", vary))
        hit, asked = world.fetch(get(extra=b"Accept-Encoding: br,gzip\r\n"))
        self.assertIsNone(asked, "equivalent Accept-Encoding selects the stored variant")
        self.assertTrue(hit.endswith(b"zipped"))
        miss, asked = world.fetch(get(extra=b"Accept-Encoding: identity\r\n"), response(b"plain", vary))
        self.assertIsNotNone(asked)
        self.assertIn(b"fwd=vary-miss", header(miss, b"cache-status"))
        plain, asked = world.fetch(get(extra=b"Accept-Encoding: identity\r\n"))
        self.assertIsNone(asked)
        self.assertTrue(plain.endswith(b"plain"))


class CollapseAndInvalidateTests(unittest.TestCase):
    def test_concurrent_misses_collapse_into_one_fetch(self):
        """Two simultaneous misses for one URL: one origin fetch, both answered."""
        world = CacheWorld(self)
        a, a_t = world.client()
        b, b_t = world.client()
        a.dataReceived(get())
        b.dataReceived(get())
        self.assertEqual(world.pending_connects, 1)
        backend, upstream = world.accept_backend()
        backend.dataReceived(response(b"once"))
        self.assertTrue(a_t.value().endswith(b"once"))
        self.assertTrue(b_t.value().endswith(b"once"))
        self.assertTrue(header(b_t.value(), b"cache-status").startswith(b"revproxy; hit"))
        self.assertIn(b"; collapsed", header(b_t.value(), b"cache-status"))
        self.assertEqual(world.runtime.cache.metrics["collapsed"], 1)

    def test_collapsed_waiter_goes_to_origin_after_lock_timeout(self):
        """A waiter whose fetch takes longer than lock_timeout goes to the origin itself."""
        world = CacheWorld(self, lock_timeout=2)
        a, a_t = world.client()
        b, b_t = world.client()
        a.dataReceived(get())
        b.dataReceived(get())
        world.reactor.advance(2.1)
        self.assertEqual(world.pending_connects, 2)

    def test_successful_post_invalidates(self):
        """A successful POST to a URL drops its stored response."""
        world = CacheWorld(self)
        world.fetch(get(), response())
        world.fetch(b"POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\nx",
                    b"HTTP/1.1 204 No Content\r\n\r\n")
        answer, asked = world.fetch(get(), response(b"new"))
        self.assertIsNotNone(asked)
        self.assertTrue(answer.endswith(b"new"))

    def test_successful_extension_method_invalidates(self):
        """RFC 9111 §4.4: every method not known to be safe is unsafe, M-SEARCH included; a
        known-safe extension (PROPFIND) invalidates nothing."""
        world = CacheWorld(self)
        world.fetch(get(), response())
        world.fetch(b"PROPFIND /a HTTP/1.1\r\nHost: a.test\r\n\r\n",
                    b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 0\r\n\r\n")
        _, asked = world.fetch(get())
        self.assertIsNone(asked, "PROPFIND is safe: still a hit")
        world.fetch(b"M-SEARCH /a HTTP/1.1\r\nHost: a.test\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        answer, asked = world.fetch(get(), response(b"new"))
        self.assertIsNotNone(asked, "M-SEARCH invalidated the stored response")
        self.assertTrue(answer.endswith(b"new"))

    def test_truncated_response_is_not_stored(self):
        """A response cut short by the origin is never stored."""
        world = CacheWorld(self)
        proto, transport = world.client()
        proto.dataReceived(get())
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 10\r\n\r\nabc")
        backend.connectionLost(error.ConnectionDone())
        answer, asked = world.fetch(get(), response())
        self.assertIsNotNone(asked, "nothing was stored")


class StaleWhileRevalidateTests(unittest.TestCase):
    def test_stale_served_at_once_and_revalidated_in_the_background(self):
        """Within stale-while-revalidate the client gets the stored response immediately; one
        background conditional request refreshes the entry for the next clients."""
        world = CacheWorld(self)
        world.fetch(get(), response(
            headers=b'Cache-Control: max-age=10, stale-while-revalidate=30\r\nETag: "v1"\r\n'
                    b"Connection: close\r\n"))
        world.reactor.advance(15)
        proto, transport = world.client()
        proto.dataReceived(get())
        answer = transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"))
        self.assertIn(b"stale-while-revalidate", header(answer, b"cache-status"))
        self.assertEqual(world.pending_connects, 1, "one background revalidation")
        other, other_t = world.client()
        other.dataReceived(get())
        self.assertEqual(world.pending_connects, 1, "not a second one while it runs")
        backend, upstream = world.accept_backend()
        self.assertIn(b'if-none-match: "v1"', upstream.value())
        backend.dataReceived(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n'
                             b"Cache-Control: max-age=10, stale-while-revalidate=30\r\n\r\n")
        again, asked = world.fetch(get())
        self.assertIsNone(asked)
        self.assertEqual(header(again, b"cache-status"), b"revproxy; hit; ttl=10")


class SweeperTests(unittest.TestCase):
    def test_sweeper_calls_sweep_periodically_and_stops(self):
        """The store's sweep() runs every interval on the clock; stop leaves no timer."""
        from twisted.internet.task import Clock

        from revproxy.cache.engine import StoreSweeper

        class Store:
            swept = 0

            def sweep(self):
                self.swept += 1

        clock, store = Clock(), Store()
        sweeper = StoreSweeper(clock, store, interval=60)
        sweeper.start()
        clock.advance(59)
        self.assertEqual(store.swept, 0)
        for _ in range(3):
            clock.advance(60)
        self.assertEqual(store.swept, 3)
        sweeper.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class RangeTests(unittest.TestCase):
    def test_range_answered_206_from_complete_stored_response(self):
        """A Range on a stored 200 gets 206 with the slice; a bad one the whole 200."""
        world = CacheWorld(self)
        world.fetch(get(), response(b"0123456789"))
        part, asked = world.fetch(get(extra=b"Range: bytes=2-5\r\n"))
        self.assertIsNone(asked)
        self.assertTrue(part.startswith(b"HTTP/1.1 206 "))
        self.assertEqual(header(part, b"content-range"), b"bytes 2-5/10")
        self.assertTrue(part.endswith(b"\r\n\r\n2345"))
        full, _ = world.fetch(get(extra=b"Range: lines=1-2\r\n"))
        self.assertTrue(full.startswith(b"HTTP/1.1 200 "))
        self.assertEqual(header(full, b"accept-ranges"), b"bytes")
        nope, _ = world.fetch(get(extra=b"Range: bytes=50-60\r\n"))
        self.assertTrue(nope.startswith(b"HTTP/1.1 416 "))

    def test_ranged_miss_relayed_and_whole_object_fetched_in_background(self):
        """On a miss the Range goes to the origin and its 206 is relayed at once; then,
        the object being small (range_fill_max), a background request without Range fetches
        the whole object for the cache."""
        world = CacheWorld(self)
        proto, transport = world.client()
        proto.dataReceived(get(extra=b"Range: bytes=0-3\r\n"))
        self.assertEqual(world.pending_connects, 1, "one origin request until its answer")
        ranged, ranged_t = world.accept_backend()
        self.assertIn(b"range: bytes=0-3", ranged_t.value().lower())
        ranged.dataReceived(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/10\r\n"
                            b"Cache-Control: max-age=60\r\nContent-Length: 4\r\n\r\n0123")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 206 "))
        self.assertEqual(world.pending_connects, 1)
        whole, whole_t = world.accept_backend()
        self.assertNotIn(b"range:", whole_t.value().lower())
        whole.dataReceived(response(b"0123456789"))
        part, asked = world.fetch(get(extra=b"Range: bytes=6-9\r\n"))
        self.assertIsNone(asked)
        self.assertTrue(part.endswith(b"6789"))

    def _ranged_miss(self, world, length, etag=b""):
        proto, transport = world.client()
        proto.dataReceived(get(extra=b"Range: bytes=0-3\r\n"))
        ranged, _ = world.accept_backend()
        ranged.dataReceived(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/%d\r\n"
                            b"%sCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\n0123"
                            % (length, etag))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 206 "))

    def test_no_background_fetch_above_range_fill_max(self):
        """A ranged miss of an object larger than range_fill_max fetches nothing more: a
        whole video is not pulled from the origin for one seek."""
        world = CacheWorld(self, range_fill_max="1k")
        self._ranged_miss(world, 2048)
        self.assertEqual(world.pending_connects, 0)
        world = CacheWorld(self, range_fill_max=0)
        self._ranged_miss(world, 10)
        self.assertEqual(world.pending_connects, 0)

    def test_background_fetch_asks_only_for_missing_bytes(self):
        """With a strong ETag the 206 is kept as a part; the background request asks for
        the bytes missing (4-9), never again for 0-3, and completes the entry."""
        world = CacheWorld(self)
        self._ranged_miss(world, 10, b'ETag: "v1"\r\n')
        self.assertEqual(world.pending_connects, 1)
        rest, rest_t = world.accept_backend()
        self.assertIn(b"range: bytes=4-9\r\n", rest_t.value().lower())
        rest.dataReceived(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\n"
                          b'ETag: "v1"\r\nCache-Control: max-age=60\r\nContent-Length: 6\r\n'
                          b"\r\n456789")
        whole, asked = world.fetch(get())
        self.assertIsNone(asked, "the parts made a whole 200")
        self.assertTrue(whole.startswith(b"HTTP/1.1 200 "))
        self.assertTrue(whole.endswith(b"0123456789"))


class PerRouteKeyTests(unittest.TestCase):
    def test_route_key_overrides(self):
        """A route may ignore the host and the query in its keys; another keeps the defaults."""
        data = config_dict(cache={"store": "memory"}, routes=[
            {"name": "shared", "path_prefix": "/static/", "pool": "main",
             "cache_key_host": False, "cache_key_query": "ignore"},
            {"name": "rest", "pool": "main"}])
        world = World(self, data)
        world_fetch = CacheWorld.fetch.__get__(world)
        world._last = None
        world_fetch(b"GET /static/a.css?v=1 HTTP/1.1\r\nHost: one.test\r\n\r\n", response(b"css"))
        hit, asked = world_fetch(b"GET /static/a.css?v=2 HTTP/1.1\r\nHost: two.test\r\n\r\n")
        self.assertIsNone(asked, "same key across hosts and queries on that route")
        world_fetch(b"GET /x?v=1 HTTP/1.1\r\nHost: one.test\r\n\r\n", response(b"x"))
        miss, asked = world_fetch(b"GET /x?v=2 HTTP/1.1\r\nHost: one.test\r\n\r\n", response(b"x2"))
        self.assertIsNotNone(asked, "the default key keeps the query")


class ConfiguredStaleTests(unittest.TestCase):
    def test_configured_stale_if_error_applies_when_the_response_says_nothing(self):
        """[cache] stale_if_error serves stale on a 5xx for a response without the directive,
        but not for one that says must-revalidate."""
        world = CacheWorld(self, stale_if_error=60)
        world.fetch(get(b"/a"), response(headers=b'Cache-Control: max-age=10\r\nETag: "a"\r\n'))
        world.fetch(get(b"/m"), response(
            headers=b'Cache-Control: max-age=10, must-revalidate\r\nETag: "m"\r\n'))
        world.reactor.advance(20)
        served, _ = world.fetch(get(b"/a"), response(b"x", headers=b"", status=b"503 Busy"))
        self.assertTrue(served.startswith(b"HTTP/1.1 200 OK"))
        refused, _ = world.fetch(get(b"/m"), response(b"x", headers=b"", status=b"503 Busy"))
        self.assertTrue(refused.startswith(b"HTTP/1.1 503 "))

    def test_configured_stale_while_revalidate(self):
        """[cache] stale_while_revalidate serves stale at once and revalidates in the background."""
        world = CacheWorld(self, stale_while_revalidate=30)
        world.fetch(get(), response(headers=b'Cache-Control: max-age=10\r\nETag: "v"\r\n'
                                            b"Connection: close\r\n"))
        world.reactor.advance(15)
        proto, transport = world.client()
        proto.dataReceived(get())
        self.assertIn(b"stale-while-revalidate", header(transport.value(), b"cache-status"))
        self.assertEqual(world.pending_connects, 1)


class RememberedHeadTests(unittest.TestCase):
    def test_hits_in_one_second_share_a_head_but_not_across_methods_or_versions(self):
        """Repeated hits reuse the serialised head; a HEAD, an HTTP/1.0 client or a later
        second (new Age) still get their own correct head."""
        world = CacheWorld(self)
        world.fetch(get(), response(b"abc"))
        world.reactor.advance(1)
        one, _ = world.fetch(get())
        two, _ = world.fetch(get())
        self.assertEqual(one, two)
        head_only, _ = world.fetch(b"HEAD /a HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertTrue(head_only.endswith(b"\r\n\r\n"))
        old, _ = world.fetch(b"GET /a HTTP/1.0\r\nHost: a.test\r\n\r\n")
        self.assertEqual(header(old, b"connection"), b"close")
        self.assertTrue(old.endswith(b"abc"))
        world.reactor.advance(2)
        later, _ = world.fetch(get())
        self.assertEqual(header(later, b"age"), b"3")
        self.assertTrue(later.endswith(b"abc"))


class TargetedCacheControlTests(unittest.TestCase):
    """RFC 9213: CDN-Cache-Control (and our own field, first) governs this cache over
    Cache-Control and Expires; the client still gets the origin's Cache-Control."""

    def test_cdn_private_or_no_cache_overrides_cache_control_max_age(self):
        world = CacheWorld(self)
        first, _ = world.fetch(get(b"/p"), response(
            headers=b"Cache-Control: max-age=60\r\nCDN-Cache-Control: private\r\n"))
        self.assertNotIn(b"stored", header(first, b"cache-status"))
        _, asked = world.fetch(get(b"/p"), response())
        self.assertIsNotNone(asked, "CDN-Cache-Control: private is never stored")
        world.fetch(get(b"/n"), response(
            headers=b'Cache-Control: max-age=60\r\nCDN-Cache-Control: no-cache\r\nETag: "1"\r\n'))
        _, asked = world.fetch(get(b"/n"), b"HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n")
        self.assertIsNotNone(asked, "no-cache: revalidated every time")
        self.assertIn(b"if-none-match: \"1\"", asked.lower())

    def test_cdn_max_age_caches_despite_cache_control_no_store(self):
        world = CacheWorld(self)
        world.fetch(get(), response(
            headers=b"Cache-Control: no-store\r\nCDN-Cache-Control: max-age=60\r\n"))
        world.reactor.advance(10)
        second, asked = world.fetch(get())
        self.assertIsNone(asked, "stored for CDN-Cache-Control's 60 s")
        self.assertEqual(header(second, b"cache-control"), b"no-store")  # for the browser
        self.assertEqual(header(second, b"cdn-cache-control"), b"max-age=60")  # relayed
        self.assertEqual(header(second, b"cache-status"), b"revproxy; hit; ttl=50")

    def test_cdn_max_age_ignores_expires(self):
        world = CacheWorld(self)
        world.fetch(get(), response(
            headers=b"Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nCDN-Cache-Control: max-age=60\r\n"))
        _, asked = world.fetch(get())
        self.assertIsNone(asked)

    def test_our_field_wins_and_is_never_relayed(self):
        world = CacheWorld(self)
        first, _ = world.fetch(get(), response(
            headers=b"CDN-Cache-Control: max-age=600\r\nRevproxy-Cache-Control: max-age=5\r\n"))
        self.assertIsNone(header(first, b"revproxy-cache-control"))
        self.assertEqual(header(first, b"cdn-cache-control"), b"max-age=600")
        world.reactor.advance(2)
        second, asked = world.fetch(get())
        self.assertIsNone(asked)
        self.assertIsNone(header(second, b"revproxy-cache-control"))
        self.assertEqual(header(second, b"cache-status"), b"revproxy; hit; ttl=3")
        world.reactor.advance(4)
        _, asked = world.fetch(get(), response())
        self.assertIsNotNone(asked, "our field's 5 s, not CDN-Cache-Control's 600 s")

    def test_an_invalid_targeted_field_falls_back_to_cache_control(self):
        world = CacheWorld(self)
        world.fetch(get(), response(
            headers=b"Cache-Control: max-age=60\r\nCDN-Cache-Control: Private\r\n"))
        _, asked = world.fetch(get())
        self.assertIsNone(asked, "an invalid dictionary is ignored: Cache-Control applies")

    def test_targeted_fields_are_configurable(self):
        world = CacheWorld(self, targeted_fields=[], strip_targeted_fields=["cdn-cache-control"])
        first, _ = world.fetch(get(), response(
            headers=b"Cache-Control: max-age=60\r\nCDN-Cache-Control: private\r\n"))
        self.assertIsNone(header(first, b"cdn-cache-control"), "stripped as configured")
        _, asked = world.fetch(get())
        self.assertIsNone(asked, "CDN-Cache-Control not honoured when not listed")


class QualifiedDirectiveTests(unittest.TestCase):
    """RFC 9111 §5.2.2.4 / §5.2.2.7: no-cache="f" and private="f" restrict fields only."""

    def test_private_field_is_stored_without_that_field(self):
        world = CacheWorld(self)
        first, _ = world.fetch(get(), response(
            headers=b'Cache-Control: max-age=60, private="x-user"\r\nX-User: alice\r\n'))
        self.assertEqual(header(first, b"x-user"), b"alice")  # the origin's answer, relayed
        second, asked = world.fetch(get())
        self.assertIsNone(asked, "stored despite the qualified private")
        self.assertIsNone(header(second, b"x-user"), "never served from the cache")

    def test_no_cache_field_is_left_out_of_hits_but_sent_after_revalidation(self):
        world = CacheWorld(self)
        world.fetch(get(), response(headers=b'Cache-Control: max-age=10, no-cache="x-token"\r\n'
                                            b'ETag: "1"\r\nX-Token: t1\r\n'))
        hit, asked = world.fetch(get())
        self.assertIsNone(asked, "qualified no-cache: the response itself is fresh")
        self.assertIsNone(header(hit, b"x-token"))
        world.reactor.advance(11)
        revalidated, asked = world.fetch(get(), b'HTTP/1.1 304 Not Modified\r\nETag: "1"\r\n'
                                                b"X-Token: t2\r\n\r\n")
        self.assertIsNotNone(asked)
        self.assertEqual(header(revalidated, b"x-token"), b"t2", "validated by this request")
        hit, asked = world.fetch(get())
        self.assertIsNone(asked)
        self.assertIsNone(header(hit, b"x-token"))

    def test_private_set_cookie_makes_a_cookie_response_storable(self):
        world = CacheWorld(self)
        world.fetch(get(), response(headers=b'Cache-Control: max-age=60, private="set-cookie"\r\n'
                                            b"Set-Cookie: s=1\r\n"))
        hit, asked = world.fetch(get())
        self.assertIsNone(asked)
        self.assertIsNone(header(hit, b"set-cookie"))


class SetCookieRouteOptionTests(unittest.TestCase):
    COOKIE = b"Cache-Control: max-age=60\r\nSet-Cookie: s=secret\r\n"

    def test_default_refuses_to_store(self):
        world = CacheWorld(self)
        world.fetch(get(), response(headers=self.COOKIE))
        _, asked = world.fetch(get(), response(headers=self.COOKIE))
        self.assertIsNotNone(asked)

    def test_strip_stores_without_the_cookie(self):
        world = CacheWorld(self, route={"cache_set_cookie": "strip"})
        first, _ = world.fetch(get(), response(headers=self.COOKIE))
        self.assertEqual(header(first, b"set-cookie"), b"s=secret")
        hit, asked = world.fetch(get())
        self.assertIsNone(asked)
        self.assertIsNone(header(hit, b"set-cookie"))

    def test_keep_stores_and_serves_the_cookie(self):
        world = CacheWorld(self, route={"cache_set_cookie": "keep"})
        world.fetch(get(), response(headers=self.COOKIE))
        hit, asked = world.fetch(get())
        self.assertIsNone(asked)
        self.assertEqual(header(hit, b"set-cookie"), b"s=secret")


class PartialContentTests(unittest.TestCase):
    """RFC 9111 §3.3-3.4: 206s with a strong validator are stored as parts, combined, and
    later ranges within a part are answered without the origin."""

    BODY = b"0123456789abcdefghij"

    def part(self, first, last, etag=b'"v1"'):
        return (b"HTTP/1.1 206 Partial Content\r\nCache-Control: max-age=60\r\nETag: %s\r\n"
                b"Connection: close\r\n"
                b"Content-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n%s"
                % (etag, first, last, len(self.BODY), last - first + 1,
                   self.BODY[first:last + 1]))

    def ranged(self, world, first, last, answer=None):
        """A ranged GET; the origin (if asked) answers ``answer``; the background whole-object
        fetch the miss starts is answered 503 (so only parts are stored). Returns (client's
        bytes, the ranged request the origin saw or None)."""
        proto, transport = world.client()
        before = world.pending_connects
        proto.dataReceived(get(b"/v", b"Range: bytes=%d-%d\r\n" % (first, last)))
        asked = None
        while world.pending_connects:
            backend, upstream = world.accept_backend()
            if b"range:" in upstream.value().lower():
                asked = upstream.value()
                backend.dataReceived(answer)
            else:
                backend.dataReceived(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n"
                                     b"Connection: close\r\n\r\n")
        self.assertLessEqual(before, 0)
        return transport.value(), asked

    def test_part_stored_and_a_range_within_it_served_from_the_cache(self):
        world = CacheWorld(self)
        first, asked = self.ranged(world, 0, 9, self.part(0, 9))
        self.assertIsNotNone(asked)
        self.assertIn(b"stored", header(first, b"cache-status"))
        again, asked = self.ranged(world, 2, 5)
        self.assertIsNone(asked, "within the stored part: no origin request")
        self.assertTrue(again.startswith(b"HTTP/1.1 206 "))
        self.assertEqual(header(again, b"content-range"), b"bytes 2-5/20")
        self.assertTrue(again.endswith(b"2345"))
        self.assertIn(b"hit", header(again, b"cache-status"))

    def test_range_outside_the_parts_goes_to_the_origin_and_completes_the_entry(self):
        world = CacheWorld(self)
        self.ranged(world, 0, 9, self.part(0, 9))
        _, asked = self.ranged(world, 8, 12, self.part(8, 19))  # overlapping, to the end
        self.assertIsNotNone(asked)
        answer, asked = world.fetch(get(b"/v"))
        self.assertIsNone(asked, "parts covering every byte became a whole stored response")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"))
        self.assertTrue(answer.endswith(self.BODY))

    def test_parts_under_another_etag_are_not_combined(self):
        world = CacheWorld(self)
        self.ranged(world, 0, 9, self.part(0, 9, b'"v1"'))
        self.ranged(world, 10, 19, self.part(10, 19, b'"v2"'))
        _, asked = world.fetch(get(b"/v"), response(self.BODY, b"Cache-Control: max-age=60\r\n"
                                                                b"Connection: close\r\n"))
        self.assertIsNotNone(asked, "v1's first half and v2's second half are never joined")
        _, asked = self.ranged(world, 12, 14)
        self.assertIsNone(asked)  # (the whole 200 stored by the fetch above answers it)

    def test_weak_etag_or_unknown_length_is_not_stored(self):
        world = CacheWorld(self)
        weak = self.part(0, 9, b'W/"v1"')
        first, _ = self.ranged(world, 0, 9, weak)
        self.assertNotIn(b"stored", header(first, b"cache-status"))
        _, asked = self.ranged(world, 0, 3, weak)
        self.assertIsNotNone(asked)
