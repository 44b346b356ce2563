"""What the SQLite and PostgreSQL stores prune beside the log, as SQL both read alike: for
each kind of :class:`~bridge.store.retention.Records`, its table and which of its rows may
go, up to the parameter marker (``?`` or ``%s``) and the name of a row (``rowid``, ``ctid``
for the one table without a key).

A kind is read in lanes, each one range of an index walked oldest first: a batch stops
after ``limit`` rows however many more are old (a first catch-up of years of reservations
must not sort them all in every batch, while SQLite's one writer waits). Reservations have
a lane per final status (the index on status and last change); the others have one.
"""

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
    order: str = ""  # the index walked, when not ``age`` (the age grows with it)

    def select(self, what: str) -> str:
        """``SELECT what`` of the rows that may go."""
        return f"SELECT {what} FROM {self.table} {self.alias} WHERE {self.where}"

    def oldest(self, marker: str) -> str:
        """The keys of the oldest rows that may go (a second parameter: how many)."""
        keys = self.select(f"{self.alias}.{self.key}")
        return f"{keys} ORDER BY {self.order or self.age} LIMIT {marker}"

    def span(self) -> str:
        """How many may go, and the oldest and newest age among them."""
        return self.select(f"count(*), min({self.age}), max({self.age})")


def chosen(kind: Records, marker: str, row: str) -> tuple[Chosen, ...]:
    """The lanes of rows of ``kind`` that may go; ``marker`` is the engine's parameter
    marker, ``row`` its name for a row of a table without a key."""
    if kind is Records.RESERVATIONS:
        # Final, and owing nothing: no master call recorded as still owed (pending) and
        # every owed call of it done (a dead one waits for support, as a dead event does).
        return tuple(
            Chosen(
                "reservations",
                "r",
                "id",
                "r.updated_at",
                f"r.status = '{status}' AND r.updated_at < {marker} AND r.pending IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM owed_calls c WHERE c.subject = r.id"
                " AND c.status <> 'done')",
            )
            for status in FINAL_STATUSES
        )
    if kind is Records.OWED_DONE:
        # A done call of a reservation still stored goes with it (above), not before.
        where = (
            f"c.status = 'done' AND c.updated_at < {marker}"
            " AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = c.subject)"
        )
        return (Chosen("owed_calls", "c", "id", "c.updated_at", where),)
    if kind is Records.OWED_DEAD:
        # By hand: never one a stored reservation still waits on (not final, or owing).
        where = (
            f"c.status = 'dead' AND c.updated_at < {marker}"
            " AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = c.subject"
            f" AND (r.status NOT IN ({_FINAL}) OR r.pending IS NOT NULL))"
        )
        return (Chosen("owed_calls", "c", "id", "c.updated_at", where),)
    if kind is Records.SMS_SENDS:
        # The per-phone cap reads the last bonus.reservations.phone_window_seconds (at most
        # a day; store.retention.sms_after is at least that).
        return (Chosen("sms_sends", "s", row, "s.at", f"s.at < {marker}"),)
    # The sandbox's few messages: walked by id (they are numbered as they come).
    return (Chosen("sandbox_messages", "m", "id", "m.at", f"m.at < {marker}", "m.id"),)


Span = tuple[int, float | None, float | None]


def merged(spans: list[Span]) -> Span:
    """The lanes' counts added, the oldest of their oldest, the newest of their newest."""
    oldest = [s[1] for s in spans if s[1] is not None]
    newest = [s[2] for s in spans if s[2] is not None]
    return sum(s[0] for s in spans), min(oldest, default=None), max(newest, default=None)
