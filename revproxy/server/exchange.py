"""The member exchange stage: choose a member, send, and retry until one answer is final.

``MemberExchange`` gets one request to a backend pool and hands its owner (the
``ProxyRequest``) exactly one outcome: the final response (``exchange_head``, then
``exchange_data`` pieces and ``exchange_end``, or a 101 through ``exchange_tunnel``), or a
failure (``exchange_failed`` before any response byte went to the client, ``exchange_broken``
after). Attempts, the wait queue, retries on another member and the fresh-connection retry
are invisible to the owner; it only reads ``member``, ``attempts`` and ``upstream_time``.

The owner provides: ``rt`` (the Runtime), ``ctx`` (the RequestContext), ``sink`` (to know
whether the response started), ``done`` (the request is over), ``body_consumed`` (a body
streamed from disk cannot be sent twice), and the ``exchange_*`` callbacks above.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.balancing import choice
from revproxy.balancing.choice import IDEMPOTENT
from revproxy.balancing.facts import RequestFacts
from revproxy.balancing.pool import ALL_BUSY, NO_MEMBER
from revproxy.upstream import errors

log = Logger(namespace="revproxy.proxy")


class MemberExchange:
    """One request's conversation with the members of one pool."""

    __slots__ = (
        "owner", "rt", "pool", "facts", "member", "attempts", "upstream", "upstream_started",
        "upstream_time", "_outgoing", "_method", "_tried", "_busy", "_queued", "_reused",
        "_last_error", "_head_at", "_fresh_retried", "upstream_data", "upstream_waiting",
        "upstream_informational",
    )

    def __init__(self, owner, pool, outgoing):
        ctx = owner.ctx
        self.owner = owner
        self.rt = owner.rt
        self.pool = pool
        self.facts = RequestFacts(ctx.peer.client_ip, ctx.head.host, ctx.path, ctx.head.headers)
        self.member = None
        self.attempts = 0
        self.upstream = None  # the UpstreamConnection of the attempt in progress
        self.upstream_started = None
        self.upstream_time = None
        self._outgoing = outgoing  # (head bytes, body bytes or spool), kept for retries
        self._method = ctx.head.method
        self._tried = None  # members already tried
        self._busy = False  # pool.started() called, pool.finished() not yet
        self._queued = False  # waiting in the pool's queue for a member slot
        self._reused = False
        self._last_error = None
        self._head_at = None  # when the current member's response head arrived
        self._fresh_retried = False
        # Body pieces, pauses and 1xx go straight to the owner (one call less per event).
        self.upstream_data = owner.exchange_data
        self.upstream_waiting = owner.exchange_waiting
        self.upstream_informational = owner.exchange_informational

    @property
    def _rid(self):
        return self.owner.ctx.request_id.decode("ascii", "replace")

    def start(self):
        self.pool.budget.request(self.rt.clock.seconds())
        self._choose()

    # -- choosing ------------------------------------------------------------------------
    def _choose(self):
        """Pick a member and send; queue when every member is at its connection limit."""
        pool = self.pool
        member = None
        if pool.config.sticky_cookie:
            candidates, _ = pool.candidates(self.rt.clock.seconds(), self._tried or ())
            member = choice.sticky_member(pool, self.facts, candidates)
            if member is not None:
                self.facts.note("sticky cookie")
        if member is None:
            member, why = pool.choose(self.facts, self._tried or ())
            if member is None:
                self._no_member(why)
                return
        self.member = member
        self.owner.ctx.member = member.name
        self.attempts += 1
        pool.started(member)
        self._busy = True
        if member.private:  # send_proxy_protocol: only this client's own connections
            conn = member.take_private(self.owner.ctx.peer)
        else:
            conn = member.take_idle()
        if conn is not None:
            self._send(conn)
            return
        d = member.connect(self.owner.ctx.peer)
        d.addCallbacks(self._connected, self._connect_failed)

    def _no_member(self, why):
        pool = self.pool
        owner = self.owner
        if why == ALL_BUSY and not self._queued:
            if pool.queue.add(self):
                self._queued = True
                return
            owner.exchange_failed(503, "pool %s: every member at its connection limit and the "
                                       "queue is full" % pool.name, ((b"retry-after", b"1"),), False)
        elif why == NO_MEMBER:
            owner.exchange_failed(502, "pool %r has no member" % pool.name, (), True)
        elif self._last_error is not None:
            error = self._last_error
            owner.exchange_failed(error.status, "upstream %s: %s" % (self.member.name, error), (), True)
        else:
            retry_after = b"%d" % pool.retry_after()
            owner.exchange_failed(503, "pool %s: no healthy member" % pool.name,
                                  ((b"retry-after", retry_after),), True)

    # The pool's wait queue calls these.
    def wake(self):
        if self.owner.done:
            return True
        member, why = self.pool.choose(self.facts, self._tried or ())
        if member is None:
            return False
        self._queued = False
        self._choose()
        return True

    def expire(self):
        self._queued = False
        if not self.owner.done:
            self.owner.exchange_failed(
                503, "pool %s: waited %gs for a member under its connection limit"
                % (self.pool.name, self.pool.config.queue_timeout), ((b"retry-after", b"1"),), False)

    def member_done(self, ok):
        """The current member's part ends (exactly once per ``pool.started``)."""
        if self._busy:
            self._busy = False
            started = self.upstream_started or self.rt.clock.seconds()
            end = self._head_at if self._head_at is not None else self.rt.clock.seconds()
            self.pool.finished(self.member, ok, end - started)

    # -- connecting and sending -------------------------------------------------------------
    def _connected(self, conn):
        if self.owner.done:
            self.member.release(conn)  # fresh and unused: good for the next request
            return
        self._send(conn)

    def _connect_failed(self, failure):
        if not self.owner.done:
            self.upstream_failed(failure.value if failure.check(errors.UpstreamError) else
                                 errors.UpstreamError(errors.CONNECT_FAILED, failure.getErrorMessage()))

    def _send(self, conn):
        self.upstream = conn
        self._reused = conn.exchanges > 0
        if self.upstream_started is None:
            self.upstream_started = self.rt.clock.seconds()
        config = self.pool.config
        head_bytes, body = self._outgoing
        conn.send(self, self._method, head_bytes, body, config.first_byte_timeout, config.read_timeout)

    # -- what the backend says (UpstreamConnection calls these) ----------------------------
    def upstream_head(self, head):
        self._head_at = self.rt.clock.seconds()
        pool = self.pool
        if pool.config.load_header:
            report = _header(head.headers, pool.load_header_name)
            if report is not None:
                pool.report(self.member, report.decode("latin-1"))
        if head.status >= 500:
            self.member_done(False)
            reason = choice.retry_reason(status=head.status)
            # Detach this exchange first: a retry may send at once on a pooled connection,
            # which then becomes self.upstream and must not be the one aborted.
            conn, self.upstream = self.upstream, None
            if self._retry(reason, True, "answered %d" % head.status):
                conn.abort()  # the rest of that answer is not wanted
                return
            self.upstream = conn
        self.owner.exchange_head(head)

    def upstream_end(self):
        self.upstream = None
        self.upstream_time = self.rt.clock.seconds() - self.upstream_started
        self.owner.exchange_end()

    def upstream_failed(self, error):
        self.upstream = None
        if self.upstream_started is not None:
            self.upstream_time = self.rt.clock.seconds() - self.upstream_started
        owner = self.owner
        if owner.done:
            self.member_done(False)
            return
        if not owner.sink.started:
            if self._may_retry_fresh(error):
                log.info("rid={rid} retrying on a fresh connection: {e}", rid=self._rid, e=error)
                self._fresh_retried = True
                self.member.connect(owner.ctx.peer).addCallbacks(self._connected,
                                                                 self._connect_failed)
                return
            self.member_done(False)
            self._last_error = error
            if self._retry(choice.retry_reason(error), error.kind not in choice.NOT_SENT, error):
                return
            owner.exchange_failed(error.status, "upstream %s: %s" % (self.member.name, error), (), True)
            return
        self.member_done(False)
        owner.exchange_broken("upstream %s failed mid-response: %s" % (self.member.name, error))

    # -- the end ---------------------------------------------------------------------------
    def take_tunnel(self):
        """After a 101: hand over the upstream connection (it becomes a tunnel)."""
        conn, self.upstream = self.upstream, None
        self.upstream_time = self.rt.clock.seconds() - self.upstream_started
        self.member_done(True)
        return conn

    def abandon(self):
        """Drop the attempt in progress (its answer is not wanted any more)."""
        conn, self.upstream = self.upstream, None
        if conn is not None:
            conn.abort()

    def cancel(self):
        """The client went away: stop everything, the member did nothing wrong."""
        self.abandon()
        if self._queued:
            self.pool.queue.remove(self)
            self._queued = False
        self.member_done(True)

    # -- retries ---------------------------------------------------------------------------
    def _may_retry_fresh(self, error):
        """A reused connection the backend closed before answering: retry once, fresh."""
        return (
            error.kind == errors.CLOSED
            and not error.received
            and not self._fresh_retried
            and self._reused
            and self._method in IDEMPOTENT
            and not self.owner.body_consumed
        )

    def _retry(self, reason, reached_backend, what):
        """Send the request to another member if the pool's retry rules allow it."""
        pool = self.pool
        if not choice.may_retry(reason, reached_backend, self._method, self.owner.body_consumed,
                                self.attempts, pool.config):
            return False
        now = self.rt.clock.seconds()
        tried = set(self._tried or ())
        tried.add(self.member)
        if not pool.candidates(now, tried)[0]:
            return False  # nobody else to ask: the client gets this member's answer
        if not pool.budget.try_retry(now):
            log.info("rid={rid} not retried: pool {p} retry budget spent", rid=self._rid, p=pool.name)
            return False
        self._tried = tried
        log.info("rid={rid} member {m}: {what}; retrying on another member",
                 rid=self._rid, m=self.member.name, what=what)
        self.upstream_started = None
        self._head_at = None
        self._choose()
        return True

    # -- response headers that belong to the pool ----------------------------------------------
    def response_headers(self, status, headers, route):
        """``headers`` (bound for the client) with the pool's own fields: the load report
        removed, the sticky cookie set, the decision header for debug clients."""
        pool = self.pool
        if pool.config.load_header:
            headers = [h for h in headers if h[0] != pool.load_header_name]
        if pool.config.sticky_cookie and status < 500:
            cookie = choice.sticky_set_cookie(pool, self.facts, self.member)
            if cookie is not None:
                headers.append(cookie)
        return headers

    def decision_header(self, route):
        return (b"x-revproxy-decision", choice.decision_header(
            route, self.pool, self.member, self.attempts, self.facts.explain()))


def _header(headers, name):
    for key, value in headers:
        if key == name:
            return value
    return None
