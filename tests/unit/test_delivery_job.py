"""The typed values a DeliveryJob hands a connector instead of the core's key strings."""

from __future__ import annotations

import pytest

from bridge.connector import DeliveryJob, replay_generation_of


def job(key: str, attempt: int = 1, generation: int | None = None) -> DeliveryJob:
    return DeliveryJob(
        "dlv_1", key, "bitrix", "onec", "order", "7", attempt, (), generation=generation
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [("bridge-dlv_1", 0), ("bridge-dlv_1-r1", 1), ("bridge-dlv_1-r12", 12), ("bridge-r-1", 0)],
)
def test_the_replay_generation_is_read_from_the_operation_key(key: str, expected: int) -> None:
    assert replay_generation_of(key) == expected
    assert job(key).replay_generation == expected


def test_a_generation_the_core_sets_wins_over_the_key() -> None:
    assert job("bridge-dlv_1", generation=3).replay_generation == 3


@pytest.mark.parametrize(
    ("key", "attempt", "landed"),
    [("bridge-dlv_1", 1, False), ("bridge-dlv_1", 2, True), ("bridge-dlv_1-r1", 1, True)],
)
def test_a_retry_or_a_replay_may_have_landed(key: str, attempt: int, landed: bool) -> None:
    assert job(key, attempt).may_have_landed is landed


def test_the_external_id_names_source_and_entity() -> None:
    assert job("bridge-dlv_1").external_id == "onec-7"
