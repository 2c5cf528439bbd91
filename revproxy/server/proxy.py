"""One request's life cycle: the stages and hook phases from its head to the access-log line.

```
begin       checks (405 CONNECT, 508 loop, target, route 404, 413 on Content-Length, Upgrade)
            -> request_head hooks -> 100-continue
body        spooled (revproxy.upstream.spool) -> request_body hooks
cache       CacheStage (revproxy.server.caching) when the route caches GET/HEAD: a hit answers
            through the sink; a miss or a revalidation calls forward()
forward     upstream_request hooks rewrite the header list -> MemberExchange
            (revproxy.server.exchange) finds a member and a final answer
response    response_head hooks -> the sink (client writer or DiscardSink); body pieces
            through response_body hooks, straight or through a Relay (spool) to the sink
end         request_end hooks, access log
```

A hook may answer (``revproxy.pipeline.hooks.Answer``) at any phase before the response
started; the request then goes no further. ``ProxyRequest`` owns the request's resources
(the body spool, the relay) and frees them once, in ``response_done``. The response side
(what the exchange hands back, on to the sink) is ``revproxy.server.responding``.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.gcpressure import request_started
from revproxy.http1.errors import ProtocolError
from revproxy.http1.parser import NO_BODY
from revproxy.pipeline.context import BodyView, RequestContext
from revproxy.pipeline.hooks import Answer, run_phase
from revproxy.routing.normalize import normalize_target
from revproxy.server import replies
from revproxy.server.accesslog import AccessRecord
from revproxy.server.caching import CacheStage
from revproxy.tls.facts import client_cert_headers
from revproxy.server.exchange import MemberExchange
from revproxy.server.outgoing import outgoing
from revproxy.server.responding import RespondingMixin

log = Logger(namespace="revproxy.proxy")


class ProxyRequest(RespondingMixin):
    """Drives one request from its head to the access-log line.

    The connection calls ``begin()`` when the head is parsed, ``body_data()`` / ``body_end()``
    as the body arrives (``body_end()`` comes for every request, body or not), then
    ``response_done()`` once the response is complete, or ``connection_lost()``. ``sink`` is
    the ``IResponseSink`` the answer goes to.
    """

    __slots__ = (
        "rt", "ctx", "head", "sink", "done", "background", "exchange", "cache",
        "_early", "_body", "_body_size", "_body_ended", "_waiting", "_relay", "_upgrade",
        "_debug", "_held", "routing", "_encoder",
    )

    def __init__(self, runtime, peer, head, sink):
        request_started()
        self.rt = runtime
        self.ctx = RequestContext(head, peer, runtime.clock.seconds())
        self.head = head
        self.sink = sink
        self.done = False
        self.background = False  # a background revalidation: no client waits
        self.exchange = None  # the MemberExchange, once forwarded
        self.cache = None  # the CacheStage, when the cache tier handles this request
        self._early = None  # an Answer for a bodiless request, sent at body_end
        self._body = None  # spool of the request body
        self._body_size = 0
        self._body_ended = False
        self._waiting = False  # a hook phase has not decided yet
        self._relay = None
        self._upgrade = None
        self._debug = False  # a debug client asked for the decision header
        self._held = None  # response events held while response_head hooks decide
        self.routing = None  # RoutingState when the route has stages (revproxy.routing.plan)
        self._encoder = None  # the response's ResponseCompressor (revproxy.compression)

    @property
    def request_id(self):
        return self.ctx.request_id

    @property
    def body_consumed(self):
        """A request body streamed from disk cannot be sent a second time."""
        return self._body is not None and self._body.in_file

    # -- the request arrives ---------------------------------------------------------------
    def begin(self):
        head, rt, ctx = self.head, self.rt, self.ctx
        ctx.request_id = rt.forwarding.request_id(head.headers, ctx.peer.client_ip, rt.new_request_id)
        problem = self._check()
        if problem is not None:
            if head.framing == NO_BODY:
                self._early = Answer(problem[0], reason=problem[1])
            else:
                self.fail_request(*problem)
            return
        if head.framing != NO_BODY:
            self._body = rt.new_request_spool()
        hooks = rt.hooks.request_head
        if hooks:
            self._waiting = True
            run_phase(hooks, (ctx,), self._head_accepted, self._answer, self._hook_failed)
        else:
            self._head_accepted()

    def _check(self):
        """None when the request may go on, else the (status, reason) to answer."""
        head, rt, ctx = self.head, self.rt, self.ctx
        if head.method == b"CONNECT":
            return 405, "CONNECT is not proxied"
        if rt.forwarding.via_names_us(head.headers):
            return 508, "loop: Via already names this proxy"
        try:
            target = normalize_target(head.target, rt.config.server.allow_encoded_slash)
        except ProtocolError as e:
            return e.status, e.reason
        ctx.path = target.path
        ctx.query = target.query
        ctx.route = rt.router.match(head.host, target.path, head.method, head.headers,
                                    target.query)
        if ctx.route is None:
            return 404, "no route matches"
        if rt.debug_clients is not None:
            self._debug = rt.wants_decision(ctx.peer.client_ip, head.headers)
        length = head.content_length
        if length is not None and length > rt.config.limits.max_body_size:
            return 413, "Content-Length %d over max_body_size" % length
        if head.upgrade is not None:
            if head.upgrade in rt.allowed_upgrades:
                self._upgrade = head.upgrade
            else:
                log.info("rid={rid} upgrade to {proto!r} ignored", rid=self._rid, proto=head.upgrade)
        plans = rt.route_plans
        if plans:
            plan = plans.get(ctx.route.name)
            if plan is not None:
                self.routing = plan.start(ctx, rt.random)
        return None

    def _head_accepted(self):
        self._waiting = False
        if self.done:
            return
        routing = self.routing
        if routing is not None and routing.plan.answer is not None:
            self._answer(routing.answer())  # redirect / respond: no backend
            return
        if self._body is not None and self.head.expect_continue:
            self.sink.send_continue()
        if self._body_ended:
            self._after_body()

    def body_data(self, data):
        if self.done or self._body is None:
            return
        self._body_size += len(data)
        if self._body_size > self.rt.config.limits.max_body_size:
            self.fail_request(413, "request body over max_body_size")
        elif not self._body.write(data):
            self.fail_request(503, "request spool full (buffering.total_* reached)")

    def body_end(self):
        if self.done:
            return
        self._body_ended = True
        if self._early is not None:
            self._send_answer(self._early)
        elif not self._waiting:
            if self.rt.hooks.request_body:
                self._after_body()
            else:
                self._body_accepted()  # the common case, one call shorter

    def _after_body(self):
        hooks = self.rt.hooks.request_body
        if hooks:
            self.ctx.body = BodyView(self._body, self._body_size)
            self._waiting = True
            run_phase(hooks, (self.ctx,), self._body_accepted, self._answer, self._hook_failed)
        else:
            self._body_accepted()

    def _body_accepted(self):
        self._waiting = False
        if self.done:
            return
        ctx = self.ctx
        if CacheStage.applies(self.rt, ctx.route, self.head.method) and (
                self.routing is None or self.routing.plan.split is None):
            self.cache = CacheStage(self)
            self.cache.begin()
        else:
            self.forward()

    # -- to the backend --------------------------------------------------------------------
    def forward(self):
        """Send the request on to the route's pool (the cache stage calls this on a miss)."""
        headers = self._upstream_headers()
        rt = self.rt
        hooks = rt.hooks.upstream_request
        if hooks:
            self._waiting = True
            run_phase(hooks, (self.ctx, headers), lambda: self._exchange(headers), self._answer,
                      self._hook_failed)
            return
        self._exchange(headers)

    def _exchange(self, headers):
        self._waiting = False
        if self.done:
            return
        routing = self.routing
        if routing is None:
            pool = self.rt.backends[self.ctx.route.pool]
            target = None
        else:
            pool = self.rt.backends[routing.pool]
            target = routing.target(self.head.target)
        sent = outgoing(self.head, headers, self._body, self._body_size, target)
        self.exchange = MemberExchange(self, pool, sent)
        self.exchange.start()
        if routing is not None and routing.plan.mirror is not None:
            # a copy to the route's mirror pool, once the request's own exchange started
            routing.plan.mirror.send(self, sent, self._upgrade is not None)

    def _upstream_headers(self):
        head, rt, ctx = self.head, self.rt, self.ctx
        route, peer = ctx.route, ctx.peer
        headers = rt.forwarding.backend_request_headers(
            head.headers,
            client_ip=peer.client_ip,
            client_port=peer.client_port,
            scheme=peer.scheme,
            host=head.host,
            version=head.version,
            request_id=ctx.request_id,
            host_override=route.host_header.encode("ascii") if route.host_header else None,
            upgrade=self._upgrade,
        )
        # Bodies are buffered, so the proxy answered any Expect itself; the debug switch is ours.
        dropped = rt.request_headers_dropped
        headers = [h for h in headers if h[0] not in dropped]
        if peer.tls is not None and peer.tls.client_fingerprint is not None:
            headers += client_cert_headers(peer.tls, *rt.client_cert_header_names)
        if self.cache is not None:
            headers = self.cache.request_headers(headers)
        if self.routing is not None:
            headers = self.routing.request_headers(headers)
        return headers

    # -- answers and the end ---------------------------------------------------------------
    @property
    def _rid(self):
        return self.ctx.request_id.decode("ascii", "replace")

    def reply(self, status, reason, extra_headers=()):
        """Answer with one of the proxy's own short responses."""
        if status >= 500 or status in (408, 413, 508):
            log.warn("rid={rid} {status}: {reason}", rid=self._rid, status=status, reason=reason)
        else:
            log.info("rid={rid} {status}: {reason}", rid=self._rid, status=status, reason=reason)
        self._send_own(status, extra_headers)

    def _send_own(self, status, extra_headers=(), close=False):
        """One of the proxy's own answers: the route's error page when one is configured."""
        pages = self.rt.error_pages
        if pages is None or status < 400:
            replies.send(self.sink, status, self.rt.clock.seconds(), extra_headers, close=close)
            return
        ctx = self.ctx
        page = pages.for_route(ctx.route).render(status, replies.phrase(status), ctx.request_id,
                                                 ctx.header(b"accept"))
        extra = list(extra_headers)
        extra.append((self.rt.forwarding.request_id_header, ctx.request_id))
        replies.send_page(self.sink, status, self.rt.clock.seconds(), page, extra, close)

    def _answer(self, answer):
        """A hook answered instead of the backend."""
        self._waiting = False
        if self.done:
            return
        held, self._held = self._held, None
        if self.exchange is not None:
            self.exchange.abandon()
            if held is not None:
                self.exchange.member_done(True)
        if self.cache is not None and self.cache.state is not None:
            self.cache.state.store = False
            self.cache.state.tee = None
        if self.sink.started:
            self.exchange_broken("hook answered %d after the response started" % answer.status)
            return
        if not self._body_ended and self.head.framing == NO_BODY:
            self._early = answer  # sent at body_end, which follows at once
            return
        self._send_answer(answer, close=not self._body_ended)

    def _send_answer(self, answer, close=False):
        log.info("rid={rid} {status}: {reason}", rid=self._rid, status=answer.status,
                 reason=answer.reason or "answered by a hook")
        if not answer.body and not answer.headers and self.rt.error_pages is not None:
            self._send_own(answer.status, close=close or answer.close)
            return
        replies.send_answer(self.sink, answer, self.rt.clock.seconds(), close or answer.close)

    def _hook_failed(self, failure):
        log.failure("rid={rid} a hook failed; answering 500", failure, rid=self._rid)
        self._answer(Answer(500, reason="a hook failed: %s" % failure.getErrorMessage()))

    def fail_request(self, status, reason):
        """Answer ``status`` and close: the request stream cannot be trusted any more."""
        if self.done:
            return
        if self.exchange is not None:
            self.exchange.abandon()
        if self.sink.started:
            self.sink.abort(reason)
            return
        log.info("rid={rid} {status}: {reason}", rid=self._rid, status=status, reason=reason)
        self._send_own(status, close=True)

    def response_done(self):
        """The sink finished (or aborted) this response: log it and free everything."""
        if self.done:
            return
        self.done = True
        if self._body is not None:
            self._body.close()
            self._body = None
        if self.cache is not None:
            self.cache.finished()
        rt = self.rt
        ends = rt.hooks.request_end
        if ends:
            self.ctx.bytes_sent = self.sink.bytes_sent
        for call in ends:
            try:
                call(self.ctx, self.sink.status)
            except Exception:
                log.failure("rid={rid} request_end hook {h!r} failed", rid=self._rid, h=call)
        if rt.access_log is not None:
            rt.access_log.log(self._record())
        recorder = rt.recorder
        if recorder is not None and not self.background:  # metrics (revproxy.admin)
            recorder.record(self.ctx, self.sink.status, self.exchange, rt.clock.seconds())
        # The stages point back at their owner: break the cycles now, so the request is
        # freed by reference counting instead of waiting for the cyclic GC (measured: the
        # cycles cost ~10% CPU per proxied request in collections).
        self.exchange = None
        self.cache = None

    def connection_lost(self):
        """The client went away mid-request."""
        if self.done:
            return
        if self.exchange is not None:
            self.exchange.cancel()  # the member did nothing wrong
        if self._relay is not None:
            self._relay.abort()
        if not self.sink.started:
            self.sink.status = 499  # nginx's "client closed request", for the log only
        self.response_done()

    def _record(self):
        head, ctx, exchange = self.head, self.ctx, self.exchange
        now = self.rt.clock.seconds()
        return AccessRecord(
            client_ip=ctx.peer.client_ip,
            time=ctx.started_at,
            method=head.method,
            target=head.target,
            version=head.version,
            status=self.sink.status,
            bytes_sent=self.sink.bytes_sent,
            referer=_header(head.headers, b"referer"),
            user_agent=_header(head.headers, b"user-agent"),
            upstream=ctx.member or "-",
            upstream_time=exchange.upstream_time if exchange is not None else None,
            total_time=now - ctx.started_at,
            request_id=ctx.request_id,
            route=ctx.route.name if ctx.route is not None else "-",
            attempts=exchange.attempts if exchange is not None else 0,
            cache=self.cache.logged_status if self.cache is not None else None,
            firewall=ctx.notes.get("firewall") if ctx.notes else None,
        )


def _header(headers, name):
    for key, value in headers:
        if key == name:
            return value
    return None
