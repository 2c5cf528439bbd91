"""One member's balancing state: statistics, health, slow start, reported load.

``MemberState`` combines the pure pieces of ``revproxy.balancing.health`` and ``stats``; the
connection pool of the member (``revproxy.upstream.pool.MemberPool``) carries one as
``.state`` and exposes ``IMember``'s attributes from it.
"""

from __future__ import annotations

from revproxy.balancing import health
from revproxy.balancing.stats import MemberStats

HEALTHY, DOWN, EJECTED, PROBING, DRAINING = "healthy", "down", "ejected", "probing", "draining"
DISABLED = "disabled"  # taken out by an operator (the admin API), not by its health


class MemberState:
    def __init__(self, pool_config, configured_weight: int):
        self.configured_weight = configured_weight
        self.stats = MemberStats()
        check = pool_config.health
        self.probe = health.ProbeState(check.rise, check.fall) if check is not None else None
        outlier = pool_config.outlier
        self.outlier = health.OutlierState(
            outlier.consecutive_failures, outlier.base_ejection, outlier.max_ejection
        )
        self.slow_start = health.SlowStart(pool_config.slow_start)
        self.reported_percent = None  # agent / load header: share of the configured weight
        self.reported_state = None  # health.DOWN, health.DRAIN or None
        self.last_probe = ""  # why the last active probe passed or failed
        # Operator overrides (the admin API): DRAINING or DISABLED, or None; a weight that
        # replaces the configured one, or None. Kept by a reload (see BalancedPool.overrides).
        self.admin_state = None
        self.admin_weight = None
        self.ejections = 0  # times passive checks ejected it (the admin status shows it)

    # -- what the pool asks ------------------------------------------------------------------
    def status(self, now: float) -> str:
        if self._plain():
            return HEALTHY
        if self.admin_state is not None:
            return self.admin_state
        if self.probe is not None and not self.probe.healthy:
            return DOWN
        if self.reported_state == health.DOWN:
            return DOWN
        self.outlier.advance(now)
        if self.outlier.state == health.EJECTED:
            return EJECTED
        if self.outlier.state == health.PROBING:
            return PROBING
        if self.reported_state == health.DRAIN or self.reported_percent == 0:
            return DRAINING
        return HEALTHY

    def _plain(self) -> bool:
        """The common case, checked first: nothing has ever been wrong with the member."""
        return (self.outlier.state == health.HEALTHY and self.reported_state is None
                and (self.probe is None or self.probe.healthy)
                and self.reported_percent != 0 and self.admin_state is None)

    def may_take(self, now: float) -> bool:
        """Whether a new request may be sent: healthy, or probing and its one trial request
        still free (when no active probe decides instead)."""
        status = self.status(now)
        if status == HEALTHY:
            return True
        return status == PROBING and self.probe is None and not self.outlier.trial_taken

    def awaiting_trial(self, now: float) -> bool:
        """Probing after an ejection, without active probes, its trial not yet sent."""
        return (self.probe is None and self.status(now) == PROBING
                and not self.outlier.trial_taken)

    def weight(self, now: float) -> float:
        configured = self.configured_weight if self.admin_weight is None else self.admin_weight
        weight = float(configured) * self.slow_start.factor(now)
        if self.reported_percent is not None:
            weight *= self.reported_percent / 100.0
        return max(weight, 0.001)

    # -- what happened -------------------------------------------------------------------------
    def started(self, now: float) -> None:
        self.stats.start()
        if self.outlier.state == health.PROBING:
            self.outlier.take_trial()

    def outcome(self, ok: bool, now: float, may_eject: bool) -> None:
        """A real request's outcome (passive checks)."""
        outlier = self.outlier
        if ok and outlier.state == health.HEALTHY and not outlier.failures:
            return  # nothing to count or to change
        was = self.status(now)
        self.outlier.record(ok, now, may_eject)
        self._maybe_ramp(was, now)

    def probe_result(self, ok: bool, reason: str, now: float) -> bool:
        """An active probe's result; True when the member went up or down because of it."""
        self.last_probe = reason
        was = self.status(now)
        changed = self.probe.record(ok) if self.probe is not None else False
        self.outlier.record_probe(ok, now)
        self._maybe_ramp(was, now)
        return changed

    def report(self, report, now: float) -> None:
        """A load report: an ``AgentReport`` (agent poller) or the text of a load header
        (HAProxy agent-check syntax)."""
        if not isinstance(report, health.AgentReport):
            report = health.parse_agent_reply(report)
        was = self.status(now)
        if report.weight_percent is not None:
            self.reported_percent = report.weight_percent
        if report.state is not None:
            self.reported_state = None if report.state == health.UP else report.state
        self._maybe_ramp(was, now)

    def _maybe_ramp(self, was: str, now: float) -> None:
        if was != HEALTHY and self.status(now) == HEALTHY:
            self.slow_start.begin(now)
            # Its latency record is of the failures that took it out: start afresh, so
            # latency-aware policies try it again (slow start limits how much at first).
            self.stats.ewma = 0.0
            self.stats.last_update = None
