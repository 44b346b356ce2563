"""The shape of ``config.yaml``: pydantic models, every one ``extra="forbid"``.

Reading the file (line numbers, ``${VAR}`` interpolation, ``BRIDGE__*`` overrides) lives in
``settings_loader.py``; this module only says what a valid configuration is.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from enum import StrEnum
from pathlib import Path as FilePath
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from bridge.settings_base import Strict
from bridge.settings_customers import CustomerSettings
from bridge.settings_rules import RulesSettings
from bridge.settings_sms import (
    SmsSettings,
)

SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# customers: act for a customer who proved their phone (issue 17: a web shop's back end).
# bonus:adjust: manual accruals and write-offs (/api/v1/bonus/operations, issue 18).
SCOPES = frozenset({"bonus:read", "bonus:reserve", "bonus:adjust", "customers", "admin"})


class Synchronous(StrEnum):
    """SQLite ``synchronous`` levels we allow; FULL survives power loss after the ack."""

    FULL = "full"
    NORMAL = "normal"


_DURATION = re.compile(r"^([0-9]{1,6})\s*([smhd])$", re.ASCII)
_DURATION_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float | None:
    """``30d``, ``12h``, ``90m``, ``45s`` or a number of seconds → seconds; ``off`` → None."""
    if value is None or value is False or value == "off":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = float(int(match.group(1)) * _DURATION_UNIT[match.group(2)])
    else:
        raise ValueError("expected a duration such as 30d, 12h, 90m or 45s, or off")
    if seconds <= 0:
        raise ValueError("a duration must be longer than 0 (write off to keep everything)")
    return seconds


class RetentionSettings(Strict):
    """How long finished records stay in the store. ``dead`` and ``rejected`` events, and
    dead owed calls, stay until they are replayed or purged by hand (``bridge purge``)."""

    # Done events go once they have been done this long (30d, 12h, 90m; off keeps them all).
    done_after: float | None = 30 * 86400.0
    # Reservations in a final state (committed, released, cancelled, locked, expired,
    # failed) that owe the master nothing, with their history and owed calls, once their
    # last change is this old; done owed calls of no reservation alike. A till's retry
    # with the same Idempotency-Key, and a return's points given back, need the
    # reservation: keep it longer than either can come (at least 7d, the longest hold).
    reservations_after: float | None = 90 * 86400.0
    # SMS sends counted for the per-phone cap, and the sandbox's outbox (at least 1d, the
    # longest bonus.reservations.phone_window_seconds: the cap must see its whole window).
    sms_after: float | None = 30 * 86400.0
    batch: int = Field(default=500, ge=1, le=5000)  # records per transaction
    pause_seconds: float = Field(default=1.0, ge=0, le=60)  # between batches while behind
    every_seconds: float = Field(default=300.0, gt=0, le=86400)  # looks once caught up

    @field_validator("done_after", "reservations_after", "sms_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return parse_duration(value)

    @field_validator("reservations_after")
    @classmethod
    def _after_every_hold(cls, value: float | None) -> float | None:
        return _at_least(value, 7 * 86400.0, "7d")

    @field_validator("sms_after")
    @classmethod
    def _after_the_cap_window(cls, value: float | None) -> float | None:
        return _at_least(value, 86400.0, "1d")


def _at_least(value: float | None, floor: float, text: str) -> float | None:
    """``value`` unless it is shorter than ``floor`` (a duration, or None for off)."""
    if value is not None and value < floor:
        raise ValueError(f"must be at least {text} (or off)")
    return value


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _postgres_url(value: str) -> str:
    """A PostgreSQL URL without a password (libpq takes it from PGPASSWORD or ~/.pgpass)."""
    parts = urllib.parse.urlsplit(value)
    query = urllib.parse.parse_qs(parts.query)
    if parts.password is not None or "password" in query:
        raise ValueError(
            "must not carry a password (it would show in logs and `bridge check`):"
            " write postgresql://user@host:5432/db and give the password in the environment"
            " (PGPASSWORD) or in ~/.pgpass"
        )
    if not parts.path.strip("/"):
        raise ValueError("must name the database: postgresql://user@host:5432/db")
    return value


class StoreSettings(Strict):
    """Where events live. ``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db`` (one
    instance), or ``postgresql://user@host:5432/db`` (several instances; the password in
    the environment, PGPASSWORD or ~/.pgpass)."""

    url: str = "sqlite:///var/bridge.db"
    synchronous: Synchronous = Synchronous.FULL
    lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    busy_timeout_ms: int = Field(default=5000, ge=0)
    retention: RetentionSettings = RetentionSettings()

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value.startswith(POSTGRES_SCHEMES):
            return _postgres_url(value)
        if not value.startswith("sqlite:///") or len(value) == len("sqlite:///"):
            raise ValueError(
                "must be sqlite:///relative/path.db, sqlite:////absolute/path.db"
                " or postgresql://user@host:5432/db"
            )
        return value


class HttpSettings(Strict):
    """The HTTP listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0, le=64 * 1_048_576)


