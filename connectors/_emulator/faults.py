"""Faults every emulator can be told to inject, and the gate that applies them.

``EmulatorFaults`` holds what the web server in front of a system does wrong: latency,
an HTTP error page, a hang (for client timeouts), an outage (the connection closed without
an answer), for the next ``count`` requests (-1: all of them). A system adds its own
faults in a subclass (1C's SOAP faults and value spellings, Bitrix's REST errors narrowed
to methods): it declares the fields, checks them in ``check_extra`` and, in ``applies``,
says which of them reach one request. ``POST /__emulator__/faults`` calls ``set`` with the
JSON body; ``answer_faults`` is the emulator middleware's part before the handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Self

from aiohttp import web

from connectors._emulator.web import nginx_page

ADMIN = "/__emulator__"  # the sandbox-only endpoints: no auth, loopback only


def check(ok: bool, message: str) -> None:
    """ValueError(``message``) unless ``ok``: a bad setting from the admin endpoint."""
    if not ok:
        raise ValueError(message)


@dataclass
class EmulatorFaults:
    """Failures to inject; the next ``count`` requests they apply to get them (-1: all)."""

    latency: float = 0.0  # seconds added before every answer
    http_status: int | None = None  # answered by the web server in front, with an HTML page
    hang: float = 0.0  # seconds of silence before answering, for client timeouts
    outage: bool = False  # close the connection without an answer
    count: int = -1

    # Fields that choose where faults apply rather than being faults themselves.
    SELECTORS: ClassVar[tuple[str, ...]] = ("count",)

    def set(self, **settings: Any) -> None:
        """Replace every setting at once (what is left out is cleared); ValueError if bad,
        TypeError for a setting this emulator does not know."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise TypeError(f"unknown fault setting {unknown[0]!r}")
        values = asdict(type(self)()) | settings
        # Checked here rather than by type hints alone: the admin endpoint passes JSON values.
        for name in ("latency", "hang"):
            value = values[name]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            check(number and value >= 0, f"{name} must be a number of seconds >= 0")
        status = values["http_status"]
        check(
            status is None or (type(status) is int and 400 <= status <= 599),
            "http_status must be an integer 400..599 or null",
        )
        check(isinstance(values["outage"], bool), "outage must be true or false")
        values = self.check_extra(values)
        count = values["count"]
        check(type(count) is int and count >= -1, "count must be an integer >= -1")
        values["latency"], values["hang"] = float(values["latency"]), float(values["hang"])
        for name in names:
            setattr(self, name, values[name])

    def check_extra(self, values: dict[str, Any]) -> dict[str, Any]:
        """Check (ValueError) and normalise a subclass's own settings; ``values`` holds all."""
        return values

    def clear(self) -> None:
        """Behave again."""
        self.set()

    def snapshot(self) -> dict[str, Any]:
        """The settings as JSON."""
        return asdict(self)

    @property
    def idle(self) -> bool:
        """No fault is set (selectors such as ``count`` aside)."""
        blank = type(self)()
        return all(
            getattr(self, f.name) == getattr(blank, f.name)
            for f in dataclasses.fields(self)
            if f.name not in self.SELECTORS
        )

    def applies(self, share: Self, **request: Any) -> Self | None:
        """``share`` (a copy of the settings) narrowed to one request; None when no fault
        applies to it (then ``count`` is not spent)."""
        return share

    def take(self, **request: Any) -> Self:
        """The faults for one request, counted against ``count``; the keywords say what the
        request is to a subclass's ``applies``."""
        share = self.applies(dataclasses.replace(self), **request)
        if self.count == 0 or self.idle or share is None or share.idle:
            return type(self)()
        if self.count > 0:
            self.count -= 1
            if self.count == 0:
                self.clear()
        return share


async def answer_faults(
    request: web.Request,
    faults: EmulatorFaults,
    page: Callable[[int], web.Response] = nginx_page,
) -> web.StreamResponse | None:
    """What the web server in front does to a request with ``faults``: an outage, a hang or
    latency, an error ``page``; None when the request goes on to the handler."""
    if faults.outage and request.transport is not None:
        request.transport.close()  # aiohttp drops the answer to a closed transport
        return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE)
    await asyncio.sleep(faults.hang + faults.latency)
    if faults.http_status is not None:
        return page(faults.http_status)
    return None
