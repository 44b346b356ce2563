"""What to do after a failed attempt: a pure function of the attempt and the error.

Capped exponential backoff with jitter (``base * 2**(attempt-1)``, at most ``cap``, spread
by ±``jitter``), a target's ``Retry-After`` honoured when it asks for longer, and errors
that will never succeed (permanent, auth, config) dead-lettered at once so a 4xx is not
retried forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import DeliveryError, ErrorClass, RateLimited
from bridge.settings import RetrySettings

MAX_RETRY_AFTER = 86_400.0  # a sanity bound on what a target may ask for
NEVER_RETRY = frozenset({ErrorClass.PERMANENT, ErrorClass.AUTH, ErrorClass.CONFIG})


@dataclass(frozen=True)
class RetryDecision:
    """Either retry after ``delay`` seconds, or give up with ``reason``."""

    retry: bool
    delay: float = 0.0
    reason: str = ""


def backoff_delay(attempt: int, policy: RetrySettings, unit_random: float) -> float:
    """Delay before attempt ``attempt + 1``; ``unit_random`` in [0, 1) spreads it."""
    exponent = min(attempt - 1, 62)
    raw = min(policy.cap_seconds, policy.base_seconds * (2.0**exponent))
    spread = 1.0 + policy.jitter * (2.0 * unit_random - 1.0)
    return max(0.0, min(policy.cap_seconds, raw * spread))


def decide_retry(
    attempt: int, error: DeliveryError, policy: RetrySettings, unit_random: float
) -> RetryDecision:
    """Decide after failed attempt number ``attempt`` (1-based)."""
    if error.error_class in NEVER_RETRY:
        return RetryDecision(False, reason=f"{error.error_class} error: not retried")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, reason=f"gave up after {attempt} attempts")
    delay = backoff_delay(attempt, policy, unit_random)
    if isinstance(error, RateLimited) and error.retry_after is not None:
        # The target knows its own limit better than our curve does (Retry-After), even
        # beyond our cap: calling earlier only earns another 429 and wastes an attempt.
        delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER))
    return RetryDecision(True, delay=delay)