class LogFormat(StrEnum):
    """``auto`` is console in a terminal and JSON otherwise."""

    AUTO = "auto"
    CONSOLE = "console"
    JSON = "json"


class LogSettings(Strict):
    """Logging; output goes to stderr."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: LogFormat = LogFormat.AUTO


class ClientSettings(Strict):
    """An API client: one bearer token and the scopes it grants."""

    token: SecretStr
    scopes: list[str] = Field(min_length=1)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - SCOPES)
        if unknown:
            raise ValueError(f"unknown scope(s) {unknown}; allowed: {sorted(SCOPES)}")
        return value


class WebhookAuth(StrEnum):
    """How a system proves it is the sender of ``POST /hooks/{system}``."""

    BEARER = "bearer"  # Authorization: Bearer <token>
    QUERY = "query"  # ?token=<token>, for senders that cannot set headers
    HMAC = "hmac"  # Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
    CONNECTOR = "connector"  # the connector's parser checks a token inside the body


class WebhookSettings(Strict):
    """Inbound webhook of one system."""

    auth: WebhookAuth = WebhookAuth.BEARER
    token: SecretStr | None = None
    secret: SecretStr | None = None
    tolerance_seconds: int = Field(default=300, ge=1, le=3600)

    @model_validator(mode="after")
    def _credential_present(self) -> WebhookSettings:
        needs_token = self.auth in (WebhookAuth.BEARER, WebhookAuth.QUERY, WebhookAuth.CONNECTOR)
        if needs_token and (self.token is None or len(self.token.get_secret_value()) < 16):
            raise ValueError(f"auth '{self.auth}' needs a token of at least 16 characters")
        if self.auth is WebhookAuth.HMAC:
            secret = self.secret.get_secret_value() if self.secret else ""
            try:
                key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except binascii.Error:
                key = b""
            # Standard Webhooks keys are 24 to 64 random bytes; fewer is guessable.
            if not secret.startswith("whsec_") or len(key) < 16:
                raise ValueError("auth 'hmac' needs a secret whsec_<base64 of at least 16 bytes>")
        return self


class RetrySettings(Strict):
    """Capped exponential backoff with jitter for one target."""

    base_seconds: float = Field(default=1.0, gt=0)
    cap_seconds: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=15, ge=1, le=1000)
    jitter: float = Field(default=0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _cap_above_base(self) -> RetrySettings:
        if self.cap_seconds < self.base_seconds:
            raise ValueError("cap_seconds must not be below base_seconds")
        return self


class DeliverySettings(Strict):
    """How deliveries to one system are dispatched."""

    concurrency: int = Field(default=4, ge=1, le=256)
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    retry: RetrySettings = RetrySettings()


class SystemSettings(Strict):
    """One external system; ``type`` names an installed connector."""

    type: str
    enabled: bool = True
    webhook: WebhookSettings | None = None
    delivery: DeliverySettings = DeliverySettings()
    options: dict[str, Any] = Field(default_factory=dict)
    # The folder of the config file it was read from: a connector reads the files its
    # options name relative to it, as routes read their mapping files (read_settings sets it).
    _config_dir: FilePath | None = PrivateAttr(default=None)

    @property
    def config_dir(self) -> FilePath:
        """Where relative file names in the options are read from (the working folder when
        the settings were not read from a file)."""
        return self._config_dir or FilePath()

    def read_from(self, folder: FilePath) -> None:
        """Record the config file's folder (``read_settings``)."""
        self._config_dir = folder


