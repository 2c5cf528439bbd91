"""Choosing members and talking to them: attempts, retries, the wait queue, outcomes.

A mixin of ``ProxyRequest`` (``revproxy.server.proxy``), split out to keep the request's life
cycle and its member exchanges readable apart. It relies on the request's attributes
(``rt``, ``head``, ``writer``, ``member``, ``_pool``, ``_facts``, ...).
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
    __slots__ = ()

    def _dispatch(self):
        pool = self.rt.backends[self.route.pool]
        self._pool = pool
        pool.budget.request(self.rt.clock.seconds())
        self._facts = RequestFacts(self.conn.client_ip, self.head.host, self._path, self.head.headers)
        self._outgoing = self._build_outgoing()
        self._choose()

    def _choose(self):
        """Pick a member and send; queue when every member is at its connection limit."""
        pool = self._pool
        member = None
        if pool.config.sticky_cookie:
            candidates, _ = pool.candidates(self.rt.clock.seconds(), self._tried or ())
            member = choice.sticky_member(pool, self._facts, candidates)
            if member is not None:
                self._facts.note("sticky cookie")
        if member is None:
            member, why = pool.choose(self._facts, self._tried or ())
            if member is None:
                self._no_member(why)
                return
        self.member = member
        self.attempts += 1
        pool.started(member)
        self._member_busy = True
        self._attempt(member.take_idle())

    def _no_member(self, why):
        pool = self._pool
        if why == ALL_BUSY and not self._queued:
            if pool.queue.add(self):
                self._queued = True
                return
            self._reply(503, "pool %s: every member at its connection limit and the queue is "
                             "full" % pool.name, ((b"retry-after", b"1"),))
        elif self._cache is not None and self._cache_failed(None):
            return  # stale-if-error: a stored response instead of an error
        elif why == NO_MEMBER:
            self._reply(502, "pool %r has no member" % pool.name)
        elif self._last_error is not None:
            error = self._last_error
            self._reply(error.status, "upstream %s: %s" % (self.member.name, error))
        else:
            retry_after = b"%d" % pool.retry_after()
            self._reply(503, "pool %s: no healthy member" % pool.name, ((b"retry-after", retry_after),))

    # The pool's wait queue calls these.
    def wake(self):
        if self._done:
            return True
        member, why = self._pool.choose(self._facts, self._tried or ())
        if member is None:
            return False
        self._queued = False
        self._choose()
        return True

    def expire(self):
        self._queued = False
        if not self._done:
            self._reply(503, "pool %s: waited %gs for a member under its connection limit"
                        % (self._pool.name, self._pool.config.queue_timeout), ((b"retry-after", b"1"),))

    def _member_done(self, ok):
        """The current member's part ends (exactly once per ``pool.started``)."""
        if self._member_busy:
            self._member_busy = False
            started = self.upstream_started or self.rt.clock.seconds()
            end = self._head_at if self._head_at is not None else self.rt.clock.seconds()
            self._pool.finished(self.member, ok, end - started)

    def _attempt(self, conn):
        if conn is not None:
            self._send(conn)
            return
        d = self.member.connect()
        d.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, conn):
        if self._done:
            self.member.release(conn)  # fresh and unused: good for the next request
            return
        self._send(conn)

    def _connect_failed(self, failure):
        if not self._done:
            self.upstream_failed(failure.value if failure.check(errors.UpstreamError) else
                                 errors.UpstreamError(errors.CONNECT_FAILED, failure.getErrorMessage()))

    def _send(self, conn):
        self._upstream = conn
        self._reused = conn.exchanges > 0
        if self.upstream_started is None:
            self.upstream_started = self.rt.clock.seconds()
        pool = self._pool.config
        head_bytes, body = self._outgoing
        conn.send(self, self.head.method, head_bytes, body, pool.first_byte_timeout, pool.read_timeout)

    def upstream_failed(self, error):
        self._upstream = None
        if self.upstream_started is not None:
            self.upstream_time = self.rt.clock.seconds() - self.upstream_started
        if self._done:
            self._member_done(False)
            return
        if not self.writer.started:
            if self._may_retry_fresh(error):
                log.info("rid={rid} retrying on a fresh connection: {e}", rid=self._rid, e=error)
                self._fresh_retried = True
                self._attempt(None)
                return
            self._member_done(False)
            self._last_error = error
            if self._retry(choice.retry_reason(error), error.kind not in choice.NOT_SENT, error):
                return
            if self._cache is not None and self._cache_failed(error):
                return
            self._reply(error.status, "upstream %s: %s" % (self.member.name, error))
            return
        self._member_done(False)
        log.warn("rid={rid} upstream {m} failed mid-response: {e}", rid=self._rid,
                 m=self.member.name, e=error)
        if self._relay is not None:
            self._relay.abort()
        self.writer.abort("upstream failed mid-response: %s" % error)

    def _may_retry_fresh(self, error):
        """A reused connection the backend closed before answering: retry once, fresh."""
        return (
            error.kind == errors.CLOSED
            and not error.received
            and not self._fresh_retried
            and self._reused
            and self.head.method in IDEMPOTENT
            and not self._body_consumed
        )

    def _retry(self, reason, reached_backend, what):
        """Send the request to another member if the pool's retry rules allow it."""
        pool = self._pool
        if not choice.may_retry(reason, reached_backend, self.head.method, self._body_consumed,
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
        if self._tried is None:
            self._tried = set()
        self._tried.add(self.member)
        log.info("rid={rid} member {m}: {what}; retrying on another member",
                 rid=self._rid, m=self.member.name, what=what)
        self.upstream_started = None
        self._head_at = None
        self._choose()
        return True

    @property
    def _body_consumed(self):
        """A request body streamed from disk cannot be sent a second time."""
        return self._body is not None and self._body.in_file
