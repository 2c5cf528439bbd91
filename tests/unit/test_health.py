"""Member health state machines (``revproxy.balancing.health``): pure, on explicit times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.balancing.health import (
    DOWN, DRAIN, EJECTED, HEALTHY, PROBING, UP, AgentReport, OutlierState, ProbeState,
    SlowStart, ejection_allowed, parse_agent_reply,
)


# -- ProbeState ----------------------------------------------------------------------------
def test_probe_goes_down_after_fall_failures():
    """A healthy member goes down on exactly the ``fall``-th consecutive failure."""
    state = ProbeState(rise=2, fall=3)
    assert [state.record(False) for _ in range(3)] == [False, False, True]
    assert state.healthy is False


def test_probe_success_resets_failure_run():
    """A pass between failures restarts the count: 2 fails, pass, 2 fails stay healthy."""
    state = ProbeState(rise=2, fall=3)
    for ok in (False, False, True, False, False):
        assert state.record(ok) is False
    assert state.healthy is True


def test_probe_comes_back_after_rise_passes():
    """A down member comes back on the ``rise``-th consecutive pass, not before."""
    state = ProbeState(rise=2, fall=1, healthy=False)
    assert state.record(True) is False
    assert state.record(False) is False  # resets the rise run
    assert state.record(True) is False
    assert state.record(True) is True
    assert state.healthy is True


def test_probe_refuses_zero_rise_or_fall():
    """rise/fall below 1 would flip without any result: refused."""
    with pytest.raises(ValueError):
        ProbeState(rise=0, fall=1)
    with pytest.raises(ValueError):
        ProbeState(rise=1, fall=0)


@settings(max_examples=200)
@given(st.integers(1, 5), st.integers(1, 5), st.booleans(), st.lists(st.booleans(), max_size=60))
def test_probe_flips_only_after_consecutive_run(rise, fall, initial, results):
    """Every flip is preceded by exactly rise (up) / fall (down) agreeing results since
    the previous flip's end, and the verdict never changes otherwise."""
    state = ProbeState(rise, fall, healthy=initial)
    run = 0  # consecutive results contradicting the verdict, tracked independently
    for ok in results:
        before = state.healthy
        run = run + 1 if ok != before else 0
        changed = state.record(ok)
        needed = rise if ok else fall
        assert changed == (run == needed)
        assert state.healthy == (ok if changed else before)
        if changed:
            run = 0


# -- OutlierState --------------------------------------------------------------------------
def eject(state, now, times=None):
    """Fail ``consecutive_failures`` requests at ``now``."""
    for _ in range(times or state.consecutive_failures):
        state.record(False, now)


def test_outlier_ejects_at_threshold_for_base_time():
    """The threshold-th consecutive failure ejects for base_ejection seconds."""
    state = OutlierState(3, 10.0, 100.0)
    assert state.record(False, 0.0) is False
    assert state.record(False, 0.0) is False
    assert state.record(False, 1.0) is True
    assert state.state == EJECTED
    assert state.ejection_ends == 11.0
    assert state.ejected(10.9) and not state.ejected(11.0)


def test_outlier_success_resets_count():
    """A success between failures restarts the count: no ejection."""
    state = OutlierState(3, 10.0, 100.0)
    for ok in (False, False, True, False, False):
        assert state.record(ok, 0.0) is False
    assert state.state == HEALTHY


def test_outlier_zero_threshold_disables():
    """consecutive_failures == 0: any number of failures never ejects."""
    state = OutlierState(0, 10.0, 100.0)
    eject(state, 0.0, times=50)
    assert state.state == HEALTHY and state.available(0.0)


def test_outlier_ejection_expires_into_probing_with_one_trial():
    """After the ejection, the member is probing and gets exactly one trial request."""
    state = OutlierState(1, 10.0, 100.0)
    eject(state, 0.0)
    assert not state.available(9.9)
    assert state.available(10.0)
    assert state.state == PROBING
    assert state.take_trial() is True
    assert not state.available(10.0)
    assert state.take_trial() is False


def test_outlier_trial_success_restores_member():
    """A passing trial request makes the member healthy again."""
    state = OutlierState(1, 10.0, 100.0)
    eject(state, 0.0)
    state.available(10.0)
    state.take_trial()
    assert state.record(True, 10.5) is True
    assert state.state == HEALTHY and state.ejection_ends is None


