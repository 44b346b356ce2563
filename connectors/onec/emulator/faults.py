"""What the sandbox 1C can be told to do wrong: latency, faults, HTTP errors, hangs, outages,
and answers whose values are spelled as a hand-written 1C service spells them.

``values`` replaces fields of every answer with the text given, written as is whatever the
field's type. A 1C developer who builds the HTTP service's JSON by hand writes what 1C's own
functions print (onec.md §2: an HTTP service's body is whatever the module writes):
``Строка(1000.5)`` is ``"1 000,5"`` with a no-break space, ``Формат(…, "ЧДЦ=2")``
``"1 000,50"``, a Булево becomes ``"false"``, ``"Истина"`` or ``"Да"``, the empty date
``"0001-01-01T00:00:00"``. ``POST /__emulator__/faults`` takes ``{"values": {"balance":
"1 000,50"}}`` too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class Spelled(str):
    """A value written into an answer exactly as given, in place of its canonical form."""

    __slots__ = ()


@dataclass
class EmulatorFaults:
    """Failures to inject; the next ``count`` requests they apply to get them (-1: all)."""

    latency: float = 0.0  # seconds added to every answer
    soap_fault: str | None = None  # a business code, or any text (a non-business fault)
    http_status: int | None = None  # answered by the "web server", with an HTML page
    hang: float = 0.0  # seconds of silence before answering, for client timeouts
    outage: bool = False  # close the connection without an answer
    values: dict[str, Any] | None = None  # answer fields written as given (logical names)
    count: int = -1

    def set(
        self,
        latency: float = 0.0,
        soap_fault: str | None = None,
        http_status: int | None = None,
        hang: float = 0.0,
        outage: bool = False,
        values: dict[str, Any] | None = None,
        count: int = -1,
    ) -> None:
        """Replace every setting at once (what is left out is cleared); ValueError if bad."""
        # Checked here rather than by type hints alone: the admin endpoint passes JSON values.
        for name, value in (("latency", latency), ("hang", hang)):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            _check(number and value >= 0, f"{name} must be a number of seconds >= 0")
        text = soap_fault is None or (isinstance(soap_fault, str) and soap_fault != "")
        _check(text, "soap_fault must be a non-empty string or null")
        status = http_status is None or (type(http_status) is int and 400 <= http_status <= 599)
        _check(status, "http_status must be an integer 400..599 or null")
        _check(isinstance(outage, bool), "outage must be true or false")
        plain = values is None or (
            isinstance(values, dict)
            and all(isinstance(k, str) and _plain(v) for k, v in values.items())
        )
        _check(plain, "values must map field names to texts, numbers, booleans or null")
        _check(type(count) is int and count >= -1, "count must be an integer >= -1")
        self.latency, self.soap_fault, self.http_status = float(latency), soap_fault, http_status
        self.hang, self.outage, self.count = float(hang), outage, count
        self.values = dict(values) if values else None

    def clear(self) -> None:
        """Behave again."""
        self.set()

    def take(self, *, call: bool) -> EmulatorFaults:
        """The faults for one request (a ``call`` gets soap_fault too), counted against count."""
        share = EmulatorFaults(**asdict(self))
        if not call:
            share.soap_fault = None
            share.values = None
        if share == EmulatorFaults(count=self.count) or self.count == 0:
            return EmulatorFaults()
        if self.count > 0:
            self.count -= 1
            if self.count == 0:
                self.clear()
        return share


def respell(record: Any, values: dict[str, Any] | None) -> Any:
    """``record`` (an operation's logical result) with the fields ``values`` names replaced,
    texts as :class:`Spelled` so that SOAP writes them unchanged too."""
    if not values or not isinstance(record, dict):
        return record
    out = dict(record)
    for name, value in values.items():
        if name in out:
            out[name] = Spelled(value) if isinstance(value, str) else value
    return out


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
