"""A route's request stages, composed once per config snapshot (``RoutePlan``), and one
request's pass through them (``RoutingState``).

Only routes that configure one of these features get a plan; a request on any other route
pays one truth test of an empty dict (``Runtime.route_plans``). The stages, in request order:

``answer``            redirect / respond: the request is answered here, no backend
                      (after the ``request_head`` hooks, so IP lists and rate limits apply)
``pool``              the split picks the pool (sticky by address or cookie when asked)
``target``            rewriting: the target the backend receives (``routing.rewrite``)
``request headers``   set/add/remove on the header list sent upstream
``response headers``  Location back, set/add/remove, the security preset, the split cookie

The decision logic lives in ``rewrite``, ``templates``, ``headerops``, ``split``; this module
only composes them and feeds them the request's values.
"""

from __future__ import annotations

import re
from typing import Optional

from revproxy.config.routing_keys import (
    path_template,
    query_template,
    request_value_template,
    response_value_template,
    url_template,
)
from revproxy.pipeline.hooks import Answer
from revproxy.routing import rewrite
from revproxy.routing.headerops import HeaderOps, add_security_headers
from revproxy.routing.split import Split
from revproxy.routing.templates import TemplateValues

_LOCATION_FIELDS = (b"location", b"content-location")


def needs_plan(route) -> bool:
    """True when ``route`` uses any feature a ``RoutePlan`` carries out."""
    return bool(
        route.split or route.strip_prefix or route.add_prefix or route.set_path
        or route.rewrite or route.forward_query != "keep" or route.redirect or route.respond
        or route.request_headers or route.response_headers or route.security_headers
        or route.mirror
    )


def _header_ops(edits, compile_value) -> Optional[HeaderOps]:
    if edits is None:
        return None
    return HeaderOps([(n, compile_value(v)) for n, v in edits.set],
                     [(n, compile_value(v)) for n, v in edits.add], edits.remove)


class RoutePlan:
    """The compiled stages of one route."""

    def __init__(self, route, clock=None) -> None:
        self.route = route
        # the mirror stage (revproxy.server.mirror): it counts and bounds per runtime
        self.mirror = None
        if route.mirror:
            from revproxy.server.mirror import MirrorStage

            self.mirror = MirrorStage(route, clock)
        self.name = route.name.encode("ascii")
        self.path_regex = None if route.path_regex is None else re.compile(route.path_regex)
        self.answer = self._answer_stage(route)
        self.split = Split(route.split, route.split_sticky) if route.split else None
        self.rewrite = self._rewrite_stage(route)
        self.request_ops = _header_ops(route.request_headers, request_value_template)
        self.response_ops = _header_ops(route.response_headers, response_value_template)
        self.security_headers = route.security_headers
        self.location_back = route.rewrite_location and (route.strip_prefix or route.add_prefix)

    @staticmethod
    def _answer_stage(route):
        if route.redirect is not None:
            status, to = route.redirect
            return ("redirect", status, url_template(to))
        if route.respond is not None:
            respond = route.respond
            return ("respond", respond.status, respond.body.encode("utf-8"),
                    respond.content_type.encode("ascii"))
        return None

    @staticmethod
    def _rewrite_stage(route):
        rw = route.rewrite
        query = route.forward_query
        if query not in (rewrite.KEEP, rewrite.DROP):
            query = query_template(query)
        if not (route.strip_prefix or route.add_prefix or route.set_path or rw
                or query != rewrite.KEEP):
            return None
        return rewrite.TargetRewrite(
            strip_prefix=route.strip_prefix, add_prefix=route.add_prefix,
            regex=None if rw is None else re.compile(rw[0]),
            replace=None if rw is None else path_template(rw[1]),
            set_path=None if route.set_path is None else path_template(route.set_path),
            query=query,
        )

    def start(self, ctx, random) -> "RoutingState":
        """The state of one request on this route (values, captures, pool)."""
        return RoutingState(self, ctx, random)


class RoutingState:
    """One request's pass through a ``RoutePlan``."""

    __slots__ = ("plan", "ctx", "values", "pool", "cookie", "matched")

    def __init__(self, plan: RoutePlan, ctx, random) -> None:
        self.plan = plan
        self.ctx = ctx
        self.matched = False
        captures = ()
        if plan.rewrite is not None and plan.rewrite.regex is not None:
            found = plan.rewrite.captures(ctx.path)
            if found is not None:
                captures, self.matched = found, True
        if not self.matched and plan.path_regex is not None:
            match = plan.path_regex.match(ctx.path)
            captures = match.groups() if match is not None else ()
        self.values = _values(ctx, plan.name, captures)
        self.cookie = None
        self.pool = plan.route.pool
        if plan.split is not None:
            self.pool, self.cookie = plan.split.choose(random, ctx.peer.client_ip,
                                                      ctx.head.headers)

    def answer(self) -> Optional[Answer]:
        """The route's own answer (redirect / respond), or None to go on to a backend."""
        stage = self.plan.answer
        if stage is None:
            return None
        if stage[0] == "redirect":
            location = stage[2].render(self.values)
            return Answer(stage[1], [(b"location", location)],
                          reason="redirect of route %s" % self.plan.route.name)
        return Answer(stage[1], [(b"content-type", stage[3])], stage[2],
                      reason="respond of route %s" % self.plan.route.name)

    def target(self, raw_target: bytes) -> bytes:
        """The request-target the backend receives."""
        stage = self.plan.rewrite
        if stage is None:
            return raw_target
        return stage.target(raw_target, self.ctx.path, self.values, self.matched)

    def request_headers(self, headers):
        ops = self.plan.request_ops
        return headers if ops is None else ops.apply(headers, self.values)

    def response_headers(self, headers):
        """``headers`` for the client (a list; a new one may be returned)."""
        plan, ctx = self.plan, self.ctx
        if plan.location_back:
            headers = self._locations_back(headers)
        if plan.response_ops is not None:
            self.values.member = (ctx.member or "").encode("ascii", "replace")
            headers = plan.response_ops.apply(headers, self.values)
        if plan.security_headers:
            add_security_headers(headers, ctx.peer.scheme == "https")
        if self.cookie is not None:
            headers.append((b"set-cookie", self.cookie))
        return headers

    def _locations_back(self, headers):
        route, ctx = self.plan.route, self.ctx
        hosts = {ctx.head.host.lower()}
        if ctx.member:  # the member's "host:port", as a backend names itself in URLs
            hosts.add(ctx.member.lower().encode("ascii", "replace"))
        if route.host_header:
            hosts.add(route.host_header.lower().encode("ascii"))
        strip = None if route.strip_prefix is None else route.strip_prefix.encode("ascii")
        add = None if route.add_prefix is None else route.add_prefix.encode("ascii")
        out = []
        for name, value in headers:
            if name in _LOCATION_FIELDS:
                value = rewrite.location_back(
                    value, upstream_hosts=hosts, client_scheme=ctx.peer.scheme.encode("ascii"),
                    client_host=ctx.head.host, strip_prefix=strip, add_prefix=add)
            out.append((name, value))
        return out


def _values(ctx, route_name: bytes, captures) -> TemplateValues:
    head = ctx.head
    raw_path, raw_query = rewrite.split_target(head.target)
    uri = raw_path if raw_query is None else raw_path + b"?" + raw_query
    return TemplateValues(
        host=head.host, path=ctx.path.encode("latin-1"), uri=uri,
        query=raw_query or b"", scheme=ctx.peer.scheme.encode("ascii"),
        request_id=ctx.request_id, client_ip=ctx.peer.client_ip.encode("ascii", "replace"),
        route=route_name, captures=captures,
    )