class Route(Strict):
    """Events of ``entity`` from ``source`` go to every system in ``targets``."""

    source: str
    entity: str
    targets: list[str] = Field(min_length=1)
    mapping: str | None = None


class MirrorSettings(Strict):
    """Order and customer mirroring."""

    routes: list[Route] = Field(default_factory=list)


class BreakerSettings(Strict):
    """When repeat failures of the master make calls fail at once."""

    failures: int = Field(default=5, ge=1, le=100)
    reset_seconds: float = Field(default=30.0, gt=0, le=3600)


class ReservationSettings(Strict):
    """SMS-confirmed write-offs (PRODUCT 3.2)."""

    code_length: int = Field(default=6, ge=4, le=8)
    code_ttl_seconds: float = Field(default=600.0, gt=0, le=3600)  # NIST: at most 10 min
    max_attempts: int = Field(default=5, ge=1, le=10)  # wrong codes before ``locked``
    resend_cooldown_seconds: float = Field(default=60.0, ge=0, le=3600)
    # At most this many codes to one phone per window (SMS costs money; pumping).
    max_codes_per_phone: int = Field(default=5, ge=1, le=1000)
    phone_window_seconds: float = Field(default=600.0, gt=0, le=86400)
    hold_ttl_seconds: float = Field(default=1800.0, gt=0, le=7 * 86400)  # then released
    # How often the background job looks for expired holds and pending commands.
    sweep_seconds: float = Field(default=1.0, gt=0, le=60)
    retry_max_seconds: float = Field(default=60.0, gt=0, le=3600)  # pending-command backoff cap
    # The HMAC key codes are stored under. Keep it out of the database (an environment
    # variable): a copy of the store alone then reveals no code. Unset, a random key is
    # kept in the store (fine for the sandbox).
    code_key: SecretStr | None = None

    @field_validator("code_key")
    @classmethod
    def _long_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. openssl rand -hex 32)")
        return value

    @model_validator(mode="after")
    def _hold_outlives_code(self) -> ReservationSettings:
        if self.hold_ttl_seconds <= self.code_ttl_seconds:
            raise ValueError(
                f"hold_ttl_seconds ({self.hold_ttl_seconds:g}) must exceed"
                f" code_ttl_seconds ({self.code_ttl_seconds:g})"
            )
        return self


class OrderStatusRule(Strict):
    """Order statuses of one system that move its orders' reservations (PRODUCT 3.2)."""

    commit: list[str] = Field(default_factory=list)  # e.g. [complete]: write the hold off
    release: list[str] = Field(default_factory=list)  # e.g. [cancel-other]: give it back

    @model_validator(mode="after")
    def _disjoint(self) -> OrderStatusRule:
        both = set(self.commit) & set(self.release)
        if both:
            raise ValueError(f"statuses both commit and release: {', '.join(sorted(both))}")
        return self


class ReturnSettings(Strict):
    """How a return after a commit gives the spent points back (PRODUCT 3.4)."""

    # basket: the committed amount × returned value / the order's value at commit;
    # per_line: each returned line gives back its own share of the spend (the bonus amount
    # the line carries, e.g. RetailCRM's items[].bonusesChargeTotal, else its share of the
    # value) × returned quantity / quantity.
    mode: Literal["basket", "per_line"] = "basket"
    # Who gives the points back. auto: the master when it does so itself (RetailCRM cancels
    # an order's bonus operations when the order is cancelled, retailcrm-api.md §4.3), else
    # the bridge, through the master's reverse call (1C's Reverse).
    reversed_by: Literal["auto", "bridge", "master"] = "auto"
    # Order line statuses that mean the line came back whole, e.g. [returned] (RetailCRM
    # item statuses are the account's own codes). A smaller quantity or a line gone from
    # the order counts as returned without them.
    line_statuses: list[str] = Field(default_factory=list)

    @field_validator("line_statuses")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        if any(not status.strip() for status in value):
            raise ValueError("a line status must not be empty")
        return value


