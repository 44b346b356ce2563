"""How both SQL stores list events: one page at a time, read from an index in the order it
is printed, so a page costs the same at a thousand events and at a million (issue 16).

The order is newest received first, the event id breaking ties. A page goes on from the
last event of the page before it (keyset pagination: ``after``), never by OFFSET. Without
a target the page walks an index of ``events`` (``received_at``, ``status, received_at`` or
``source, received_at``, each ending in the id); with a target it walks the links
(``delivery_events``), which carry their delivery's target and status and their event's
reception (SQLite's migration 0013, PostgreSQL's 0003). A filter the index does not hold
(the source beside a status or a target) is checked on the rows read, still in order: a
page of a combination that matches few of them reads that status's or target's range until
the page is full (at 1,000,000 events, a source that never goes to the target: 0.2 s on
SQLite, 0.6 s on PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from bridge.store.records import EventFilter

Key = tuple[float, int]  # (received_at, event id) of the event a page goes on after

# PostgreSQL picks a sort of the matching rows over the ordered index when it expects few
# of them (say, pending deliveries to one target); an estimate that is wrong (a backlog
# after an outage) makes that sort as long as the backlog. A page never needs one: every
# filter has an index in its order, so the listing's transaction rules sorting out.
POSTGRES_IN_ORDER = (
    "SET LOCAL enable_sort = off",
    "SET LOCAL enable_incremental_sort = off",
)
# ... and only for the page: the rest of the transaction plans as usual.
POSTGRES_AS_USUAL = (
    "SET LOCAL enable_sort TO DEFAULT",
    "SET LOCAL enable_incremental_sort TO DEFAULT",
)


def page_query(
    flt: EventFilter, after: Key | None, columns: str, mark: str
) -> tuple[str, list[Any]]:
    """The SELECT of one page of ``flt`` after ``after`` and its arguments; ``columns``
    name ``e.`` columns of events, ``mark`` is the driver's parameter marker (``?`` for
    sqlite3, ``%s`` for psycopg)."""
    clauses: list[str] = []
    args: list[Any] = []
    if flt.target is not None:
        # CROSS JOIN: SQLite keeps the links as the outer loop (the order of the page);
        # PostgreSQL reads it as the inner join it is.
        source = "FROM delivery_events de CROSS JOIN events e"
        clauses.append("e.id = de.event_id")
        received, ident = "de.received_at", "de.event_id"
        clauses.append(f"de.target = {mark}")
        args.append(flt.target)
        if flt.status is not None:  # the status of the delivery to that target
            clauses.append(f"de.status = {mark}")
            args.append(str(flt.status))
    else:
        source = "FROM events e"
        received, ident = "e.received_at", "e.id"
        if flt.status is not None:
            clauses.append(f"e.status = {mark}")
            args.append(str(flt.status))
    if flt.source is not None:
        # Beside an event status, the source is checked on the rows of the status's index
        # (``|| ''`` keeps the planner off the source's index, which SQLite otherwise picks
        # as often: a rare status is far fewer rows to read than a source).
        beside = flt.status is not None and flt.target is None
        clauses.append(f"e.source || '' = {mark}" if beside else f"e.source = {mark}")
        args.append(flt.source)
    if flt.since is not None:
        clauses.append(f"{received} >= {mark}")
        args.append(flt.since)
    if flt.until is not None:
        clauses.append(f"{received} < {mark}")
        args.append(flt.until)
    if after is not None:
        clauses.append(f"({received}, {ident}) < ({mark}, {mark})")
        args.extend(after)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {columns} {source} {where} ORDER BY {received} DESC, {ident} DESC LIMIT {mark}"
    return sql, [*args, flt.limit]


def key_query(mark: str) -> str:
    """The SELECT of the key a page goes on after, from the event's id."""
    return f"SELECT received_at, id FROM events WHERE id = {mark}"


def gone_message(ref: str) -> str:
    """What to say when the event a page should go on after is no longer stored."""
    return f"no event {ref} to go on after (pruned meanwhile?); list again without --after"
