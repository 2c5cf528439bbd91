"""A named pool of backend members and how the next request gets one.

Candidates are the members that are healthy (or, for one trial request, probing after an
ejection), not draining, and under ``max_connections_per_member``. When fewer than
``panic_threshold`` of the members are healthy the pool panics (as Envoy does): every member
becomes a candidate again, and the log says so. The policy (an ``IBalancer``) picks among the
candidates; the pool does the bookkeeping around it: statistics, outlier ejection, slow start,
reported load, the wait queue and the retry budget.
"""

from __future__ import annotations

import math

from twisted.logger import Logger

from revproxy.balancing.budget import RetryBudget
from revproxy.balancing.health import ejection_allowed
from revproxy.balancing.member import DISABLED, DRAINING, EJECTED, PROBING, MemberState
from revproxy.balancing.queue import WaitQueue
from revproxy.upstream.proxysend import member_pool_class

log = Logger(namespace="revproxy.balancing")

# why choose() found nobody
NO_MEMBER, NONE_HEALTHY, ALL_BUSY = "no-member", "none-healthy", "all-busy"


class BalancedPool:
    """The members of one configured pool, their state, and the choice among them."""

    def __init__(self, clock, pool_config, parser_limits, deadlines, outbox, balancer, tls=None):
        self.name = pool_config.name
        self.tls = tls  # revproxy.upstream.tls.ClientTLSPolicy for https:// members, or None
        self.config = pool_config
        self.balancer = balancer
        self._clock = clock
        self._parser_limits = parser_limits
        self._deadlines = deadlines
        self._outbox = outbox
        self.members = []  # MemberPool, each with .state (MemberState)
        self.queue = WaitQueue(clock, pool_config.queue_size, pool_config.queue_timeout)
        self.budget = RetryBudget(pool_config.retry_budget)
        self.panicking = False
        self._trial_pending = False  # a member may be probing: look for it first
        self.load_header_name = pool_config.load_header.lower().encode("ascii")
        self._limit = pool_config.max_connections_per_member
        # MemberPool, or PrivateMemberPool with send_proxy_protocol (upstream/proxysend.py)
        self._member_class = member_pool_class(pool_config)
        # Operator overrides by member name: {"state": DRAINING/DISABLED, "weight": N}; a
        # reload that rebuilds the pool hands them on (runtimeparts.backends), a member that joins
        # (again) takes its entry.
        self.overrides = {}

    # -- membership ----------------------------------------------------------------------------
    def set_addresses(self, addresses):
        """Make the members exactly ``addresses`` (``(ip, port, weight)``, or ``(ip, port,
        weight, tls_host)`` where ``tls_host`` is the host an https:// URL names, None for
        http://), keeping the state and connections of members that stay; removed members
        close their idle connections."""
        now = self._clock.seconds()
        current = {(m.host, m.port, m.tls_host): m for m in self.members}
        members = []
        for address in addresses:
            host, port, weight = address[:3]
            tls_host = address[3] if len(address) > 3 else None
            member = current.pop((host, port, tls_host), None)
            if member is None:
                tls = self.tls.creator_for(tls_host) if tls_host is not None else None
                member = self._member_class(self._clock, host, port, self.config,
                                            self._parser_limits, self._deadlines, self._outbox,
                                            tls, tls_host)
                member.state = MemberState(self.config, weight)
                self._apply_overrides(member)
                if self.members:  # a member joining a running pool ramps up
                    member.state.slow_start.begin(now)
            else:
                member.state.configured_weight = weight
            members.append(member)
        for gone in current.values():
            gone.close_idle()
        changed = [m.name for m in members] != [m.name for m in self.members]
        self.members = members
        if changed:
            self.balancer.set_members(members)

    # -- choosing ------------------------------------------------------------------------------
    def candidates(self, now, exclude=()):
        """(candidates, why none): members that may take a request now."""
        if not self.members:
            return [], NO_MEMBER
        usable, busy = [], 0
        for member in self.members:
            if member in exclude:
                continue
            if member.state.may_take(now):
                if self._limit and member.in_flight >= self._limit:
                    busy += 1
                    continue
                usable.append(member)
        healthy_share = (len(usable) + busy) / float(len(self.members))
        threshold = self.config.panic_threshold
        panic = threshold > 0 and healthy_share < threshold
        if panic != self.panicking:
            self.panicking = panic
            if panic:
                log.warn("pool {pool} in panic: {h:.0%} of members healthy (threshold {t:.0%}); "
                         "balancing over all of them", pool=self.name, h=healthy_share, t=threshold)
            else:
                log.info("pool {pool} out of panic", pool=self.name)
        if panic:  # members an operator took out stay out
            usable = [m for m in self.members if m not in exclude
                      and m.state.admin_state is None
                      and not (self._limit and m.in_flight >= self._limit)]
        if usable:
            return usable, None
        return [], ALL_BUSY if busy else NONE_HEALTHY

    def choose(self, facts, exclude=()):
        """(member, None) or (None, why)."""
        candidates, why = self.candidates(self._clock.seconds(), exclude)
        if not candidates:
            return None, why
        if len(candidates) == 1:
            return candidates[0], None
        if self._trial_pending:
            # A member back from ejection needs its one trial request to return at all; a
            # policy might never pick it (peak-EWMA remembers its failures), so it gets it.
            for member in candidates:
                if member.state.awaiting_trial(self._clock.seconds()):
                    facts.note("trial request after ejection")
                    return member, None
            self._trial_pending = False
        return self.balancer.pick(candidates, facts), None

    # -- bookkeeping ---------------------------------------------------------------------------
    def started(self, member):
        member.state.started(self._clock.seconds())
        self.balancer.started(member)

    def finished(self, member, ok, duration):
        now = self._clock.seconds()
        state = member.state
        if ok:
            state.stats.finish(duration, now)
            state.outcome(True, now, True)
        else:
            # A refused connect takes a millisecond: counted at its duration, a broken member
            # would look fast to latency-aware policies. A failure costs at least a second.
            state.stats.fail(now, max(duration, min(self.config.first_byte_timeout, 1.0)))
            self._failed(member, now)
        self.balancer.finished(member, ok, duration)
        if self._limit:
            self.queue.wake_one()

    def _failed(self, member, now):
        state = member.state
        was = state.status(now)
        state.outcome(False, now, self._may_eject(now))
        if state.status(now) == EJECTED:
            self._trial_pending = True
        if was != EJECTED and state.status(now) == EJECTED:
            state.ejections += 1
            log.warn("pool {pool}: member {m} ejected after {n} consecutive failures, until +{s:.0f}s",
                     pool=self.name, m=member.name, n=self.config.outlier.consecutive_failures,
                     s=state.outlier.ejection_ends - now)

    def _may_eject(self, now):
        ejected = sum(1 for m in self.members if m.state.status(now) in (EJECTED, PROBING))
        return ejection_allowed(ejected, len(self.members), self.config.outlier.max_ejected_percent)

    def probe_result(self, member, ok, reason):
        now = self._clock.seconds()
        if member.state.probe_result(ok, reason, now):
            log.warn("pool {pool}: member {m} is {state} ({reason})", pool=self.name,
                     m=member.name, state="up" if ok else "down", reason=reason)

    def report(self, member, report):
        """A load report from the member's agent (AgentReport) or its load header (text)."""
        member.state.report(report, self._clock.seconds())

    def retry_after(self) -> int:
        """Seconds a client should wait when nobody can serve: the soonest ejection end."""
        now = self._clock.seconds()
        ends = [m.state.outlier.ejection_ends for m in self.members
                if m.state.outlier.ejection_ends is not None and m.state.outlier.ejection_ends > now]
        if not ends:
            return 1
        return max(1, min(30, int(math.ceil(min(ends) - now))))

    # -- operator overrides (the admin API) -------------------------------------------------
    def member_named(self, name):
        """The member called ``name`` (``MemberPool.name``), or None."""
        for member in self.members:
            if member.name == name:
                return member
        return None

    def set_admin_state(self, member, state):
        """Take ``member`` out (``DRAINING``: no new request, those in flight finish and its
        connections stay; ``DISABLED``: the same, and its idle connections close) or put it
        back (None: it ramps up through slow start)."""
        if state not in (None, DRAINING, DISABLED):
            raise ValueError("admin state must be None, %r or %r" % (DRAINING, DISABLED))
        was = member.state.admin_state
        member.state.admin_state = state
        self._remember(member.name, "state", state)
        if state == DISABLED:
            member.close_idle()
            member.closing = False  # it may come back: only the idle ones are closed
        elif state is None and was is not None:
            member.state.slow_start.begin(self._clock.seconds())
        log.info("pool {pool}: member {m} {what} by the admin API", pool=self.name,
                 m=member.name, what=state or "enabled")

    def set_admin_weight(self, member, weight):
        """Give ``member`` the weight ``weight`` instead of its configured one (None: back
        to the configured weight). Policies that read weights only at ``set_members`` (the
        hash ring) are told again."""
        member.state.admin_weight = weight
        self._remember(member.name, "weight", weight)
        self.balancer.set_members(self.members)

    def _remember(self, name, key, value):
        entry = self.overrides.setdefault(name, {})
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
        if not entry:
            del self.overrides[name]

    def _apply_overrides(self, member):
        entry = self.overrides.get(member.name)
        if entry:
            member.state.admin_state = entry.get("state")
            member.state.admin_weight = entry.get("weight")

    # -- seeing why ----------------------------------------------------------------------------
    def describe(self, now):
        return {
            "policy": self.balancer.name,
            "panic": self.panicking,
            "queued": len(self.queue),
            "members": [_describe_member(m, now) for m in self.members],
        }

    def close_idle(self):
        for member in self.members:
            member.close_idle()
        self.queue.stop()

    # -- reload --------------------------------------------------------------------------------
    def update_config(self, pool_config):
        """A reload changed only the members or weights (``config.diff.MEMBERS``): take the
        new config; the resolver then brings the members through ``set_addresses``."""
        self.config = pool_config

    def drain(self):
        """A reload removed or rebuilt this pool: idle connections close now, busy ones when
        their exchange ends (never pooled again). Requests still queued or in flight on the
        old runtime are served as before (the queue keeps its timer)."""
        for member in self.members:
            member.close_idle()


def _describe_member(member, now):
    state = member.state
    return {
        "name": member.name,
        "state": state.status(now),
        "in_flight": member.in_flight,
        "ewma_ms": round(member.ewma * 1000.0, 3),
        "weight": round(member.weight, 3),
        "configured_weight": state.configured_weight,
        "admin_state": state.admin_state,
        "admin_weight": state.admin_weight,
        "requests": state.stats.requests,
        "failures": state.stats.failures,
        "connect_errors": member.connect_errors,
        "ejections": state.ejections,
        "open_connections": member.open,
        "idle_connections": member.idle,
        "ejected_until": state.outlier.ejection_ends if state.status(now) == EJECTED else None,
        "reported": state.reported_state or (
            "%g%%" % state.reported_percent if state.reported_percent is not None else None),
        "last_probe": state.last_probe or None,
    }


__all__ = ["BalancedPool", "NO_MEMBER", "NONE_HEALTHY", "ALL_BUSY", "DRAINING", "DISABLED"]
