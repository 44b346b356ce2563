"""Order statuses that move reservations (PRODUCT 3.2: "commit may also happen
automatically when the mirrored order reaches a configured status; release when it reaches
a cancel status"), and returns after the commit (PRODUCT 3.4).

Order changes of the systems in ``bonus.order_statuses`` are routed to the internal target
``_bonus`` as well as to their mirrors; this sink reads the order (the source is re-read
first, like any delivery) and commits or releases the reservation made for it. Until the
commit it keeps the order's lines with the reservation; after it, a cancel status gives
back everything spent and fewer lines give back their share (``bridge.bonus.returns``). A
master that is down does not fail the delivery: the reservation owes the call and its
sweeper makes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.bonus.reservations import ReservationProblem, ReservationService
from bridge.bonus.returns import (
    Basket,
    NotComparable,
    dump_basket,
    load_basket,
    read_lines,
    refund_target,
)
from bridge.connector import DeliveryJob
from bridge.errors import TransientError
from bridge.logs import get_logger
from bridge.settings import OrderStatusRule
from bridge.store.reservations import Reservation, RsvStatus

log = get_logger("bridge.bonus.orders")

_OPEN = (RsvStatus.AWAITING_CODE, RsvStatus.HELD)
_SPENT = (RsvStatus.COMMIT_PENDING, RsvStatus.COMMITTED)


class OrderStatusSink:
    """Implements :class:`bridge.connector.Sink` for the ``_bonus`` target."""

    def __init__(self, reservations: ReservationService, rules: Mapping[str, OrderStatusRule]):
        self._reservations = reservations
        self._rules = dict(rules)
        self._returns = reservations.settings.returns

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Commit or release the order's reservations as its status says, and give back what
        a return after the commit is worth; else nothing."""
        rule = self._rules.get(job.source)
        order = order_state(job)
        raw = order.get("status")
        status = raw if isinstance(raw, str) else None
        if rule is None:
            return None
        move = "commit" if status in rule.commit else "release" if status in rule.release else None
        lines = read_lines(order, self._returns.line_statuses)
        if move is None and lines is None:
            return None
        store = self._reservations.store
        found: list[str] = []
        for system, ids in _order_refs(job, order).items():
            found += [r for r in await store.reservations_for_order(system, ids) if r not in found]
        for rsv_id in found:
            try:
                await self._apply(await store.get_reservation(rsv_id), move, status, lines, job)
            except ReservationProblem as exc:
                if exc.code == "conflict":  # moved meanwhile (the CLI): read it all again
                    raise TransientError(f"reservation {rsv_id} changed meanwhile") from exc
                log.warning(  # e.g. the hold expired meanwhile
                    "order_status_not_applied", reservation=rsv_id, status=status, error=exc.code
                )
        return None

    async def _apply(
        self,
        rsv: Reservation,
        move: str | None,
        status: str | None,
        lines: Basket | None,
        job: DeliveryJob,
    ) -> None:
        service = self._reservations
        kept = load_basket(rsv.basket)[0] if rsv.basket is not None else None
        # One system's copy is the baseline: the one that names the order for the
        # reservation when it reports it, else the first to report it.
        ours = kept is None or job.source in (kept, rsv.order_system)
        if (
            lines is not None
            and ours
            and (rsv.status in _OPEN or (rsv.status in _SPENT and rsv.basket is None))
        ):
            rsv = await service.keep_basket(rsv.id, dump_basket(lines, job.source))
        if move == "commit" and rsv.status is RsvStatus.HELD:
            done = await service.commit(rsv.id, None)
        elif move == "release" and rsv.status in _OPEN:
            done = await service.cancel(rsv.id, f"order status {status}")
        elif rsv.status in _SPENT:
            await self._return(rsv, move, status, lines, job)
            return
        else:
            return  # nothing to move: not moved by this status, released, never confirmed
        log.info("order_status_applied", reservation=rsv.id, status=str(done.status))

    async def _return(
        self,
        rsv: Reservation,
        move: str | None,
        status: str | None,
        lines: Basket | None,
        job: DeliveryJob,
    ) -> None:
        """A committed reservation: what the order's return so far is worth, if anything."""
        spent = rsv.committed if rsv.status is RsvStatus.COMMITTED else rsv.pending_amount
        if spent is None:
            return
        if move == "release":  # a full cancel after the commit: everything comes back
            target, reason = spent, f"order {status} in {job.source} after the commit"
        elif lines is None or rsv.basket is None:
            return
        else:
            system, basket = load_basket(rsv.basket)
            if system is not None and system != job.source:
                return  # another system's copy: judged against that system's own copies
            try:
                target = refund_target(spent, basket, lines, self._returns.mode)
            except NotComparable as exc:
                log.warning("return_not_comparable", reservation=rsv.id, error=str(exc))
                return
            if target <= 0:
                return
            reason = f"lines returned in {job.source} ({self._returns.mode})"
        await self._reservations.note_return(rsv.id, target, reason)


def order_state(job: DeliveryJob) -> Mapping[str, Any]:
    """The order a delivery is about: as re-read from its source, else the change's data."""
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
