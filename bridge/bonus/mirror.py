"""The master's balance, mirrored into systems that show it (PRODUCT 3.2, issue 7).

A bonus change the bridge makes at the master (a hold, a commit, a release, a return given
back) stores one ``balance`` change of the customer, source ``_bonus``, routed to every
:class:`bridge.connector.BalanceMirror`. Its delivery re-reads the balance from the master,
like any delivery re-reads its source, so changes waiting together make one write of the
balance as it is then (coalesced per customer), and one that fails is retried.
"""

from __future__ import annotations

import uuid
from typing import Any

from bridge.bonus.balance import BonusService
from bridge.errors import TransientError
from bridge.ledger import LedgerRefused
from bridge.logs import get_logger
from bridge.settings import BONUS_TARGET
from bridge.store.protocol import Store
from bridge.store.records import InboundEvent, NewEvent
from bridge.store.reservations import Reservation

log = get_logger("bridge.bonus.mirror")

BALANCE = "balance"  # the entity of a balance change


class BalanceChanges:
    """Stores a balance change per bonus change, for the mirrors to pick up."""

    def __init__(self, store: Store, targets: tuple[str, ...], wake: Any) -> None:
        self._store = store
        self._targets = targets
        self._wake = wake

    async def changed(self, rsv: Reservation, step: str) -> None:
        """The master changed ``rsv``'s customer's points (never raises: a mirror that
        misses one change catches up with the next)."""
        event = InboundEvent(
            source_key=f"{BALANCE}:{rsv.id}:{step}:{uuid.uuid4().hex[:8]}",
            entity=BALANCE,
            entity_id=rsv.customer_id,
            action="changed",
            payload={"reservation": rsv.id, "step": step},
        )
        try:
            await self._store.append_events([NewEvent(BONUS_TARGET, event, self._targets)])
        except Exception as exc:  # the bonus change itself stands
            log.warning("balance_change_not_stored", reservation=rsv.id, error=str(exc))
            return
        self._wake(set(self._targets))


class BalanceReader:
    """The ``_bonus`` source's reader: a customer's balance and phone, from the master."""

    def __init__(self, bonus: BonusService) -> None:
        self._bonus = bonus

    async def read_entity(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """``{customer_id, phone, balance, available, reserved, master}`` now; None for a
        customer the master does not know (any more)."""
        if entity != BALANCE:
            return None
        ledger = self._bonus.ledger
        try:
            customer = await self._bonus.call_master(
                "find_customer", lambda: ledger.find_customer(customer_id=entity_id)
            )
            points = await self._bonus.call_master("balance", lambda: ledger.balance(entity_id))
        except LedgerRefused:
            return None
        except Exception as exc:  # the master is down: the delivery is retried
            raise TransientError(f"the master did not give the balance: {exc}") from exc
        return {
            "customer_id": entity_id,
            "phone": customer.phone,
            "balance": str(points.balance),
            "available": str(points.available),
            "reserved": str(points.reserved),
            "master": self._bonus.master,
        }
