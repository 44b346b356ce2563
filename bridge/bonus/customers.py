"""Who a phone, card or id is: the master's customer, remembered for a short while.

A balance look-up by phone costs two master calls when the customer has to be found first
(1C: FindCustomer, then GetBalance; RetailCRM: the accounts list, then the account). A till
asks about the same customers again and again within minutes (the customer at the counter,
the basket changing), so the bonus service keeps the answer of ``find_customer`` per key —
bounded (the least recently asked are forgotten first) and short-lived (``bonus.
customer_cache_seconds``) — and a warm look-up is the balance call alone.

What is remembered is only who the key names, never a balance. It goes stale in two ways:
the master no longer knows the id (a customer deleted or merged away), which the next call
made with it says (``LedgerRefused(unknown_customer)``: the key is dropped and resolved
again at once, see ``BonusService.balance``); or the phone or card now belongs to another
customer, which shows after at most ``customer_cache_seconds``. Keys are kept as the
normalised phone or the card as given; they are never logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.ledger import LedgerCustomer
from bridge.lru import LruCache


@dataclass(frozen=True)
class Remembered:
    """A customer found by ``find_customer`` and when."""

    customer: LedgerCustomer
    found_at: float


class KnownCustomers:
    """At most ``size`` keys, each answered for ``ttl_seconds`` after it was found."""

    def __init__(
        self, size: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._kept: LruCache[str, Remembered] = LruCache(size)

    def get(self, key: str) -> LedgerCustomer | None:
        """The customer remembered for ``key``, if found less than ``ttl_seconds`` ago."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        if self._clock() - kept.found_at >= self.ttl_seconds:
            self._kept.pop(key)
            return None
        return kept.customer

    def put(self, key: str, customer: LedgerCustomer) -> None:
        """Remember ``customer`` for ``key`` from now (nothing when the TTL is 0)."""
        if self.ttl_seconds > 0:
            self._kept.put(key, Remembered(customer, self._clock()))

    def forget(self, key: str) -> None:
        """Drop ``key``: the next look-up asks the master who it is."""
        self._kept.pop(key)

    def __len__(self) -> int:
        return len(self._kept)
