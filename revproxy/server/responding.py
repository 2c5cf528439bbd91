"""The response side of ``ProxyRequest``: what the exchange hands back, on to the sink.

``RespondingMixin`` holds ``ProxyRequest``'s methods that ``MemberExchange``
(``revproxy.server.exchange``) calls with the final answer (``exchange_informational``,
``exchange_head``, ``exchange_data``, ``exchange_waiting``, ``exchange_end``,
``exchange_failed``, ``exchange_broken``) and what they use: the response head as clients
see it (compression, cache stage, route header edits, ``response_head`` hooks, with the
events held while those decide), ``response_body`` hooks on each piece, the piece straight
to the sink while the client keeps up, else through a ``Relay`` (spool), and a 101 turned
into a tunnel. It shares ``ProxyRequest``'s slots and calls its ``reply``, ``_answer``,
``_hook_failed`` and ``_rid``.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.cache.validation import SAFE_METHODS
from revproxy.compression import stage as compression
from revproxy.pipeline.hooks import ResponseView, run_phase
from revproxy.server.caching import invalidate_after
from revproxy.server.writer import announced_length
from revproxy.upstream import errors
from revproxy.upstream.relay import Relay

log = Logger(namespace="revproxy.proxy")

_END = object()  # marks the end of a response held while response_head hooks decide


class RespondingMixin:
    """The response relay of a ``ProxyRequest`` (which declares the slots)."""

    __slots__ = ()


    # -- what the exchange hands back ------------------------------------------------------
    def exchange_informational(self, head):
        if head.status != 100:  # the proxy answered Expect itself
            self.sink.informational(head.status, head.reason, self.rt.client_headers(head.headers))

    def exchange_head(self, head):
        if head.status == 101:
            self._tunnel(head)
            return
        rt = self.rt
        if self.ctx.route.compress:
            head = self._compression(head)
        if self.cache is not None:
            if self.cache.on_head(head, self.exchange.upstream_started):
                self._encoder = None  # the cache answers instead (304 refresh, stale)
                return
        elif rt.cache is not None and self.head.method not in SAFE_METHODS and head.status < 400:
            invalidate_after(rt, self.ctx, head)
        headers = self._response_headers(head)
        hooks = rt.hooks.response_head
        if not hooks:
            self.sink.start(head.status, head.reason, headers, announced_length(head))
            return
        view = ResponseView(head.status, head.reason, headers, announced_length(head))
        self._held = []
        run_phase(hooks, (self.ctx, view), lambda: self._start_response(head, view),
                  self._answer, self._hook_failed)
        if self._held is not None and self.exchange.upstream is not None:
            self.exchange.upstream.pauseProducing()  # a hook is waiting on something

    def _compression(self, head):
        """The head as clients (and the cache) see it; the encoder for the body, if any."""
        validators = [v for k, v in self.head.headers if k == b"if-none-match"]
        state = self.cache.state if self.cache is not None else None
        if state is not None and state.revalidating:
            validators += [v for k, v in state.entry.headers if k == b"etag"]
        head, self._encoder = compression.begin(self.rt.compression_for(self.ctx.route),
                                                self.head, head, validators)
        return head

    def _start_response(self, head, view):
        held, self._held = self._held, None
        if self.done:
            return
        self.sink.start(view.status, view.reason, view.headers, announced_length(head))
        upstream = self.exchange.upstream
        for event in held or ():
            if event is _END:
                self.exchange_end()
            else:
                self.exchange_data(event)
        if held and upstream is not None and self._relay is None:
            upstream.resumeProducing()

    def _response_headers(self, head):
        rt = self.rt
        headers = self.exchange.response_headers(head.status, rt.client_headers(head.headers),
                                                 self.ctx.route)
        if self.routing is not None:
            headers = self.routing.response_headers(headers)
        if rt.cache is not None:
            hidden = rt.cache.hidden_headers
            headers = [h for h in headers if h[0] not in hidden]
            if self.cache is not None and self.cache.status_header is not None:
                headers.append((b"cache-status", self.cache.status_header))
        if self._debug:
            headers.append(self.exchange.decision_header(self.ctx.route))
        return headers

    def exchange_waiting(self):
        if self._encoder is not None and self._held is None:
            # the backend paused: what the encoder holds goes out now (streams stay live)
            self._pass_on(self._encoder.flush())
        self.sink.flush()

    def exchange_data(self, data):
        if self._held is not None:
            self._held.append(data)
            return
        hooks = self.rt.hooks.response_body
        if hooks and self._body_refused(hooks, data):
            return  # hooks see the body as the backend sent it, before any encoding
        if self._encoder is not None:
            data = self._encoder.data(data)
        self._pass_on(data)

    def _pass_on(self, data):
        """A body piece as the client gets it: to the cache's copy, then to the sink."""
        if not data:
            return
        if self.cache is not None:
            self.cache.on_data(data)
        relay = self._relay
        if relay is None:
            if not self.sink.writing_paused:
                # The client keeps up: no relay needed yet (most small responses end here).
                self.sink.write(data)
                return
            spool_factory = self.rt.new_response_spool if self.ctx.route.buffering else None
            relay = self._relay = Relay(self.sink, self.exchange.upstream, spool_factory,
                                        self.sink.finish)
        relay.data(data)

    def _body_refused(self, hooks, data):
        """response_body hooks observe each piece; a non-None result cuts the response."""
        for call in hooks:
            try:
                verdict = call(self.ctx, data)
            except Exception:
                log.failure("rid={rid} response_body hook {h!r} failed", rid=self._rid, h=call)
                verdict = "hook failed"
            if verdict is not None:
                self.exchange.abandon()
                self.exchange_broken("response body refused by a hook: %s" % (verdict,))
                return True
        return False

    def exchange_end(self):
        if self._held is not None:
            self._held.append(_END)
            return
        self.exchange.member_done(self.sink.status < 500)
        if self._encoder is not None:
            self._pass_on(self._encoder.end())
            self._encoder = None
        if self.cache is not None and self.cache.on_end():
            return
        if self._relay is not None:
            self._relay.end()
        else:
            self.sink.finish()

    def exchange_failed(self, status, reason, headers, stale_ok):
        """No member gave an answer: ``status`` for the client unless the cache has one."""
        if stale_ok and self.cache is not None and self.cache.on_failed():
            return
        self.reply(status, reason, headers)

    def exchange_broken(self, reason):
        """The answer failed after its head went to the client: the client must see a broken
        message, never a clean end."""
        log.warn("rid={rid} {reason}", rid=self._rid, reason=reason)
        if self._relay is not None:
            self._relay.abort()
        self.sink.abort(reason)

    def abandon_upstream(self):
        """Drop the exchange in progress (the cache stage serves something else)."""
        if self.exchange is not None:
            self.exchange.abandon()

    def _tunnel(self, head):
        exchange = self.exchange
        if self._upgrade is None:
            exchange.abandon()
            exchange.upstream_failed(errors.UpstreamError(errors.BAD_RESPONSE, "unrequested 101", True))
            return
        headers = self.rt.client_headers(head.headers)
        headers += [(b"connection", b"upgrade"), (b"upgrade", self._upgrade)]
        self.sink.start(101, head.reason, headers)
        self.sink.start_tunnel(exchange.take_tunnel())
