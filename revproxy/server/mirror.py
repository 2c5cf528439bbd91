"""Request mirroring (``mirror = "pool"`` on a route): a copy of each request goes to a second
pool in the background and its answer is dropped.

The copy starts right after the request's own exchange did (``ProxyRequest._exchange``) and
nothing the client waits for depends on it: the mirror's connect, answer, slowness or failure
only touch its own ``MirrorRequest``. Bounds, each counted in ``MirrorStage.counts``:

* ``mirror_percent``: the share of requests copied (``not-sampled`` for the others);
* ``mirror_max_body``: a request whose body is larger (or spilled to a file) is not copied
  (``body-too-large``): the copy is sent from memory;
* ``mirror_max_in_flight``: copies still waiting for their answer; beyond it the copy is
  dropped (``busy``): a slow or dead mirror pool cannot pile up work;
* Upgrade requests (WebSocket) are never copied (``upgrade``).

The counts (and copies in flight) are shown per route by the admin ``/status``
(``mirror_status``) and kept across a reload that leaves the route's mirror settings
unchanged (``keep_mirror_stages``).

A copy carries ``x-revproxy-mirror: 1`` (besides the headers the original got, request id
included), so the mirror's backend can tell. A copy lives at most as long as the mirror
pool's own ``connect_timeout`` / ``first_byte_timeout`` / ``read_timeout`` allow.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.pipeline.context import RequestContext
from revproxy.protection.logthrottle import LogThrottle

log = Logger(namespace="revproxy.mirror")

MIRROR_HEADER = b"x-revproxy-mirror"

SENT, NOT_SAMPLED, TOO_LARGE, BUSY, UPGRADE = (
    "sent", "not-sampled", "body-too-large", "busy", "upgrade")
ANSWERED, FAILED = "answered", "failed"


def mirror_decision(draw: float, percent: float, body, max_body: int, in_flight: int,
                    max_in_flight: int, upgrade: bool) -> str:
    """Whether to copy a request (pure): ``SENT`` or the reason not to. ``draw`` is a
    uniform number in [0, 1); ``body`` the outgoing body (bytes, a spool in a file, None)."""
    if upgrade:
        return UPGRADE
    if percent < 100.0 and draw * 100.0 >= percent:
        return NOT_SAMPLED
    if body is not None and (not isinstance(body, bytes) or len(body) > max_body):
        return TOO_LARGE
    if in_flight >= max_in_flight:
        return BUSY
    return SENT


def mirrored_head(head_bytes: bytes) -> bytes:
    """The serialised request head with the mirror's marker field added."""
    return head_bytes[:-2] + MIRROR_HEADER + b": 1\r\n\r\n"


class MirrorStage:
    """The mirror of one route in one runtime: its settings, its copies in flight, and
    how many requests met each fate (``counts``)."""

    def __init__(self, route, clock):
        self.route = route.name
        self.pool = route.mirror
        self.percent = route.mirror_percent
        self.max_body = route.mirror_max_body
        self.max_in_flight = route.mirror_max_in_flight
        self.in_flight = 0
        self.counts = dict.fromkeys((SENT, NOT_SAMPLED, TOO_LARGE, BUSY, UPGRADE, ANSWERED,
                                     FAILED), 0)
        self._drops = LogThrottle(clock) if clock is not None else None

    @property
    def settings(self):
        """What the route configures for its mirror: a stage with the same settings after
        a reload is the same stage (``keep_mirror_stages``)."""
        return (self.route, self.pool, self.percent, self.max_body, self.max_in_flight)

    def describe(self) -> dict:
        """The stage for the admin ``/status``: settings, copies in flight, counts."""
        return {"pool": self.pool, "percent": self.percent, "max_body": self.max_body,
                "max_in_flight": self.max_in_flight, "in_flight": self.in_flight,
                "counts": dict(self.counts)}

    def send(self, request, outgoing, upgrade: bool) -> str:
        """Copy ``request`` (a ProxyRequest whose exchange just started with ``outgoing``,
        its (head bytes, body)) to the mirror pool, or not; returns the fate."""
        from revproxy.server.exchange import MemberExchange

        rt = request.rt
        head_bytes, body = outgoing
        fate = mirror_decision(rt.random(), self.percent, body, self.max_body,
                               self.in_flight, self.max_in_flight, upgrade)
        self.counts[fate] += 1
        if fate != SENT:
            if fate in (BUSY, TOO_LARGE) and self._drops is not None and self._drops.allow():
                log.info("route {route}: request not mirrored to {pool}: {why} ({counts})",
                         route=self.route, pool=self.pool, why=fate, counts=self.counts)
            return fate
        copy = MirrorRequest(self, rt, request.ctx)
        copy.exchange = MemberExchange(copy, rt.backends[self.pool],
                                       (mirrored_head(head_bytes), body))
        self.in_flight += 1
        copy.exchange.start()
        return fate

    def finished(self, ok: bool) -> None:
        self.in_flight -= 1
        self.counts[ANSWERED if ok else FAILED] += 1


