"""``systems.<name>.options`` of a 1C system: where the service is and what it is called."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.onec.contract import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from connectors.onec.naming import Naming

REFERENCE_WSDL = Path(__file__).parent / "wsdl" / "BridgeLoyalty.wsdl"


class OnecOptions(BaseModel):
    """How to reach one 1C infobase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["soap", "http"] = "soap"
    # SOAP: the endpoint (…/ws/<Service or alias>); the WSDL defaults to <address>?wsdl,
    # where 1C publishes it (onec.md §1.1), or give a file path or another URL.
    address: str | None = None
    wsdl: str | None = None
    soap_version: Literal["1.1", "1.2"] = "1.1"
    # HTTP service: its root, e.g. http://host/base/hs/loyalty (onec.md §2).
    url: str | None = None
    username: str = ""
    password: SecretStr = SecretStr("")
    # An existing service's own names for the contract's operations (Cyrillic is fine).
    operations: Naming = Field(default_factory=Naming)
    # The service as it is: a declaration file (relative to config.yaml's folder) or the
    # declaration inline (connectors/onec/DECLARATION.md). Unset: the reference contract,
    # under the names in `operations`.
    service: str | dict[str, Any] | None = None
    # Sandbox only: the description of the service the sandbox 1C serves instead of the
    # reference contract (connectors/onec/emulator/DESCRIBED.md), relative like `service`.
    emulator: str | None = None
    # Seconds between GetChanges polls; 0 turns polling off (1C then pushes to /hooks).
    poll_interval: float = Field(default=5.0, ge=0, le=3600)
    changes_page: int = Field(default=100, ge=1, le=1000)
    # Documents per ListOrders / ListCustomers page for `bridge backfill` (CONTRACT.md).
    list_page: int = Field(default=LIST_LIMIT_DEFAULT, ge=1, le=LIST_LIMIT_MAX)

    @field_validator("username")
    @classmethod
    def _latin_user(cls, value: str) -> str:
        # requests sends Basic credentials as latin-1; a Cyrillic 1C user name cannot pass
        # (onec.md §1.4): use a Latin-named technical user for the integration.
        try:
            value.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError("use a Latin-named 1C user (Basic auth is latin-1)") from exc
        return value

    @field_validator("password")
    @classmethod
    def _latin_password(cls, value: SecretStr) -> SecretStr:
        try:
            value.get_secret_value().encode("latin-1")
        except UnicodeEncodeError as exc:  # the same latin-1 rule, or every call would fail
            raise ValueError("must be latin-1 (Basic auth); use Latin letters and digits") from exc
        return value

    @model_validator(mode="after")
    def _endpoint_given(self) -> OnecOptions:
        if self.transport == "soap" and not (self.address or self.wsdl):
            raise ValueError("transport 'soap' needs address (the …/ws/ endpoint) or wsdl")
        if self.transport == "http" and not self.url:
            raise ValueError("transport 'http' needs url (the …/hs/<root> of the service)")
        if self.operations != Naming() and self.service is not None:
            raise ValueError("give `service` (a declaration) or `operations` (renaming), not both")
        for name in ("address", "url"):
            value = getattr(self, name)
            if value and urlsplit(value).scheme not in ("http", "https"):
                raise ValueError(f"{name} must be an http(s) URL")
        return self

    def wsdl_source(self) -> str:
        """Where the WSDL is read from: ``wsdl``, else ``<address>?wsdl``."""
        if self.wsdl:
            return self.wsdl
        assert self.address is not None  # guaranteed by _endpoint_given
        return f"{self.address}?wsdl"

    def endpoint(self) -> str:
        """The URL calls go to (SOAP endpoint or HTTP-service root), for messages and the
        sandbox emulator."""
        return (self.address or self.wsdl or "") if self.transport == "soap" else self.url or ""
