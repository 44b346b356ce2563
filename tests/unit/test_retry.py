"""The retry decision as a table: error class × attempt → retry after how long, or dead."""

from __future__ import annotations

import pytest

from bridge.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)
from bridge.retry import backoff_delay, decide_retry
from bridge.settings import RetrySettings

POLICY = RetrySettings(base_seconds=1, cap_seconds=60, max_attempts=10, jitter=0)


@pytest.mark.parametrize(
    ("error", "attempt", "retry", "delay"),
    [
        (TransientError("503"), 1, True, 1),
        (TransientError("503"), 2, True, 2),
        (TransientError("503"), 5, True, 16),
        (TransientError("503"), 7, True, 60),  # 64 capped to 60
        (TransientError("503"), 10, False, 0),  # max_attempts reached
        (RateLimited("429", retry_after=30), 1, True, 30),  # Retry-After beats the curve
        (RateLimited("429", retry_after=3600), 1, True, 3600),  # even beyond the cap
        (RateLimited("429", retry_after=1e9), 1, True, 86400),  # within reason
        (RateLimited("429", retry_after=None), 3, True, 4),
        (PermanentError("422"), 1, False, 0),
        (AuthError("401"), 1, False, 0),
        (ConfigError("no mapping"), 1, False, 0),
    ],
)
def test_decision_table(error: DeliveryError, attempt: int, retry: bool, delay: float) -> None:
    decision = decide_retry(attempt, error, POLICY, unit_random=0.5)
    assert decision.retry is retry
    assert decision.delay == pytest.approx(delay)
    if not retry:
        assert decision.reason


def test_jitter_spreads_within_bounds() -> None:
    policy = RetrySettings(base_seconds=10, cap_seconds=1000, jitter=0.2)
    low = backoff_delay(1, policy, 0.0)
    high = backoff_delay(1, policy, 0.999999)
    assert low == pytest.approx(8.0)
    assert high == pytest.approx(12.0, rel=1e-4)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_delay(10_000, POLICY, 0.5) == 60


def test_dead_reason_names_the_class() -> None:
    assert decide_retry(1, AuthError("x"), POLICY, 0.5).reason == "auth error: not retried"
