"""The look-ups' memory of who a key is: bounded, and each key good for its TTL only."""

from __future__ import annotations

from bridge.bonus.customers import KnownCustomers
from bridge.ledger import LedgerCustomer
from tests.support.clock import T0, Clock

ANN, BOB = LedgerCustomer("c-1", "+79000000001"), LedgerCustomer("c-2", "+79000000002")


def test_a_key_is_answered_until_its_ttl_runs_out() -> None:
    clock = Clock()
    known = KnownCustomers(10, 300.0, clock)
    known.put("phone:+79000000001", ANN)
    clock.now = T0 + 299.9
    assert known.get("phone:+79000000001") == ANN
    clock.now = T0 + 300.0
    assert known.get("phone:+79000000001") is None
    assert len(known) == 0  # an expired key is let go when read


def test_a_newer_answer_starts_the_ttl_again_and_forget_drops_it() -> None:
    clock = Clock()
    known = KnownCustomers(10, 60.0, clock)
    known.put("card:1", ANN)
    clock.now = T0 + 50
    known.put("card:1", BOB)
    clock.now = T0 + 100
    assert known.get("card:1") == BOB
    known.forget("card:1")
    known.forget("card:1")  # forgetting twice is fine
    assert known.get("card:1") is None


def test_at_most_size_keys_the_least_recently_asked_forgotten_first() -> None:
    known = KnownCustomers(2, 60.0, Clock())
    known.put("a", ANN)
    known.put("b", BOB)
    assert known.get("a") == ANN
    known.put("c", BOB)
    assert (known.get("a"), known.get("b"), known.get("c")) == (ANN, None, BOB)
    assert len(known) == 2


def test_a_ttl_of_zero_remembers_nothing() -> None:
    known = KnownCustomers(2, 0.0, Clock())
    known.put("a", ANN)
    assert (known.get("a"), len(known)) == (None, 0)
