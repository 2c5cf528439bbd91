"""Member health as pure state machines: time is passed in as ``now`` (seconds, float).

* ``ProbeState``: active-probe verdicts, with rise/fall hysteresis.
* ``OutlierState``: passive ejection of a member whose real requests keep failing, with an
  exponential back-off and an explicit ``probing`` state before it is fully back.
* ``ejection_allowed``: the pool-wide ceiling on ejected members.
* ``SlowStart``: the weight ramp of a member (re)joining the pool.
* ``parse_agent_reply``: HAProxy's agent-check words (also used for a ``load_header`` value).

Nothing here does I/O or reads a clock; ``probe.py`` and ``agent.py`` do the talking.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple, Optional, Union


# -- active probes -------------------------------------------------------------------------
class ProbeState:
    """Up/down verdict from probe results: ``fall`` failures in a row take a healthy member
    down, ``rise`` passes in a row bring a down member back. A result agreeing with the
    current verdict resets the opposite run, so only *consecutive* results count."""

    __slots__ = ("rise", "fall", "healthy", "_run")

    def __init__(self, rise: int, fall: int, healthy: bool = True) -> None:
        if rise < 1 or fall < 1:
            raise ValueError("rise and fall must be at least 1")
        self.rise = rise
        self.fall = fall
        self.healthy = healthy
        self._run = 0  # consecutive results contradicting the current verdict

    def record(self, ok: bool) -> bool:
        """Account one probe result; True when ``healthy`` flipped because of it."""
        if ok == self.healthy:
            self._run = 0
            return False
        self._run += 1
        if self._run < (self.rise if ok else self.fall):
            return False
        self.healthy = ok
        self._run = 0
        return True


# -- passive outlier detection -------------------------------------------------------------
HEALTHY = "healthy"  # in rotation; consecutive failures are counted
EJECTED = "ejected"  # out of rotation until ``ejection_ends``
PROBING = "probing"  # ejection over; one probe (active, or one trial request) decides

# The whole machine: (state, event) -> next state. Anything else is a bug in the caller.
_TRANSITIONS = {
    (HEALTHY, "eject"): EJECTED,
    (EJECTED, "expire"): PROBING,
    (PROBING, "pass"): HEALTHY,
    (PROBING, "fail"): EJECTED,
}


class OutlierState:
    """Ejection of one member whose real requests keep failing (see ``record``).

    Back-off: the n-th ejection in a row lasts ``base_ejection * 2**n`` (n from 0), capped
    at ``max_ejection``. ``n`` only grows while the member fails again soon after each
    return; every full ``max_ejection`` seconds the member then stays healthy lowers it by
    one (as Envoy does), so an old incident is forgotten step by step.

    When the ejection is over the member is ``probing``: with active probes configured the
    next probe result (``record_probe``) decides; without, ``available`` lets ONE real
    request through (``take_trial``) and its result (``record``) decides. A pass makes the
    member healthy (counting from zero), a failure ejects it again for the next, longer
    period. ``consecutive_failures == 0`` turns all of this off: always healthy.
    """

    def __init__(self, consecutive_failures: int, base_ejection: float,
                 max_ejection: float) -> None:
        if consecutive_failures < 0:
            raise ValueError("consecutive_failures must be >= 0")
        if consecutive_failures and not 0 < base_ejection <= max_ejection:
            raise ValueError("need 0 < base_ejection <= max_ejection")
        self.consecutive_failures = consecutive_failures
        self.base_ejection = base_ejection
        self.max_ejection = max_ejection
        self.state = HEALTHY
        self.failures = 0  # consecutive failed requests while healthy
        self.times_ejected = 0  # the back-off exponent (see the class docstring)
        self.ejection_ends: Optional[float] = None
        self.trial_taken = False  # probing: the one trial request was handed out
        self._healthy_since: Optional[float] = None  # start of the forgiveness clock

    def _go(self, event: str) -> None:
        self.state = _TRANSITIONS[(self.state, event)]

    # -- queries -----------------------------------------------------------------------
    def ejected(self, now: float) -> bool:
        """The member is serving an ejection period at ``now``."""
        return self.state == EJECTED and now < self.ejection_ends  # type: ignore[operator]

    def available(self, now: float) -> bool:
        """May a real request be sent: healthy, or probing with the trial not yet taken.
        Moves an expired ejection to ``probing``. A pool with active probes treats
        ``probing`` members as unavailable instead (the probe decides)."""
        self.advance(now)
        return self.state == HEALTHY or (self.state == PROBING and not self.trial_taken)

    # -- events ------------------------------------------------------------------------
    def advance(self, now: float) -> bool:
        """Apply the passage of time: an expired ejection becomes ``probing``, and a long
        healthy stretch lowers the back-off. True when the state changed."""
        if self.state == EJECTED and now >= self.ejection_ends:  # type: ignore[operator]
            self._go("expire")
            self.trial_taken = False
            return True
        if self.state == HEALTHY and self.times_ejected and self._healthy_since is not None:
            steps = int((now - self._healthy_since) // self.max_ejection)
            if steps > 0:
                self.times_ejected = max(0, self.times_ejected - steps)
                self._healthy_since += steps * self.max_ejection
        return False

    def take_trial(self) -> bool:
        """Claim the single trial request of a ``probing`` member; False if not possible."""
        if self.state != PROBING or self.trial_taken:
            return False
        self.trial_taken = True
        return True

    def record(self, ok: bool, now: float, may_eject: bool = True) -> bool:
        """Account the outcome of one real request; True when the state changed.

        Healthy: a success resets the failure count; the ``consecutive_failures``-th
        failure in a row ejects, unless ``may_eject`` is False (the pool is at its
        ``ejection_allowed`` ceiling): the count is kept, so a later failure retries.
        Probing: the outcome of the trial request decides (ignored when no trial was
        taken: it is a late answer to a request sent before the ejection).
        Ejected: ignored (late answers do not extend the ejection).
        """
        if not self.consecutive_failures:
            return False
        self.advance(now)
        if self.state == HEALTHY:
            if ok:
                self.failures = 0
                return False
            self.failures += 1
            if self.failures < self.consecutive_failures or not may_eject:
                return False
            self._eject(now)
            return True
        if self.state == PROBING and self.trial_taken:
            return self._decide(ok, now)
        return False

    def record_probe(self, ok: bool, now: float) -> bool:
        """An active probe result: decides a ``probing`` member, ignored otherwise (the
        rise/fall verdict of ``ProbeState`` is separate). True when the state changed."""
        if not self.consecutive_failures:
            return False
        self.advance(now)
        if self.state != PROBING:
            return False
        return self._decide(ok, now)

    def _decide(self, ok: bool, now: float) -> bool:
        if ok:
            self._go("pass")
            self.failures = 0
            self.ejection_ends = None
            self._healthy_since = now
        else:
            self._go("fail")
            self._start_ejection(now)
        self.trial_taken = False
        return True

    def _eject(self, now: float) -> None:
        self._go("eject")
        self._start_ejection(now)

    def _start_ejection(self, now: float) -> None:
        length = min(self.max_ejection, self.base_ejection * 2 ** self.times_ejected)
        if length < self.max_ejection:  # past the cap the exponent has no effect: stop it
            self.times_ejected += 1
        self.ejection_ends = now + length
        self.failures = 0
        self._healthy_since = None


def ejection_allowed(ejected_count: int, pool_size: int, max_ejected_percent: float) -> bool:
    """May one more member be ejected? Only while the ejected share stays at or below
    ``max_ejected_percent`` of the pool, rounded down: at 50 %, 1 of 2 or 3 members,
    2 of 4; at 10 % none of 9. A single-member pool is never ejected below 100 %."""
    return (ejected_count + 1) * 100 <= pool_size * max_ejected_percent


# -- slow start ----------------------------------------------------------------------------
class SlowStart:
    """Weight ramp of a member that (re)joins: ``factor`` grows linearly from ``floor``
    (default 0.1, so the member gets *some* traffic to warm up on) to 1.0 over
    ``duration`` seconds after ``begin``. Duration 0, or never begun: always 1.0."""

    __slots__ = ("duration", "floor", "started")

    def __init__(self, duration: float, floor: float = 0.1) -> None:
        self.duration = duration
        self.floor = floor
        self.started: Optional[float] = None

    def begin(self, now: float) -> None:
        """The member (re)joined at ``now``: ramp from the floor again."""
        self.started = now if self.duration > 0 else None

    def factor(self, now: float) -> float:
        """The weight multiplier at ``now``, in [floor, 1.0]."""
        if self.started is None:
            return 1.0
        elapsed = now - self.started
        if elapsed >= self.duration:
            self.started = None  # done: later calls are a single test
            return 1.0
        if elapsed <= 0:
            return self.floor
        return self.floor + (1.0 - self.floor) * (elapsed / self.duration)


# -- agent replies -------------------------------------------------------------------------
UP = "up"
DOWN = "down"
DRAIN = "drain"
MAX_WEIGHT_PERCENT = 256.0  # HAProxy's ceiling on a server weight

# Word -> state, per HAProxy's agent-check: "ready" leaves maintenance/drain (up here);
# "maint", "stopped" and "fail" all take the member out of rotation (down here).
_STATE_WORDS = {
    "up": UP, "ready": UP, "drain": DRAIN,
    "down": DOWN, "maint": DOWN, "stopped": DOWN, "fail": DOWN,
}
_RANK = {None: 0, UP: 1, DRAIN: 2, DOWN: 3}  # the most restrictive word wins
_SEPARATORS = re.compile(r"[\s,]+")
_PERCENT = re.compile(r"([0-9]+)%\Z")


class AgentReport(NamedTuple):
    """What a member says about itself; None = no change. ``weight_percent`` scales its
    configured weight (0 means drain it); ``reason`` is the reply's ``#comment`` text, or
    why the agent could not be asked."""

    weight_percent: Optional[float]
    state: Optional[str]
    reason: str = ""


@functools.lru_cache(maxsize=256)  # load headers repeat a handful of values
def parse_agent_reply(text: Union[str, bytes]) -> AgentReport:
    """Parse an agent reply / load header: words separated by commas or blanks, such as
    ``"75%"``, ``"drain"``, ``"100%, ready # warm"``. Case-insensitive; unknown words are
    ignored; the last percentage wins (capped at 256 %); when several state words appear
    the most restrictive wins (down > drain > up). Never raises: garbage gives
    ``AgentReport(None, None)``."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    elif not isinstance(text, str):
        return AgentReport(None, None, "")
    words, _, comment = text.partition("#")
    weight: Optional[float] = None
    state: Optional[str] = None
    for word in _SEPARATORS.split(words.lower()):
        found = _STATE_WORDS.get(word)
        if found is not None:
            if _RANK[found] > _RANK[state]:
                state = found
            continue
        m = _PERCENT.match(word)
        if m is not None:
            digits = m.group(1).lstrip("0")
            # Bounded before int(): CPython refuses very long digit strings.
            weight = MAX_WEIGHT_PERCENT if len(digits) > 3 else min(
                MAX_WEIGHT_PERCENT, float(int(digits or "0")))
    return AgentReport(weight, state, comment.strip())