def test_outlier_trial_failure_reejects_with_doubled_time():
    """A failing trial ejects again for twice as long."""
    state = OutlierState(1, 10.0, 100.0)
    eject(state, 0.0)
    state.available(10.0)
    state.take_trial()
    assert state.record(False, 11.0) is True
    assert state.state == EJECTED
    assert state.ejection_ends == 31.0


def test_outlier_results_without_trial_are_ignored():
    """Late answers (ejected, or probing before the trial) change nothing."""
    state = OutlierState(1, 10.0, 100.0)
    eject(state, 0.0)
    assert state.record(False, 5.0) is False
    assert state.ejection_ends == 10.0
    assert state.record(True, 12.0) is False  # probing, trial not taken
    assert state.state == PROBING


def test_outlier_active_probe_decides_probing():
    """With active probes, record_probe decides a probing member; ignored otherwise."""
    state = OutlierState(1, 10.0, 100.0)
    assert state.record_probe(False, 0.0) is False  # healthy: not ours to judge
    eject(state, 0.0)
    assert state.record_probe(True, 5.0) is False  # still ejected
    assert state.record_probe(True, 10.0) is True
    assert state.state == HEALTHY


def test_outlier_backoff_is_capped():
    """Ejections double 10, 20, 40, 80 then stay at max_ejection (100)."""
    state = OutlierState(1, 10.0, 100.0)
    now, lengths = 0.0, []
    for _ in range(6):
        eject(state, now) if state.state == HEALTHY else None
        lengths.append(state.ejection_ends - now)
        now = state.ejection_ends
        state.available(now)
        state.take_trial()
        state.record(False, now)
    assert lengths == [10.0, 20.0, 40.0, 80.0, 100.0, 100.0]


def test_outlier_backoff_decays_after_healthy_stretch():
    """Each max_ejection seconds served healthily lowers the back-off one step."""
    state = OutlierState(1, 10.0, 100.0)
    eject(state, 0.0)  # 10 s, exponent -> 1
    state.record_probe(False, 10.0)  # 20 s, exponent -> 2
    state.record_probe(True, 30.0)  # healthy since 30
    eject(state, 30.0 + 150.0)  # one step forgiven: exponent 1 -> 20 s
    assert state.ejection_ends - 180.0 == 20.0
    state.record_probe(True, 200.0)
    eject(state, 200.0 + 1000.0)  # fully forgiven: base again
    assert state.ejection_ends - 1200.0 == 10.0


def test_outlier_may_eject_false_keeps_count():
    """At the pool's ceiling no ejection happens; a later allowed failure ejects."""
    state = OutlierState(2, 10.0, 100.0)
    state.record(False, 0.0, may_eject=False)
    assert state.record(False, 0.0, may_eject=False) is False
    assert state.state == HEALTHY
    assert state.record(False, 1.0, may_eject=True) is True


def test_outlier_refuses_bad_times():
    """base_ejection must be positive and not above max_ejection."""
    with pytest.raises(ValueError):
        OutlierState(1, 0.0, 10.0)
    with pytest.raises(ValueError):
        OutlierState(1, 20.0, 10.0)


@settings(max_examples=150)
@given(
    st.integers(1, 4), st.floats(0.5, 50.0), st.floats(1.0, 20.0),
    st.lists(st.floats(0.0, 30.0), min_size=1, max_size=25),
)
def test_outlier_lengths_grow_and_never_exceed_max(threshold, base, factor, gaps):
    """While every request fails, each ejection is at least as long as the previous and
    never longer than max_ejection."""
    maximum = base * factor
    state = OutlierState(threshold, base, maximum)
    now, lengths = 0.0, []
    for gap in gaps:
        if state.state == HEALTHY:
            eject(state, now)
        else:
            now = max(now, state.ejection_ends) + gap
            if state.available(now):
                state.take_trial()
                state.record(False, now)
        if state.state == EJECTED and (not lengths or lengths[-1][0] != state.ejection_ends):
            lengths.append((state.ejection_ends, state.ejection_ends - now))
    spans = [length for _, length in lengths]
    assert all(0 < s <= maximum + 1e-9 for s in spans)
    assert all(b >= a - 1e-9 for a, b in zip(spans, spans[1:]))