def keep_mirror_stages(runtime, previous) -> None:
    """On a reload (``previous``: the running runtime), a route whose mirror settings did
    not change keeps its ``MirrorStage``: its counters go on, and copies still in flight
    count against the same ``mirror_max_in_flight``. Nothing of ``previous`` is modified."""
    old_plans = getattr(previous, "route_plans", None)
    if not old_plans:
        return
    for name, plan in runtime.route_plans.items():
        old = old_plans.get(name)
        if (plan.mirror is not None and old is not None and old.mirror is not None
                and old.mirror.settings == plan.mirror.settings):
            plan.mirror = old.mirror


def mirror_status(runtime) -> dict:
    """Route name -> ``MirrorStage.describe()`` for every mirroring route (admin status)."""
    plans = getattr(runtime, "route_plans", None) or {}
    return {name: plan.mirror.describe() for name, plan in sorted(plans.items())
            if plan.mirror is not None}


class MirrorRequest:
    """The owner of one copy's ``MemberExchange`` (the contract in ``server/exchange.py``):
    everything the mirror answers is dropped; the stage hears once that it ended."""

    __slots__ = ("stage", "rt", "ctx", "exchange", "done", "started", "status")

    body_consumed = False  # the copy is sent from memory: a retry may send it again

    def __init__(self, stage, rt, original):
        self.stage = stage
        self.rt = rt
        ctx = self.ctx = RequestContext(original.head, original.peer, rt.clock.seconds())
        ctx.request_id = original.request_id
        ctx.route = original.route
        ctx.path = original.path
        ctx.query = original.query
        self.exchange = None
        self.done = False
        self.started = False  # the "sink" (self) has a response head
        self.status = 0

    @property
    def sink(self):
        return self

    def _end(self, ok, why=None):
        if self.done:
            return
        self.done = True
        if why is not None:
            log.debug("rid={rid} mirror to {pool}: {why}", why=why, pool=self.stage.pool,
                      rid=self.ctx.request_id.decode("ascii", "replace"))
        self.stage.finished(ok)
        self.exchange = None

    # -- MemberExchange's callbacks ----------------------------------------------------------
    def exchange_informational(self, head):
        pass

    def exchange_waiting(self):
        pass

    def exchange_data(self, data):
        pass

    def exchange_head(self, head):
        if head.status == 101:  # not asked for (upgrades are not copied): drop it
            self.exchange.abandon()
            self.exchange.member_done(True)
            self._end(False, "unrequested 101")
            return
        self.started = True
        self.status = head.status

    def exchange_end(self):
        self.exchange.member_done(self.status < 500)
        self._end(True)

    def exchange_failed(self, status, reason, headers, stale_ok):
        self._end(False, "%d %s" % (status, reason))

    def exchange_broken(self, reason):
        self._end(False, reason)
