"""The offline event queue: `event.offline.get|clear|error|list` (bitrix.md §3.5).

The queue keeps the **latest state per object**: a change merges into the waiting record of
the same `MESSAGE_ID` = md5(`EVENT_NAME|json(EVENT_DATA)`) of the same connector, refreshing
its `TIMESTAMP_X` (rest module `EventOfflineTable::callEvent`, merge on MESSAGE_ID, APP_ID,
CONNECTOR_ID, PROCESS_ID — inferred from source). `get` with `clear=0` reserves up to
`limit` records under a new `process_id` (hidden from other readers) until `clear`; with
`clear=1` (the default) they are deleted at once. Everything is per `auth_connector`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from connectors.bitrix.emulator.calls import Method, RestCall
from connectors.bitrix.emulator.fields import Resolve, row_matches, sort_rows
from connectors.bitrix.emulator.wire import (
    PAGE,
    Clock,
    Json,
    Reply,
    access_denied,
    argument_error,
    iso,
    page,
    php_int,
    php_list,
)

GET_FIELDS = ("ID", "TIMESTAMP_X", "EVENT_NAME", "MESSAGE_ID")  # rest module sanitizeFilter
LIST_FIELDS = (*GET_FIELDS, "PROCESS_ID", "ERROR")


def message_id(event: str, data: Any) -> str:
    """md5 of `EVENT_NAME|<json of EVENT_DATA>`, as the rest module names a message."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(f"{event}|{text}".encode()).hexdigest()  # noqa: S324 - an id, not a MAC


