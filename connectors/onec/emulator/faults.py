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

from dataclasses import dataclass
from typing import Any, Self

from connectors._emulator.faults import EmulatorFaults, check


class Spelled(str):
    """A value written into an answer exactly as given, in place of its canonical form."""

    __slots__ = ()


@dataclass
class OnecFaults(EmulatorFaults):
    """The shared faults, and what a 1C module does wrong: a SOAP fault, values in 1C's own
    spellings. Both reach only calls (POST), never the WSDL."""

    soap_fault: str | None = None  # a business code, or any text (a non-business fault)
    values: dict[str, Any] | None = None  # answer fields written as given (logical names)

    def check_extra(self, values: dict[str, Any]) -> dict[str, Any]:
        """soap_fault a non-empty text, values a map of field names to plain values."""
        fault = values["soap_fault"]
        check(fault is None or (isinstance(fault, str) and fault != ""), _FAULT_TEXT)
        spelled = values["values"]
        plain = spelled is None or (
            isinstance(spelled, dict)
            and all(isinstance(k, str) and _plain(v) for k, v in spelled.items())
        )
        check(plain, "values must map field names to texts, numbers, booleans or null")
        return values | {"values": dict(spelled) if spelled else None}

    def applies(self, share: Self, **request: Any) -> Self | None:
        """A ``call`` (a POST) gets soap_fault and values too; the WSDL only the rest."""
        if not request.get("call"):
            share.soap_fault = None
            share.values = None
        return share


_FAULT_TEXT = "soap_fault must be a non-empty string or null"


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
