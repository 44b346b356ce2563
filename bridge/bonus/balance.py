"""Balance look-ups proxied to the master, within the fail-fast budget (PRODUCT 3.1).

Every call to the master goes through the breaker and the timeout; a master that is down
answers ``MasterUnavailable`` at once, or — with ``when_master_down: stale`` — the last
balance it gave for that customer, marked stale and not spendable. Who a phone, card or id
is, is remembered for a while (``bridge.bonus.customers``): a repeat look-up is one call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypeVar

from bridge.bonus.breaker import Breaker, BreakerOpen
from bridge.bonus.customers import KnownCustomers
from bridge.bonus.phones import normalize_phone
from bridge.deadline import current_deadline, deadline_within
from bridge.errors import (
    AuthError,
    BridgeError,
    ConfigError,
    PermanentError,
    RateLimited,
    TransientError,
)
from bridge.ledger import (
    Ledger,
    LedgerBalance,
    LedgerCustomer,
    LedgerErrorCode,
    LedgerRefused,
)
from bridge.logs import get_logger
from bridge.lru import LruCache
from bridge.metrics import Metrics
from bridge.settings import BonusSettings
from bridge.store.protocol import Store

log = get_logger("bridge.bonus")
T = TypeVar("T")


BUSY = "is busy: its rate limit leaves no turn within the time budget"
MIN_CALL_SECONDS = 0.01  # less left of a budget than this: the call is not started


class MasterUnavailable(BridgeError):
    """The master did not answer within the budget, its breaker is open, or its rate limit
    leaves no turn within the budget."""

    def __init__(self, master: str, retry_after: float, why: str = "is not answering") -> None:
        super().__init__(f"the bonus master {master!r} {why}")
        self.retry_after = retry_after


@dataclass(frozen=True)
class CustomerRef:
    """How a caller names a customer: one of phone, card, or a system's id."""

    phone: str | None = None
    card: str | None = None
    system: str | None = None
    id: str | None = None

    def key(self) -> str:
        """A cache key for the last known balance."""
        return f"{self.phone}|{self.card}|{self.system}|{self.id}"


@dataclass(frozen=True)
class BalanceAnswer:
    """What a look-up answers (PRODUCT 4.1)."""

    master: str
    customer: LedgerCustomer
    balance: LedgerBalance
    stale: bool = False

    @property
    def spendable(self) -> bool:
        """A stale balance is shown, never spent."""
        return not self.stale


