"""Parsing the event filters shared by the CLI and the admin API; errors name the field."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from bridge.errors import BridgeError
from bridge.store.records import EventFilter, Status

_RELATIVE = re.compile(r"^([0-9]{1,6})\s*([smhd])$", re.ASCII)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LIMIT = 10_000


class FilterError(BridgeError, ValueError):
    """A filter value is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_time(field: str, text: str, now: float | None = None) -> float:
    """ISO 8601 (``2026-11-22T10:00``, UTC unless it says otherwise) or ``90m``/``2h``/``1d``
    ago → UNIX seconds."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        return (time.time() if now is None else now) - int(match.group(1)) * _UNIT[match.group(2)]
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError) as exc:
        raise FilterError(field, "expected ISO 8601 (2026-11-22T10:00) or 30m / 2h / 7d") from exc


def parse_filter(values: Mapping[str, str | None], default_limit: int = 50) -> EventFilter:
    """Build an :class:`EventFilter` from text values (query string or CLI options)."""
    known = {"status", "source", "target", "since", "until", "limit"}
    for key in values:
        if key not in known:
            raise FilterError(key, f"unknown filter; use {', '.join(sorted(known))}")
    status = None
    if values.get("status"):
        try:
            status = Status(str(values["status"]))
        except ValueError as exc:
            allowed = ", ".join(s.value for s in Status)
            raise FilterError("status", f"must be one of {allowed}") from exc
    limit = default_limit
    if values.get("limit"):
        raw = str(values["limit"])
        if (
            not (raw.isascii() and raw.isdigit() and len(raw) <= 6)
            or not 1 <= int(raw) <= MAX_LIMIT
        ):
            raise FilterError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw)
    since = parse_time("since", str(values["since"])) if values.get("since") else None
    until = parse_time("until", str(values["until"])) if values.get("until") else None
    if since is not None and until is not None and until <= since:
        raise FilterError("until", "must be later than since")
    return EventFilter(
        status=status,
        source=values.get("source") or None,
        target=values.get("target") or None,
        since=since,
        until=until,
        limit=limit,
    )