BONUS_TARGET = "_bonus"  # the internal target of order changes that move reservations
# The internal target of orders that register their first-time customer (issue 17).
REGISTRATION_TARGET = "_customers"


class BonusSettings(Strict):
    """The bonus program: which system owns balances, and how to behave when it is down."""

    master: str | None = None  # a configured system whose connector is a Ledger
    timeout_seconds: float = Field(default=3.0, gt=0, le=30)  # a till never waits longer
    when_master_down: Literal["fail", "stale"] = "fail"  # 503, or the last known balance
    stale_max_age_seconds: float = Field(default=3600.0, gt=0)
    # With when_master_down: stale, the last balance of at most this many customers is kept
    # (the least recently asked are forgotten first); nothing is kept otherwise.
    stale_cache_size: int = Field(default=10_000, ge=1, le=10_000_000)
    # Who a phone, card or id is (the master's customer), remembered for a look-up to make
    # one master call (the balance) instead of two: at most customer_cache_size keys, each
    # for customer_cache_seconds (0: nothing remembered). An id the master no longer knows
    # is dropped and resolved again at once; a phone or card moved to another customer in
    # the master is seen up to customer_cache_seconds late.
    customer_cache_size: int = Field(default=10_000, ge=1, le=10_000_000)
    customer_cache_seconds: float = Field(default=300.0, ge=0, le=86_400)
    breaker: BreakerSettings = BreakerSettings()
    reservations: ReservationSettings = ReservationSettings()
    sms: SmsSettings = SmsSettings()
    # By system: the order statuses that commit or release the reservation made for that
    # order ({"order": {"system": <it>, "id": …}}), e.g. {retailcrm: {commit: [complete]}}.
    order_statuses: dict[str, OrderStatusRule] = Field(default_factory=dict)
    # Returns seen in those systems' order changes after a commit (PRODUCT 3.4).
    returns: ReturnSettings = ReturnSettings()
    rules: RulesSettings = RulesSettings()  # points per line (issue 18)


class SandboxSettings(Strict):
    """In-process emulators for a fresh clone; never enable in production."""

    enabled: bool = False
    # The emulators keep their data in memory and number it from 1 again at every start, so
    # a store kept from their previous run would hold source keys and an id map of entities
    # that are gone, and drop the new ones of the same numbers as duplicates. The daemon
    # therefore starts the sandbox with an empty store (the last one kept as
    # `<file>.previous`). Turn it off to keep the store across sandbox runs.
    fresh_store: bool = True


class Settings(Strict):
    """The whole ``config.yaml``."""

    store: StoreSettings = StoreSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    clients: dict[str, ClientSettings] = Field(default_factory=dict)
    systems: dict[str, SystemSettings] = Field(default_factory=dict)
    mirror: MirrorSettings = MirrorSettings()
    bonus: BonusSettings = BonusSettings()
    customers: CustomerSettings = CustomerSettings()
    sandbox: SandboxSettings = SandboxSettings()

    @model_validator(mode="after")
    def _lease_outlives_attempts(self) -> Settings:
        # A lease that expires while its attempt still runs hands the delivery to a second
        # worker: the same write would go out twice at once.
        for name, system in self.systems.items():
            if self.store.lease_seconds < system.delivery.timeout_seconds + 5:
                raise ValueError(
                    f"store.lease_seconds ({self.store.lease_seconds:g}) must exceed"
                    f" systems.{name}.delivery.timeout_seconds"
                    f" ({system.delivery.timeout_seconds:g}) by at least 5 s"
                )
        return self

    @field_validator("systems")
    @classmethod
    def _system_names(cls, value: dict[str, SystemSettings]) -> dict[str, SystemSettings]:
        for name in value:
            if not SYSTEM_NAME.match(name):
                raise ValueError(f"system name {name!r} must match {SYSTEM_NAME.pattern}")
        return value

    @field_validator("clients")
    @classmethod
    def _distinct_tokens(cls, value: dict[str, ClientSettings]) -> dict[str, ClientSettings]:
        seen: dict[str, str] = {}
        for name, client in value.items():
            token = client.token.get_secret_value()
            if token in seen:
                raise ValueError(f"clients {seen[token]!r} and {name!r} share one token")
            seen[token] = name
        return value
