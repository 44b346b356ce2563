"""The breaker probes while open (issue 12, point 17): one trial call at a time, after an
interval that grows with failed trials but stays a few seconds; a call with no verdict
(rate-limited, cancelled) is neither a failure nor a success. The clock is a fake."""

from __future__ import annotations

import pytest

from bridge.bonus.breaker import PROBE_MAX, Breaker, BreakerOpen, BreakerState, probe_interval


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(breaker: Breaker) -> BreakerState:
    """The state now (a call, so that mypy does not narrow it across calls)."""
    return breaker.state


def opened(clock: Clock, reset: float = 30.0) -> Breaker:
    breaker = Breaker("onec", failures=3, reset_seconds=reset, clock=clock)
    for _ in range(3):
        assert breaker.before_call() is False
        breaker.failed()
    assert state(breaker) is BreakerState.OPEN
    return breaker


@pytest.mark.parametrize(
    ("failed_trials", "reset", "interval"),
    [
        (0, 30.0, 0.5),
        (1, 30.0, 1.0),
        (2, 30.0, 2.0),
        (3, 30.0, 4.0),
        (4, 30.0, 4.0),
        (60, 30.0, 4.0),
        (3, 3.0, 3.0),  # reset_seconds shorter than PROBE_MAX caps the interval
        (0, 0.2, 0.2),
    ],
)
def test_probe_intervals_grow_and_stay_a_few_seconds(
    failed_trials: int, reset: float, interval: float
) -> None:
    assert probe_interval(failed_trials, reset) == interval


def test_open_refuses_until_the_first_probe_then_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = opened(clock)
    with pytest.raises(BreakerOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_after >= 1.0
    clock.now += 0.5
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.before_call() is True  # the trial
    with pytest.raises(BreakerOpen):  # one at a time
        breaker.before_call()
    assert breaker.succeeded() is True  # closed: "recovered" is logged once
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.before_call() is False


def test_failed_trials_wait_longer_each_time_up_to_the_cap() -> None:
    clock = Clock()
    breaker = opened(clock)
    waits = []
    for _ in range(6):
        waited = 0.0
        while True:
            try:
                trial = breaker.before_call()
            except BreakerOpen:
                clock.now += 0.25
                waited += 0.25
                continue
            break
        assert trial is True
        assert breaker.failed(trial) is False  # still open: "unavailable" is not logged again
        waits.append(waited)
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert max(waits) <= PROBE_MAX


def test_a_call_without_a_verdict_frees_the_trial_and_changes_nothing() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 0.5
    trial = breaker.before_call()
    breaker.released(trial)  # rate-limited or cancelled: neither failure nor success
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.before_call() is True  # the next caller may be the trial at once


def test_rate_limit_waits_are_not_failures_while_closed() -> None:
    clock = Clock()
    breaker = Breaker("retailcrm", failures=2, clock=clock)
    for _ in range(10):
        breaker.released(breaker.before_call())
    assert state(breaker) is BreakerState.CLOSED


def test_a_late_failure_of_a_call_made_before_opening_does_not_push_the_probe_back() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 0.4
    breaker.failed()  # started while closed, failed now: not a trial
    clock.now += 0.1
    assert breaker.before_call() is True
