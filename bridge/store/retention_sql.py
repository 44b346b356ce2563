"""What the SQLite and PostgreSQL stores prune beside the log, as SQL both read alike: for
each kind of :class:`~bridge.store.retention.Records`, its table and which of its rows may
go, up to the parameter marker (``?`` or ``%s``) and the name of a row (``rowid``, ``ctid``
for the one table without a key)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.store.retention import FINAL_STATUSES, Records

_FINAL = ", ".join(f"'{s}'" for s in FINAL_STATUSES)  # our own constants, not input


@dataclass(frozen=True)
class Chosen:
    """One kind's rows: ``SELECT {key} FROM {table} {alias} WHERE {where}``, by ``age``."""

    table: str
    alias: str
    key: str  # the column a batch names its rows by
    age: str
    where: str  # one parameter: the moment ``before``

    def select(self, what: str) -> str:
        """``SELECT what`` of the rows that may go."""
        return f"SELECT {what} FROM {self.table} {self.alias} WHERE {self.where}"

    def oldest(self, marker: str) -> str:
        """The keys of the oldest rows that may go (a second parameter: how many)."""
        return f"{self.select(f'{self.alias}.{self.key}')} ORDER BY {self.age} LIMIT {marker}"

    def span(self) -> str:
        """How many may go, and the oldest and newest age among them."""
        return self.select(f"count(*), min({self.age}), max({self.age})")


def chosen(kind: Records, marker: str, row: str) -> Chosen:
    """The rows of ``kind`` that may go; ``marker`` is the engine's parameter marker, ``row``
    its name for a row of a table without a key."""
    if kind is Records.RESERVATIONS:
        # Final, and owing nothing: no master call recorded as still owed (pending) and
        # every owed call of it done (a dead one waits for support, as a dead event does).
        return Chosen(
            "reservations",
            "r",
            "id",
            "r.updated_at",
            f"r.status IN ({_FINAL}) AND r.updated_at < {marker} AND r.pending IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM owed_calls c WHERE c.subject = r.id"
            " AND c.status <> 'done')",
        )
    if kind is Records.OWED_DONE:
        # A done call of a reservation still stored goes with it (above), not before.
        return Chosen(
            "owed_calls",
            "c",
            "id",
            "c.updated_at",
            f"c.status = 'done' AND c.updated_at < {marker}"
            " AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = c.subject)",
        )
    if kind is Records.OWED_DEAD:
        # By hand: never one a stored reservation still waits on (not final, or owing).
        return Chosen(
            "owed_calls",
            "c",
            "id",
            "c.updated_at",
            f"c.status = 'dead' AND c.updated_at < {marker}"
            " AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = c.subject"
            f" AND (r.status NOT IN ({_FINAL}) OR r.pending IS NOT NULL))",
        )
    if kind is Records.SMS_SENDS:
        # The per-phone cap reads the last bonus.reservations.phone_window_seconds (at most
        # a day; store.retention.sms_after is at least that).
        return Chosen("sms_sends", "s", row, "s.at", f"s.at < {marker}")
    return Chosen("sandbox_messages", "m", "id", "m.at", f"m.at < {marker}")
