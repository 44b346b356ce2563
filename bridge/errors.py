"""Errors of the bridge, grouped by how the caller must react.

::

    BridgeError
    ├── SettingsError            config.yaml or a mapping is wrong (reported by `bridge check`)
    ├── StoreError               the event store cannot be reached or is inconsistent
    ├── NotFound                 an id that names nothing
    └── DeliveryError            raised by connectors; the core decides what happens next
        ├── TransientError       try again later (timeouts, 5xx, connection refused)
        │   ├── RateLimited      try again after `retry_after` seconds (429/503 with a limit)
        │   └── InvalidAnswer    the system answered a value that cannot be read (`field`)
        ├── PermanentError       the same call will never succeed (4xx validation): dead-letter
        ├── AuthError            credentials are wrong or revoked: dead-letter, fix config
        └── ConfigError          the bridge is configured wrongly for this call: dead-letter

Connectors raise these ``from`` the vendor exception at one boundary (their ``errors.py``);
the core never inspects vendor exceptions. The few errors that live beside the code they
belong to derive from ``BridgeError`` too, so one ``except BridgeError`` catches every error
raised on purpose: the HTTP ``Problem`` (an answer to send), ``WebhookRejected`` and
``WebhookUnauthorized`` (intake), the mapping language's ``PathError``, ``ValueProblem``,
``SkipChange``, ``BuildProblem`` and ``NotComparable``, ``PhoneError``, ``FilterError``
(CLI and admin filters), and the store's ``OrderTaken`` and ``VersionConflict``. Those that
validators or callers also catch as ``ValueError`` derive from both. The wire clients'
own errors (``RetailcrmError``, ``BitrixError``, the emulators' ``RestError``) stay outside:
a ``client.py`` imports nothing from the bridge.
"""

from __future__ import annotations

from enum import StrEnum


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""


class SettingsError(BridgeError):
    """The configuration is invalid; ``problems`` lists every finding."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StoreError(BridgeError):
    """The store failed in a way the caller cannot fix by retrying the same call."""


class NotFound(BridgeError):
    """An id was given that names no event, delivery or reservation."""


class ErrorClass(StrEnum):
    """How a failed delivery attempt is classified in the attempt history."""

    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    PERMANENT = "permanent"
    AUTH = "auth"
    CONFIG = "config"
    LEASE_EXPIRED = "lease_expired"
    UNEXPECTED = "unexpected"


class DeliveryError(BridgeError):
    """A delivery attempt failed; the subclass says how the core should react."""

    error_class: ErrorClass = ErrorClass.TRANSIENT


class TransientError(DeliveryError):
    """The target may succeed later: timeouts, 5xx, refused connections."""

    error_class = ErrorClass.TRANSIENT


class RateLimited(TransientError):
    """The target asked us to slow down; ``retry_after`` is in seconds when it said so."""

    error_class = ErrorClass.RATE_LIMITED

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidAnswer(TransientError):
    """The system answered, but a value in its answer cannot be read (a balance that is no
    number, a flag that is no boolean): its fault, not the caller's; ``field`` names it.

    Transient: the same call may be answered readably once the system is fixed, and a
    master that keeps answering so counts as failing (its breaker opens)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class PermanentError(DeliveryError):
    """The target rejected the call and will reject it again: dead-letter at once."""

    error_class = ErrorClass.PERMANENT


class AuthError(DeliveryError):
    """Credentials were refused: dead-letter at once; support must fix the config."""

    error_class = ErrorClass.AUTH


class ConfigError(DeliveryError):
    """The call cannot be made as configured (unknown status, missing mapping)."""

    error_class = ErrorClass.CONFIG
