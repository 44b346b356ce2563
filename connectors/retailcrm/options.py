"""``systems.<name>.options`` of a RetailCRM system."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class RetailcrmOptions(BaseModel):
    """How to reach one RetailCRM account and what to read from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The account URL, e.g. https://shop.retailcrm.ru (retailcrm-api.md §1.1); no /api.
    url: str
    # A key of the bridge's own, so its writes come back marked apiKey.current (§7.4).
    api_key: SecretStr
    # The store code sent with every write and loyalty call (§1.2).
    site: str = Field(default="shop", min_length=1, max_length=64)
    # Requests per second for everything using this key (§1.6: 10; 503 beyond).
    rate_limit: float = Field(default=10.0, gt=0, le=100)
    # Seconds between history polls; 0 turns polling off.
    poll_interval: float = Field(default=10.0, ge=0, le=3600)
    history_page: Literal[20, 50, 100] = 100  # the limits RetailCRM accepts (§1.7)
    # Also poll /customers-corporate/history (§10.4): changes of corporate (B2B) customers
    # as entity `corporate_customer`. Off by default: many accounts do not use them.
    corporate_customers: bool = False
    # The loyalty programme balances live in (GET /loyalty/loyalties), when RetailCRM is
    # the bonus master.
    loyalty_id: int | None = Field(default=None, ge=1)

    @field_validator("api_key")
    @classmethod
    def _key_given(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if len(key) < 8:
            raise ValueError("must be the API key the bridge uses (its own, §7.4)")
        if not (key.isascii() and key.isprintable()) or key != key.strip() or " " in key:
            # It travels in a header: spaces or control characters would make requests
            # refuse it with the key in the message, on every call.
            raise ValueError("must be printable ASCII without spaces (check for a stray space)")
        return value

    @field_validator("url")
    @classmethod
    def _account_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be the account URL, e.g. https://shop.retailcrm.ru")
        if parts.path.rstrip("/").endswith("/api") or "/api/" in parts.path:
            raise ValueError("give the account URL without /api (the client adds /api/v5)")
        return value.rstrip("/")