class BonusService:
    """Look-ups (and, next, reservations) against the configured master."""

    def __init__(
        self,
        settings: BonusSettings,
        master: str,
        ledger: Ledger,
        store: Store,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.master = master
        self._ledger = ledger
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self.breaker = Breaker(
            master,
            failures=settings.breaker.failures,
            reset_seconds=settings.breaker.reset_seconds,
            clock=clock,
        )
        # The last balance given per customer, for when the master is down (only kept when
        # it may be shown: when_master_down: stale), bounded so a chain's millions of
        # customers do not grow the process without end.
        self._last: LruCache[str, tuple[float, BalanceAnswer]] = LruCache(settings.stale_cache_size)
        self.known = KnownCustomers(
            settings.customer_cache_size, settings.customer_cache_seconds, clock
        )

    @property
    def ledger(self) -> Ledger:
        """The master's connector."""
        return self._ledger

    async def call_master(
        self, operation: str, call: Callable[[], Awaitable[T]], deadline: float | None = None
    ) -> T:
        """One master call under the breaker and the fail-fast budget.

        The budget is ``timeout_seconds``, or less: what is left of ``deadline`` (on this
        service's clock) and of an enclosing ``bridge.deadline`` (a request's budget, shared
        by all its master calls). A rate limiter on the way refuses a turn that would come
        after it; such a refusal, or a 429/503 of the master, is no verdict on the master's
        health and leaves the breaker as it is.
        """
        budget = self.settings.timeout_seconds
        if deadline is not None:
            budget = min(budget, deadline - self._clock())
        outer = current_deadline()
        if outer is not None:
            budget = min(budget, outer.remaining())
        if budget < MIN_CALL_SECONDS:  # the request's budget is spent: not the master's fault
            raise MasterUnavailable(self.master, 1.0, "no time is left of the request's budget")
        try:
            trial = self.breaker.before_call()
        except BreakerOpen as exc:
            raise MasterUnavailable(self.master, exc.retry_after) from exc
        started, began = self._clock(), time.monotonic()
        try:
            with deadline_within(budget) as limit:
                async with asyncio.timeout(budget):  # no extra task, unlike wait_for
                    limit.enforced = True  # the connectors need no timer of their own
                    result = await call()
        except RateLimited as exc:
            raise MasterUnavailable(self.master, exc.retry_after or 1.0, BUSY) from exc
        except (TransientError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError) and limit.waited * 2 >= time.monotonic() - began:
                # Most of its time went waiting for a turn at the rate limit: starved by
                # the bridge's own queue, not failed by the master.
                raise MasterUnavailable(self.master, 1.0, BUSY) from exc
            if self.breaker.failed(trial):
                log.warning(
                    "system_unavailable",
                    system=self.master,
                    error=str(exc) or f"no answer within {budget:.2g} s",
                )
            raise MasterUnavailable(self.master, self._retry_after()) from exc
        except LedgerRefused:
            self._answered(operation, started)  # a refusal is an answer: the master is up
            raise
        except (AuthError, ConfigError) as exc:
            # Unusable as configured (a refused key, a wrong URL): to a till that is a
            # master that is not there; support finds the reason in the log.
            self.breaker.failed(trial)
            log.error("master_misconfigured", system=self.master, error=str(exc))  # noqa: TRY400
            raise MasterUnavailable(self.master, self._retry_after()) from exc
        except PermanentError as exc:
            # The master refused the call without one of the Ledger's codes.
            self._answered(operation, started)
            raise LedgerRefused(LedgerErrorCode.INVALID_REQUEST, str(exc)) from exc
        finally:
            self.breaker.released(trial)  # no verdict yet (cancelled, rate-limited): free it
        self._answered(operation, started)
        return result

    def _retry_after(self) -> float:
        """When to try again: the next trial call if the breaker is open, else soon."""
        return max(1.0, self.breaker.retry_after())

    def _answered(self, operation: str, started: float) -> None:
        if self.breaker.succeeded():
            log.info("system_recovered", system=self.master)
        if self._metrics is not None:
            self._metrics.observe_master(self.master, operation, self._clock() - started)

    async def resolve(
        self, ref: CustomerRef, deadline: float | None = None, *, fresh: bool = False
    ) -> LedgerCustomer:
        """The master's customer for a phone, a card, or an id in some system; remembered
        for ``customer_cache_seconds``, or asked of the master anew when ``fresh``."""
        customer, _remembered = await self._resolve(ref, deadline, fresh=fresh)
        return customer

    async def _resolve(
        self, ref: CustomerRef, deadline: float | None, *, fresh: bool
    ) -> tuple[LedgerCustomer, str | None]:
        """The customer, and its key when it came from memory rather than the master."""
        key, find = await self._finder(ref)
        if not fresh:
            known = self.known.get(key)
            if known is not None:
                return known, key
        customer = await self.call_master("find_customer", find, deadline)
        self.known.put(key, customer)
        return customer, None

    async def _finder(
        self, ref: CustomerRef
    ) -> tuple[str, Callable[[], Awaitable[LedgerCustomer]]]:
        """The memory's key for ``ref`` and the master call that finds its customer."""
        ledger = self._ledger
        if ref.phone is not None:
            phone = normalize_phone(ref.phone)
            return f"phone:{phone}", lambda: ledger.find_customer(phone=phone)
        if ref.card is not None:
            card = ref.card
            return f"card:{card}", lambda: ledger.find_customer(card=card)
        # Both set: guaranteed by the request model.
        assert ref.system is not None
        assert ref.id is not None
        local = ref.id
        if ref.system != self.master:
            mapped = await self._store.lookup_id("customer", ref.system, ref.id, self.master)
            if mapped is None:
                raise LedgerRefused(
                    LedgerErrorCode.UNKNOWN_CUSTOMER,
                    f"{ref.system} customer {ref.id} is not known to the master",
                )
            local = mapped
        return f"id:{local}", lambda: ledger.find_customer(customer_id=local)

    async def balance(self, ref: CustomerRef, cart_total: Decimal | None) -> BalanceAnswer:
        """The master's balance now, or the last known one if so configured."""
        # One budget for the whole look-up, however many calls the master needs (a till
        # never waits longer than timeout_seconds).
        deadline = self._clock() + self.settings.timeout_seconds
        try:
            customer, remembered = await self._resolve(ref, deadline, fresh=False)
            try:
                found = await self._balance_of(customer, cart_total, deadline)
            except LedgerRefused as exc:
                if remembered is None or exc.code is not LedgerErrorCode.UNKNOWN_CUSTOMER:
                    raise
                # The remembered id is gone at the master (deleted, merged away): forget
                # it and ask who the key is now, within the same budget.
                self.known.forget(remembered)
                log.info(
                    "known_customer_dropped", system=self.master, customer=customer.customer_id
                )
                customer, _ = await self._resolve(ref, deadline, fresh=True)
                found = await self._balance_of(customer, cart_total, deadline)
        except MasterUnavailable:
            stale = self._stale(ref)
            self._count("balance", "stale" if stale else "master_unavailable")
            if stale is None:
                raise
            return stale
        except LedgerRefused as exc:
            self._count("balance", str(exc.code))
            raise
        answer = BalanceAnswer(self.master, customer, found)
        if self.settings.when_master_down == "stale":
            self._last.put(ref.key(), (self._clock(), answer))
        self._count("balance", "ok")
        return answer

    async def _balance_of(
        self, customer: LedgerCustomer, cart_total: Decimal | None, deadline: float
    ) -> LedgerBalance:
        return await self.call_master(
            "balance", lambda: self._ledger.balance(customer.customer_id, cart_total), deadline
        )

    def _stale(self, ref: CustomerRef) -> BalanceAnswer | None:
        if self.settings.when_master_down != "stale":
            return None
        kept = self._last.get(ref.key())
        if kept is None or self._clock() - kept[0] > self.settings.stale_max_age_seconds:
            return None
        return replace(kept[1], stale=True)

    def _count(self, operation: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.count_bonus(operation, outcome)