@settings(max_examples=200)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 5), st.booleans()), max_size=50))
def test_outlier_states_follow_the_table(events):
    """Any sequence of results keeps the state one of the three and the invariants hold:
    ejected <=> ejection_ends set; a healthy member is always available."""
    state = OutlierState(2, 1.0, 8.0)
    now = 0.0
    for ok, gap, probe in events:
        now += gap
        if probe:
            state.record_probe(ok, now)
        else:
            if state.available(now):
                state.take_trial()
            state.record(ok, now)
        assert state.state in (HEALTHY, EJECTED, PROBING)
        assert (state.ejection_ends is None) == (state.state == HEALTHY)
        if state.state == HEALTHY:
            assert state.available(now)


# -- ejection_allowed ----------------------------------------------------------------------
@pytest.mark.parametrize("ejected, size, percent, allowed", [
    (0, 3, 50, True), (1, 3, 50, False), (0, 2, 50, True), (1, 4, 50, True),
    (2, 4, 50, False), (0, 1, 50, False), (0, 1, 100, True), (0, 9, 10, False),
    (0, 10, 10, True), (0, 5, 0, False),
])
def test_ejection_allowed_rounds_share_down(ejected, size, percent, allowed):
    """One more ejection only while ejected/size stays <= the percent (rounded down)."""
    assert ejection_allowed(ejected, size, percent) is allowed


# -- SlowStart -----------------------------------------------------------------------------
def test_slow_start_ramps_linearly_from_floor():
    """Floor at begin, halfway at half the duration, 1.0 from the end on."""
    ramp = SlowStart(10.0)
    assert ramp.factor(0.0) == 1.0  # never begun
    ramp.begin(100.0)
    assert ramp.factor(100.0) == pytest.approx(0.1)
    assert ramp.factor(105.0) == pytest.approx(0.55)
    assert ramp.factor(110.0) == 1.0
    assert ramp.factor(105.0) == 1.0  # finished ramps stay finished


def test_slow_start_zero_duration_is_always_full():
    """duration 0 turns slow start off."""
    ramp = SlowStart(0.0)
    ramp.begin(5.0)
    assert ramp.factor(5.0) == 1.0


@settings(max_examples=200)
@given(st.floats(0.1, 100), st.floats(-10, 200), st.floats(0, 200))
def test_slow_start_factor_bounded_and_monotonic(duration, t1, dt):
    """The factor stays in [floor, 1] and never decreases with time."""
    a, b = SlowStart(duration), SlowStart(duration)
    a.begin(0.0)
    b.begin(0.0)
    fa, fb = a.factor(t1), b.factor(t1 + dt)
    assert 0.1 <= fa <= 1.0 and 0.1 <= fb <= 1.0
    assert fb >= fa - 1e-12


# -- agent replies -------------------------------------------------------------------------
@pytest.mark.parametrize("text, weight, state", [
    ("75%", 75.0, None),
    ("drain", None, DRAIN),
    ("down", None, DOWN),
    ("up", None, UP),
    ("ready", None, UP),
    ("maint", None, DOWN),
    ("stopped", None, DOWN),
    ("fail", None, DOWN),
    ("100%, ready", 100.0, UP),
    ("75% drain\n", 75.0, DRAIN),
    ("UP 50%", 50.0, UP),
    ("1000%", 256.0, None),
    ("9" * 5000 + "%", 256.0, None),
    ("0%", 0.0, None),
    ("10% 20%", 20.0, None),
    ("up, drain, down", None, DOWN),
    ("maxconn:30 frobnicate 40%", 40.0, None),
    ("garbage", None, None),
    ("-5% 5.5% %", None, None),
    ("", None, None),
    ("\u0663\u0660%", None, None),  # Arabic-Indic digits are not digits here
])
def test_parse_agent_reply_words(text, weight, state):
    """HAProxy's agent words map to a weight percentage and up/down/drain."""
    report = parse_agent_reply(text)
    assert (report.weight_percent, report.state) == (weight, state)


def test_parse_agent_reply_comment_is_reason():
    """Words after '#' are ignored and become the reason."""
    assert parse_agent_reply("down #disk full\r\n") == AgentReport(None, DOWN, "disk full")
    assert parse_agent_reply("#up 50%") == AgentReport(None, None, "up 50%")


def test_parse_agent_reply_accepts_bytes():
    """A load header value (bytes) parses like the same text."""
    assert parse_agent_reply(b"60%, drain") == AgentReport(60.0, DRAIN, "")


@settings(max_examples=200)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_parse_agent_reply_never_raises(text):
    """Any input gives a report with a weight in [0, 256] or None and a known state."""
    report = parse_agent_reply(text)
    assert report.state in (None, UP, DOWN, DRAIN)
    assert report.weight_percent is None or 0.0 <= report.weight_percent <= 256.0
