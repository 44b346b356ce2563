"""Order statuses that move reservations (PRODUCT 3.2: "commit may also happen
automatically when the mirrored order reaches a configured status; release when it reaches
a cancel status").

Order changes of the systems in ``bonus.order_statuses`` are routed to the internal target
``_bonus`` as well as to their mirrors; this sink reads the order's status (the source is
re-read first, like any delivery) and commits or releases the reservation made for it. A
master that is down does not fail the delivery: the reservation owes the call and its
sweeper makes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.bonus.reservations import ReservationProblem, ReservationService
from bridge.connector import DeliveryJob
from bridge.logs import get_logger
from bridge.settings import OrderStatusRule
from bridge.store.reservations import RsvStatus

log = get_logger("bridge.bonus.orders")


class OrderStatusSink:
    """Implements :class:`bridge.connector.Sink` for the ``_bonus`` target."""

    def __init__(self, reservations: ReservationService, rules: Mapping[str, OrderStatusRule]):
        self._reservations = reservations
        self._rules = dict(rules)

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Commit or release the order's reservations as its status says; else nothing."""
        rule = self._rules.get(job.source)
        order = _order_state(job)
        status = order.get("status")
        if rule is None or not isinstance(status, str):
            return None
        move = "commit" if status in rule.commit else "release" if status in rule.release else None
        if move is None:
            return None
        store = self._reservations.store
        found: list[str] = []
        for system, ids in _order_refs(job, order).items():
            found += [r for r in await store.reservations_for_order(system, ids) if r not in found]
        for rsv_id in found:
            rsv = await store.get_reservation(rsv_id)
            try:
                if move == "commit" and rsv.status is RsvStatus.HELD:
                    done = await self._reservations.commit(rsv_id, None)
                elif move == "release" and rsv.status in (RsvStatus.HELD, RsvStatus.AWAITING_CODE):
                    done = await self._reservations.cancel(rsv_id, f"order status {status}")
                else:
                    continue  # nothing to move: already committed, released, never confirmed
            except ReservationProblem as exc:  # e.g. the hold expired meanwhile
                log.warning(
                    "order_status_not_applied", reservation=rsv_id, status=status, error=exc.code
                )
                continue
            log.info("order_status_applied", reservation=rsv_id, status=str(done.status))
        return None


def _order_state(job: DeliveryJob) -> Mapping[str, Any]:
    if job.state is not None:
        return job.state
    payload = job.events[-1].payload if job.events else None
    if isinstance(payload, Mapping):
        data = payload.get("data")
        return data if isinstance(data, Mapping) else payload
    return {}


def _order_refs(job: DeliveryJob, order: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every (system, id) a caller may have named the order by: the change's id and the ids
    the order carries (RetailCRM's externalId and number, 1C's external id) in the system
    that reported it, and, for a key the bridge made (``retailcrm-5003``: the order came
    from RetailCRM), the id in the system it came from."""
    ids = [job.entity_id]
    for key in ("id", "externalId", "external_id", "number"):
        value = order.get(key)
        if isinstance(value, str | int) and str(value) not in ids:
            ids.append(str(value))
    refs: dict[str, list[str]] = {job.source: ids}
    for value in ids:
        system, dash, own = value.partition("-")
        if dash and own and system.isidentifier() and system != job.source:
            refs.setdefault(system, []).append(own)
    return refs
