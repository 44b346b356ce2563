"""What every store's pruning shares: which events and which other records may go.

Only finished events are pruned. ``done`` ones go by retention (``store.retention``) and by
hand (``bridge purge``); ``dead`` and ``rejected`` ones wait for support and go only by
hand. An event with a delivery still waiting or leased is never pruned, whatever is asked.

Beside the log, these grow with traffic (:class:`Records`): reservations in a final state
(with their history and their owed calls), owed calls of no reservation, the SMS sends
counted for the per-phone cap, and the sandbox's outbox. A reservation goes only once it
owes nothing (``pending`` empty, every owed call of it ``done``): one with a call pending,
in flight or dead stays, as a dead event does, until the call is replayed or purged by
hand. What else grows is kept on purpose: ``id_map``, ``id_alias`` and ``written`` hold
one row per entity (not per change) and answer for it as long as it exists in a system.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bridge.store.records import Status
from bridge.store.reservations import FINAL

PRUNABLE = (Status.DONE, Status.DEAD, Status.REJECTED)

# The final reservation statuses, sorted, for SQL ``IN (...)`` lists.
FINAL_STATUSES = tuple(sorted(str(s) for s in FINAL))


class Records(StrEnum):
    """What is pruned besides events, each by its age (the last change, or the send)."""

    # Final, owing nothing, every owed call done: with its history and its owed calls.
    RESERVATIONS = "reservations"
    # Done owed calls of no stored reservation (a pruned one's, or of no reservation).
    OWED_DONE = "owed_done"
    # Dead owed calls, by hand only (support gave up on a replay), unless a reservation
    # still stored waits on one (status not final, or a call still owed).
    OWED_DEAD = "owed_dead"
    SMS_SENDS = "sms_sends"  # codes counted per phone (only the cap's window is needed)
    SANDBOX_MESSAGES = "sandbox_messages"  # what the sandbox gateway "sent"


# What retention prunes by itself; OWED_DEAD waits for a hand, as dead events do.
AUTOMATIC = (Records.RESERVATIONS, Records.OWED_DONE, Records.SMS_SENDS, Records.SANDBOX_MESSAGES)


@dataclass(frozen=True)
class PrunableRecords:
    """The records of one kind a prune would take, and their ages' span."""

    kind: Records
    count: int  # reservations count alone (their history and calls go with them)
    oldest_at: float | None
    newest_at: float | None


class RecordRetention(Protocol):
    """Pruning of the records besides the event log (``Records``)."""

    async def count_prunable_records(self, kind: Records, before: float) -> PrunableRecords:
        """What :meth:`prune_records` would take of ``kind`` before ``before`` (a dry run)."""

    async def prune_records(self, kind: Records, before: float, limit: int) -> int:
        """Delete up to ``limit`` records of ``kind`` older than ``before``, oldest first,
        in one transaction (a reservation with its history and owed calls); how many went.
        ValueError for a ``limit`` below 1."""


def check_prune(status: Status, limit: int) -> None:
    """ValueError unless ``status`` may be pruned and ``limit`` is at least 1."""
    if status not in PRUNABLE:
        allowed = ", ".join(PRUNABLE)
        raise ValueError(f"only finished events are pruned ({allowed}), not {status}")
    check_limit(limit)


def check_limit(limit: int) -> None:
    """ValueError unless a prune's ``limit`` is at least 1."""
    if limit < 1:
        raise ValueError(f"a prune takes at least one record, not {limit}")
