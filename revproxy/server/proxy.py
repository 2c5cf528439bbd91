"""One request's journey: check, route, buffer the body, pick a member, send, relay, log."""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.http1 import serialize
from revproxy.http1.errors import ProtocolError
from revproxy.http1.parser import NO_BODY, LENGTH
from revproxy.routing.normalize import normalize_target
from revproxy.server import replies
from revproxy.server.accesslog import AccessRecord
from revproxy.server.caching import UNSAFE_METHODS, CachingMixin
from revproxy.server.exchange import MemberExchange
from revproxy.balancing import choice
from revproxy.upstream import errors
from revproxy.upstream.relay import Relay

log = Logger(namespace="revproxy.proxy")

_BODY_METHODS = frozenset([b"POST", b"PUT", b"PATCH"])


class ProxyRequest(CachingMixin, MemberExchange):
    """Drives one request from its head to the access-log line.

    The connection calls ``begin()`` when the head is parsed, ``body_data()`` / ``body_end()``
    as the body arrives (``body_end()`` comes for every request, body or not), then
    ``response_done()`` once the response is complete, or ``connection_lost()``.
    """

    __slots__ = (
        "conn", "rt", "head", "writer", "started_at", "route", "request_id", "member",
        "attempts", "upstream_started", "upstream_time", "_early", "_body", "_body_size",
        "_upstream", "_relay", "_upgrade", "_outgoing", "_done", "_reused", "_tried",
        "_pool", "_facts", "_member_busy", "_queued", "_last_error", "_head_at",
        "_fresh_retried", "_path", "_debug", "_cache", "_query", "_background",
    )

    def __init__(self, conn, runtime, head, writer):
        self.conn = conn
        self.rt = runtime
        self.head = head
        self.writer = writer
        self.started_at = runtime.clock.seconds()
        self.route = None
        self.request_id = b"-"
        self.member = None
        self.attempts = 0
        self.upstream_started = None
        self.upstream_time = None
        self._early = None  # (status, reason) to answer once a bodiless request is fully read
        self._body = None  # spool of the request body
        self._body_size = 0
        self._upstream = None  # the UpstreamConnection in use
        self._relay = None
        self._upgrade = None
        self._outgoing = None  # (head bytes, body) as sent, kept for a retry
        self._done = False
        self._reused = False
        self._tried = None  # members already tried for this request
        self._pool = None  # the BalancedPool of the route
        self._facts = None  # RequestFacts for the policy
        self._member_busy = False  # pool.started() called, pool.finished() not yet
        self._queued = False  # waiting in the pool's queue for a member slot
        self._last_error = None
        self._head_at = None  # when the current member's response head arrived
        self._fresh_retried = False
        self._path = "/"  # the normalised path
        self._debug = False  # a debug client asked for the decision header
        self._cache = None  # CacheState when the cache tier handles this request
        self._query = None  # the raw query (str) or None
        self._background = False  # a background revalidation: no client waits

    # -- the request arrives ---------------------------------------------------------------
    def begin(self):
        head, rt = self.head, self.rt
        self.request_id = rt.forwarding.request_id(head.headers, self.conn.client_ip, rt.new_request_id)
        problem = self._check()
        if problem is not None:
            if head.framing == NO_BODY:
                self._early = problem
            else:
                self.fail_request(*problem)
            return
        if head.framing != NO_BODY:
            self._body = rt.new_request_spool()
            if head.expect_continue:
                self.conn.send_continue()

    def _check(self):
        """None when the request may go on, else the (status, reason) to answer."""
        head, rt = self.head, self.rt
        if head.method == b"CONNECT":
            return 405, "CONNECT is not proxied"
        if rt.forwarding.via_names_us(head.headers):
            return 508, "loop: Via already names this proxy"
        try:
            target = normalize_target(head.target, rt.config.server.allow_encoded_slash)
        except ProtocolError as e:
            return e.status, e.reason
        self._path = target.path
        self._query = target.query
        self.route = rt.router.match(head.host, target.path, head.method, head.headers)
        if self.route is None:
            return 404, "no route matches"
        if rt.debug_clients is not None:
            self._debug = rt.wants_decision(self.conn.client_ip, head.headers)
        length = head.content_length
        if length is not None and length > rt.config.limits.max_body_size:
            return 413, "Content-Length %d over max_body_size" % length
        if head.upgrade is not None:
            if head.upgrade in rt.allowed_upgrades:
                self._upgrade = head.upgrade
            else:
                log.info("rid={rid} upgrade to {proto!r} ignored", rid=self._rid, proto=head.upgrade)
        return None

    def body_data(self, data):
        if self._done or self._body is None:
            return
        self._body_size += len(data)
        if self._body_size > self.rt.config.limits.max_body_size:
            self.fail_request(413, "request body over max_body_size")
        elif not self._body.write(data):
            self.fail_request(503, "request spool full (buffering.total_* reached)")

    def body_end(self):
        if self._done:
            return
        if self._early is not None:
            status, reason = self._early
            self._reply(status, reason)
        elif self._cache_applies():
            self._cache_begin()
        else:
            self._dispatch()

    # -- to the backend (choosing members: revproxy.server.exchange) ----------------------
    def _build_outgoing(self):
        head, rt, route = self.head, self.rt, self.route
        headers = rt.forwarding.backend_request_headers(
            head.headers,
            client_ip=self.conn.client_ip,
            client_port=self.conn.client_port,
            scheme=self.conn.scheme,
            host=head.host,
            version=head.version,
            request_id=self.request_id,
            host_override=route.host_header.encode("ascii") if route.host_header else None,
            upgrade=self._upgrade,
        )
        # Bodies are buffered, so the proxy answered any Expect itself; the debug switch is ours.
        dropped = rt.request_headers_dropped
        headers = [h for h in headers if h[0] not in dropped]
        if self._cache is not None:
            headers = self._cache_request_headers(headers)
        body = None
        if self._body is not None:
            headers.append((b"content-length", b"%d" % self._body_size))
            body = self._body if self._body.in_file else _read_all(self._body)
        elif head.method in _BODY_METHODS:
            headers.append((b"content-length", b"0"))
        return serialize.request_head(head.method, _origin_form(head.target), headers), body

    # -- what the backend says (UpstreamConnection calls these) ----------------------------
    def upstream_informational(self, head):
        if head.status != 100:  # the proxy answered Expect itself
            self.writer.informational(head.status, head.reason, self.rt.client_headers(head.headers))

    def upstream_head(self, head):
        self._head_at = self.rt.clock.seconds()
        pool = self._pool
        if pool.config.load_header:
            report = _header(head.headers, pool.load_header_name)
            if report is not None:
                pool.report(self.member, report.decode("latin-1"))
        if head.status >= 500:
            self._member_done(False)
            reason = choice.retry_reason(status=head.status)
            # Detach this exchange first: a retry may send at once on a pooled connection,
            # which then becomes self._upstream and must not be the one aborted.
            conn, self._upstream = self._upstream, None
            if self._retry(reason, True, "answered %d" % head.status):
                conn.abort()  # the rest of that answer is not wanted
                return
            self._upstream = conn
        if head.status == 101:
            if self._upgrade is None:
                self._upstream.abort()
                self.upstream_failed(errors.UpstreamError(errors.BAD_RESPONSE, "unrequested 101", True))
                return
            headers = self.rt.client_headers(head.headers)
            headers += [(b"connection", b"upgrade"), (b"upgrade", self._upgrade)]
            self.writer.start(101, head.reason, headers)
            self._tunnel()
            return
        if self._cache is not None:
            self._cache.head = head
            if self._cache_head(head):
                return
        elif self.rt.cache is not None and self.head.method in UNSAFE_METHODS and head.status < 400:
            self._cache_invalidate(head)
        if head.framing == LENGTH:
            length = head.content_length
        elif head.framing == NO_BODY:
            length = _declared_length(head.headers)  # HEAD / 304 keep the backend's figure
        else:
            length = None
        self.writer.start(head.status, head.reason, self._response_headers(head), length)

    def _response_headers(self, head):
        headers = self.rt.client_headers(head.headers)
        pool = self._pool
        if pool.config.load_header:
            headers = [h for h in headers if h[0] != pool.load_header_name]
        if pool.config.sticky_cookie and head.status < 500:
            cookie = choice.sticky_set_cookie(pool, self._facts, self.member)
            if cookie is not None:
                headers.append(cookie)
        if self.rt.cache is not None:
            tags = self.rt.cache.tag_headers
            headers = [h for h in headers if h[0] not in tags]
            if self._cache is not None and self._cache.status_header is not None:
                headers.append((b"cache-status", self._cache.status_header))
        if self._debug:
            why = self._facts.explain()
            headers.append((b"x-revproxy-decision", choice.decision_header(
                self.route, pool, self.member, self.attempts, why)))
        return headers

    def upstream_waiting(self):
        self.writer.flush()

    def upstream_data(self, data):
        if self._cache is not None and self._cache.tee is not None:
            self._cache_data(data)
        relay = self._relay
        if relay is None:
            if not self.conn.writing_paused:
                # The client keeps up: no relay needed yet (most small responses end here).
                self.writer.write(data)
                return
            relay = self._relay = self._new_relay()
        relay.data(data)

    def _new_relay(self):
        spool_factory = self.rt.new_response_spool if self.route.buffering else None
        return Relay(self.writer, self._upstream, spool_factory, self._relay_complete)

    def upstream_end(self):
        self._upstream = None
        self.upstream_time = self.rt.clock.seconds() - self.upstream_started
        self._member_done(self.writer.status < 500)
        if self._cache is not None and self._cache_end(self._cache.head):
            return
        if self._relay is not None:
            self._relay.end()
        else:
            self.writer.finish()

    def _abandon_upstream(self):
        """Drop the exchange in progress (its answer is not wanted any more)."""
        conn, self._upstream = self._upstream, None
        if conn is not None:
            conn.abort()

    def _tunnel(self):
        conn = self._upstream
        self._upstream = None
        self.upstream_time = self.rt.clock.seconds() - self.upstream_started
        self._member_done(True)
        self.conn.start_tunnel(conn)

    def _relay_complete(self):
        self.writer.finish()

    # -- answers and the end ---------------------------------------------------------------
    @property
    def _rid(self):
        return self.request_id.decode("ascii", "replace")

    def _reply(self, status, reason, extra_headers=()):
        if status >= 500 or status in (408, 413, 508):
            log.warn("rid={rid} {status}: {reason}", rid=self._rid, status=status, reason=reason)
        else:
            log.info("rid={rid} {status}: {reason}", rid=self._rid, status=status, reason=reason)
        replies.send(self.writer, status, self.rt.clock.seconds(), extra_headers)

    def fail_request(self, status, reason):
        """Answer ``status`` and close: the request stream cannot be trusted any more."""
        if self._done:
            return
        if self._upstream is not None:
            self._upstream.abort()
            self._upstream = None
        if self.writer.started:
            self.writer.abort(reason)
            return
        log.info("rid={rid} {status}: {reason}", rid=self._rid, status=status, reason=reason)
        replies.send(self.writer, status, self.rt.clock.seconds(), close=True)

    def response_done(self):
        """The connection finished (or aborted) this response: log it and free everything."""
        if self._done:
            return
        self._done = True
        self._release()
        if self._cache is not None:
            self._cache_finished()
        if self.rt.access_log is not None:
            self.rt.access_log.log(self._record())

    def connection_lost(self):
        """The client went away mid-request."""
        if self._done:
            return
        if self._upstream is not None:
            self._upstream.abort()
            self._upstream = None
        if self._queued:
            self._pool.queue.remove(self)
            self._queued = False
        self._member_done(True)  # the client left; the member did nothing wrong
        if self._relay is not None:
            self._relay.abort()
        if not self.writer.started:
            self.writer.status = 499  # nginx's "client closed request", for the log only
        self.response_done()

    def _release(self):
        if self._body is not None:
            self._body.close()
            self._body = None

    def _record(self):
        head = self.head
        now = self.rt.clock.seconds()
        return AccessRecord(
            client_ip=self.conn.client_ip,
            time=self.started_at,
            method=head.method,
            target=head.target,
            version=head.version,
            status=self.writer.status,
            bytes_sent=self.writer.bytes_sent,
            referer=_header(head.headers, b"referer"),
            user_agent=_header(head.headers, b"user-agent"),
            upstream=self.member.name if self.member is not None else "-",
            upstream_time=self.upstream_time,
            total_time=now - self.started_at,
            request_id=self.request_id,
            route=self.route.name if self.route is not None else "-",
            attempts=self.attempts,
        )


def _origin_form(target: bytes) -> bytes:
    """The target as sent to an origin server (RFC 9112 §3.2.1): an absolute-form target
    loses its scheme and authority (the Host header carries the authority); others as is."""
    if target[:1] == b"/" or target == b"*":
        return target
    rest = target.partition(b"://")[2]
    slash = rest.find(b"/")
    query = rest.find(b"?")
    if slash < 0 or (0 <= query < slash):
        return b"/" + rest[query:] if query >= 0 else b"/"
    return rest[slash:]


def _read_all(spool) -> bytes:
    parts = []
    while True:
        data = spool.read(1 << 20)
        if not data:
            return b"".join(parts)
        parts.append(data)


def _declared_length(headers):
    value = _header(headers, b"content-length")
    if value is not None and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _header(headers, name):
    for key, value in headers:
        if key == name:
            return value
    return None
