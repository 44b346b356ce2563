"""``customers`` of ``config.yaml``: the customer behind the phone (issue 17): proving a
phone by SMS, the questionnaire and what it gates, automatic registration of phone-order
customers (split from ``settings.py``, which re-exports these names)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from bridge.settings_base import Strict
from bridge.settings_sms import check_template

# The questionnaire's fields by the bridge's names; each master maps them to its own.
PROFILE_FIELDS = ("last_name", "first_name", "middle_name", "birth_date", "gender", "email")
ProfileField = Literal["last_name", "first_name", "middle_name", "birth_date", "gender", "email"]

DEFAULT_VERIFY_TEXT = "Код {code} для входа в бонусную программу. Никому его не сообщайте."
DEFAULT_WELCOME_TEXT = "Вы в бонусной программе. Заполните анкету, чтобы тратить баллы: {link}"


def _usual_required() -> list[ProfileField]:
    return ["last_name", "first_name", "birth_date"]


class ProfileSettings(Strict):
    """What a complete questionnaire holds."""

    required: list[ProfileField] = Field(default_factory=_usual_required)


class RegistrationSource(Strict):
    """Orders that register their customer: from ``system``, and where it names one, through
    ``channel`` (RetailCRM's ``orderMethod``, such as ``phone``)."""

    system: str
    channel: str | None = None


class RegistrationSettings(Strict):
    """A first-time customer of a phone order is registered at the master and sent a link to
    the questionnaire (one SMS per phone, however often the order changes)."""

    sources: list[RegistrationSource] = Field(default_factory=list)
    text: str = DEFAULT_WELCOME_TEXT  # placeholders: {link}
    # Where the questionnaire lives; {proof} is a proof of the phone, valid link_ttl_seconds.
    link: str = "http://127.0.0.1:8080/profile?proof={proof}"
    link_ttl_seconds: float = Field(default=7 * 86400.0, gt=0, le=30 * 86400)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return check_template(value, frozenset({"link"}))

    @field_validator("link")
    @classmethod
    def _link(cls, value: str) -> str:
        check_template(value, frozenset({"proof"}))
        if "{proof}" not in value:
            raise ValueError("must contain {proof}")
        return value


class NoticeSettings(Strict):
    """Programme notices (``bridge notify``): one SMS per phone per notice, throttled."""

    # SMS per second unless --rate says otherwise; providers throttle or ban bursts.
    rate_per_second: float = Field(default=20.0, gt=0, le=1000)


class CustomerSettings(Strict):
    """Proofs of a phone, the questionnaire and what it gates, automatic registration.

    The codes that prove a phone follow ``bonus.reservations``' rules (length, time to
    live, wrong codes before locked, resend cooldown, per-phone cap) and go through
    ``bonus.sms.gateway``."""

    verify_text: str = DEFAULT_VERIFY_TEXT  # placeholders: {code} {minutes}
    proof_ttl_seconds: float = Field(default=900.0, gt=0, le=86_400)
    # The HMAC key proofs are signed with: from the environment in production, so a copy
    # of the database alone cannot mint one. Unset, a random key is kept in the store.
    proof_key: SecretStr | None = None
    profile: ProfileSettings = ProfileSettings()
    # A card whose owner's questionnaire misses a required field accrues, but spends
    # nothing (a reservation is refused 409 profile_incomplete) until it is complete.
    accumulate_only_until_profile: bool = False
    registration: RegistrationSettings = RegistrationSettings()
    notices: NoticeSettings = NoticeSettings()

    @field_validator("verify_text")
    @classmethod
    def _verify_text(cls, value: str) -> str:
        check_template(value, frozenset({"code", "minutes"}))
        if "{code}" not in value:
            raise ValueError("must contain {code}")
        return value

    @field_validator("proof_key")
    @classmethod
    def _long_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. openssl rand -hex 32)")
        return value
