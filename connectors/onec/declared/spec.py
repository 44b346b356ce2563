"""The keys of a declaration, as pydantic models: what is checked one key at a time.

The argument and answer rules are the mapping language's (``bridge/mapping``), compiled by
its rule compiler; the checks that span keys (a path template's placeholders, a request
field a capability does not have) are ``compiler.py``'s.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from bridge.ledger import LedgerErrorCode
from bridge.settings_base import Strict

TOP_KEYS = (
    "version",
    "description",
    "transport",
    "soap",
    "timezone",
    "customer",
    "tables",
    "refusal",
    "capabilities",
)
# The codes a refusal may be given: the Ledger's, and unknown_order for orders (PRODUCT 3.3).
REFUSAL_CODES = frozenset({c.value for c in LedgerErrorCode} | {"unknown_order"})
PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")


class SoapSpec(Strict):
    """Which service of the WSDL: 1C names the binding ``<Service>SoapBinding``."""

    service: str = Field(min_length=1)
    namespace: str | None = None  # default: the WSDL's targetNamespace


class WhenSpec(Strict):
    """One condition that makes an answer a refusal."""

    path: str | None = None
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    exists: bool | None = None
    status: list[int] | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = self.model_fields_set
        if "status" in given:
            if given - {"status"}:
                raise ValueError("`status` stands alone: an HTTP status, not a path")
            return self
        if self.path is None:
            raise ValueError("a condition needs `path` (with `equals` or `exists`) or `status`")
        if len(given & {"equals", "in_", "exists"}) != 1:
            raise ValueError("give one of `equals`, `in` or `exists` with `path`")
        return self


class CodeMatch(Strict):
    """A text (or machine code) fragment, and the bridge's refusal code it means."""

    match: str = Field(min_length=1)
    code: str

    @field_validator("code")
    @classmethod
    def _known(cls, value: str) -> str:
        return _refusal_code(value)


class RefusalSpec(Strict):
    """How the service says "no" in an answer, and which refusal each "no" is."""

    when: list[WhenSpec] = Field(default_factory=list)
    message: str | None = None  # path of the text
    code_at: str | None = None  # path of a machine code, if the service gives one
    codes: list[CodeMatch] = Field(default_factory=list)
    code: str = "invalid_request"

    @field_validator("code")
    @classmethod
    def _known(cls, value: str) -> str:
        return _refusal_code(value)


class CapabilitySpec(Strict):
    """One capability's keys; ``args`` and ``answer`` are compiled as mapping rules."""

    operation: str | None = None
    method: Literal["GET", "POST", "PUT", "DELETE"] | None = None
    path: str | None = None
    args: list[Any] = Field(default_factory=list)
    answer: list[Any] = Field(default_factory=list)
    refusal: Any = None  # a RefusalSpec, checked on its own (its problems hide no others)
    done_by_1c: str | None = None


class DeclarationSpec(Strict):
    """The top of a declaration."""

    version: int
    description: str | None = None
    transport: Literal["soap", "http"]
    soap: SoapSpec | None = None
    timezone: str = "Europe/Moscow"
    customer: Literal["phone", "card"] | None = None
    tables: dict[str, Any] = Field(default_factory=dict)
    refusal: Any = None  # a RefusalSpec, checked on its own
    capabilities: dict[str, Any] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"unsupported version {value} (this bridge reads version 1)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (such as Europe/Moscow)") from None
        return value

    @model_validator(mode="after")
    def _soap_named(self) -> Self:
        if self.transport == "soap" and self.soap is None:
            raise ValueError("transport soap needs `soap: {service: <its name in the WSDL>}`")
        if self.transport == "http" and self.soap is not None:
            raise ValueError("`soap` is for transport soap; this service is http")
        return self


def _refusal_code(value: str) -> str:
    if value not in REFUSAL_CODES:
        raise ValueError(
            f"unknown refusal code {value!r} (one of {', '.join(sorted(REFUSAL_CODES))})"
        )
    return value


def unknown_top_key(name: str) -> str:
    """The message for a key a declaration does not have."""
    return f"unknown key {name!r} (a declaration has {', '.join(TOP_KEYS)})"