class OfflineQueue:
    """Offline event records of the one application, by connector id."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.rows: list[Json] = []
        self._next = 1

    def push(self, event: str, data: Json, user_id: int, connector: str) -> None:
        """Merge a change into the waiting record of the same message, or add one."""
        msg = message_id(event, data)
        now = self._clock()
        for row in self.rows:
            waiting = row["PROCESS_ID"] == "" and row["CONNECTOR_ID"] == connector
            if waiting and row["MESSAGE_ID"] == msg:
                row |= {"_ts": now, "EVENT_DATA": data, "EVENT_ADDITIONAL": {"user_id": user_id}}
                return
        self.rows.append(
            {
                "ID": self._next,
                "_ts": now,
                "EVENT_NAME": event,
                "EVENT_DATA": data,
                "EVENT_ADDITIONAL": {"user_id": user_id},
                "MESSAGE_ID": msg,
                "PROCESS_ID": "",
                "CONNECTOR_ID": connector,
                "ERROR": 0,
            }
        )
        self._next += 1

    def render(self, row: Json, *, full: bool) -> Json:
        """A record as the methods answer it (`full` adds PROCESS_ID and ERROR, for list)."""
        out = {
            "ID": row["ID"],
            "TIMESTAMP_X": iso(row["_ts"]),
            "EVENT_NAME": row["EVENT_NAME"],
            "EVENT_DATA": row["EVENT_DATA"],
            "EVENT_ADDITIONAL": row["EVENT_ADDITIONAL"],
            "MESSAGE_ID": row["MESSAGE_ID"],
        }
        if full:
            out |= {"PROCESS_ID": row["PROCESS_ID"], "ERROR": row["ERROR"]}
        return out

    def snapshot(self) -> list[Json]:
        """Every record, with its connector."""
        return [self.render(r, full=True) | {"CONNECTOR_ID": r["CONNECTOR_ID"]} for r in self.rows]

    # ---- methods -----------------------------------------------------------------------

    def methods(self) -> dict[str, Method]:
        """The method table of `event.offline.*` (application context, admin only)."""
        return {
            "event.offline.get": Method("", self.get, app_only=True),
            "event.offline.clear": Method("", self.clear, app_only=True),
            "event.offline.error": Method("", self.error, app_only=True),
            "event.offline.list": Method("", self.listing, app_only=True),
        }

    def get(self, call: RestCall) -> Reply:
        """`event.offline.get {filter, order, limit, clear, process_id, error}`."""
        _admin(call)
        clear = php_int(call.get("clear"), 1) != 0
        given = call.get("process_id")
        process_id = str(given).strip() if given is not None else None
        limit = php_int(call.get("limit"), PAGE)
        if limit <= 0:
            raise argument_error("Value must be positive integer")
        errors = php_int(call.get("error")) == 1
        connector = call.caller.auth_connector
        mine = [
            r
            for r in self.rows
            if r["CONNECTOR_ID"] == connector
            and r["ERROR"] == int(errors)
            and row_matches(self._view(r), call.get("filter"), _resolver(GET_FIELDS))
        ]
        order = call.get("order") or {"TIMESTAMP_X": "ASC"}
        answer_id = not clear
        if process_id is None:
            process_id = secrets.token_hex(16)
            free = [r for r in mine if r["PROCESS_ID"] == ""]
            for row in self._sorted(free, order)[:limit]:
                row["PROCESS_ID"] = process_id
        else:
            answer_id = True
        taken = self._sorted([r for r in mine if r["PROCESS_ID"] == process_id], order)[:limit]
        events = [self.render(r, full=False) for r in taken]
        if clear and taken:
            self._drop(process_id, connector, None, None)
        return Reply({"process_id": process_id if answer_id else None, "events": events})

    def clear(self, call: RestCall) -> Reply:
        """`event.offline.clear {process_id, id[] | message_id[]}` → true."""
        _admin(call)
        process_id = _process_id(call)
        connector = call.caller.auth_connector
        if call.get("message_id") is not None:
            ids = _message_ids(call.get("message_id"))
            self._drop(process_id, connector, None, ids)
        elif call.get("id") is not None:
            given = call.get("id")
            listed = isinstance(given, list | dict)
            numbers = [php_int(i) for i in php_list(given)] if listed else []
            if not numbers or min(numbers) <= 0:
                raise argument_error("Value must be array of integers")
            self._drop(process_id, connector, set(numbers), None)
        else:
            self._drop(process_id, connector, None, None)
        return Reply(True)

    def error(self, call: RestCall) -> Reply:
        """`event.offline.error {process_id, message_id[]}`: re-read later with `error=1`."""
        _admin(call)
        process_id = _process_id(call)
        ids = _message_ids(call.get("message_id"))
        connector = call.caller.auth_connector

        def named(row: Json) -> bool:
            return row["CONNECTOR_ID"] == connector and row["MESSAGE_ID"] in ids

        # EventOfflineTable::markError: other copies of the message go, this process's
        # records return to the queue flagged ERROR=1.
        self.rows = [
            r
            for r in self.rows
            if not (named(r) and r["ERROR"] == 0 and r["PROCESS_ID"] != process_id)
        ]
        for row in self.rows:
            if named(row) and row["ERROR"] == 0:
                row["ERROR"], row["PROCESS_ID"] = 1, ""
        return Reply(True)

    def listing(self, call: RestCall) -> Reply:
        """`event.offline.list {filter, order, start}`: look without side effects."""
        _admin(call)
        connector = call.caller.auth_connector
        mine = [
            r
            for r in self.rows
            if r["CONNECTOR_ID"] == connector
            and row_matches(self._view(r), call.get("filter"), _resolver(LIST_FIELDS))
        ]
        chosen = page(self._sorted(mine, call.get("order") or {"ID": "ASC"}), call.start)
        chosen.result = [self.render(r, full=True) for r in chosen.result]
        return chosen

    def _view(self, row: Json) -> Json:
        return row | {"TIMESTAMP_X": iso(row["_ts"])}

    def _sorted(self, rows: list[Json], order: Any) -> list[Json]:
        def resolve(name: str) -> str | None:
            upper = name.upper()
            return "_ts" if upper == "TIMESTAMP_X" else upper if upper in LIST_FIELDS else None

        return sort_rows(rows, order if isinstance(order, Mapping) else None, resolve)

    def _drop(
        self, process_id: str, connector: str, ids: set[int] | None, msgs: set[str] | None
    ) -> None:
        def gone(row: Json) -> bool:
            return (
                row["PROCESS_ID"] == process_id
                and row["CONNECTOR_ID"] == connector
                and (ids is None or row["ID"] in ids)
                and (msgs is None or row["MESSAGE_ID"] in msgs)
            )

        self.rows = [r for r in self.rows if not gone(r)]


def _admin(call: RestCall) -> None:
    if not call.caller.admin:  # §3.5: all admin-only, 403 ACCESS_DENIED otherwise
        raise access_denied()


def _process_id(call: RestCall) -> str:
    given = call.get("process_id")
    if given is None:
        raise argument_error("Argument 'PROCESS_ID' is null or empty")
    return str(given).strip()


def _message_ids(given: Any) -> set[str]:
    if not isinstance(given, list | dict):
        raise argument_error("Value must be array of MESSAGE_ID values")
    ids = {str(m).strip() for m in php_list(given)}
    if any(len(m) != 32 for m in ids):
        raise argument_error("Value must be array of MESSAGE_ID values")
    return ids


def _resolver(allowed: tuple[str, ...]) -> Resolve:
    """Filter names the rest module's sanitizeFilter lets through; others are dropped."""

    def resolve(name: str) -> str | None:
        return name.upper() if name.upper() in allowed else None

    return resolve
