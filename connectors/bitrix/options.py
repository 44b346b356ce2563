"""``systems.<name>.options`` of a Bitrix24 system (bitrix.md §1.1, §1.6, §2, §3.5)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_WEBHOOK_PATH = re.compile(r"/rest/\d+/[^/]+/?$")
_UF_NAME = re.compile(r"UF_CRM_[A-Z0-9_]{1,43}")  # §2.4: at most 50 characters with the prefix


class OAuthOptions(BaseModel):
    """A local application's credentials (§1.1): what ``event.bind``, offline events and
    ``auth_connector`` need. The refresh token lives 180 days; each refresh may replace
    it, and the new one is kept in ``token_file`` so a restart can go on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr
    token_url: str = "https://oauth.bitrix.info/oauth/token/"  # noqa: S105 (a URL)
    token_file: str | None = None  # default: var/bitrix-<system>-tokens.json


class RateOptions(BaseModel):
    """The portal's leaky bucket (§1.6: 50 deep, 2 requests/s; Enterprise 250 and 5), kept
    on our side just below Bitrix's. Our bucket counts a request at its turn, the portal as
    it arrives: 2 of depth cover a request arriving up to 1 s late, and 1 % of rate clock
    drift; that is 98 % of the ceiling (issue 16). Other applications calling the portal
    from the same IP share its bucket (§1.6): lower both to leave them room."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    burst: int = Field(default=48, ge=1, le=250)
    per_second: float = Field(default=1.98, gt=0, le=50)


class BitrixOptions(BaseModel):
    """How to reach one Bitrix24 portal and what the bridge keeps there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # An inbound webhook URL (…/rest/<user>/<secret>/), or with ``oauth`` the portal's
    # …/rest/ endpoint (§1.1). The webhook secret is a credential: give it by environment.
    url: SecretStr | None = None
    oauth: OAuthOptions | None = None
    # Where orders live: CRM deals (crm.item, entityTypeId 2) or the shop's sale.order (§2.2,
    # §2.5). Contacts are always crm.item contacts (entityTypeId 3).
    orders: Literal["deals", "shop"] = "deals"
    rate: RateOptions = Field(default_factory=RateOptions)
    # Seconds between offline-event polls (§3.5); 0 turns polling off (webhooks only).
    poll_interval: float = Field(default=5.0, ge=0, le=3600)
    # Our changes are tagged with this, so Bitrix does not queue them back to us (§3.5).
    auth_connector: str = Field(default="bridge", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # The contact field the master's balance is mirrored into (§2.4), if any.
    balance_field: str | None = None
    # The shop's site id for sale.order (``lid``, §2.5).
    site: str = Field(default="s1", min_length=1, max_length=16)

    @field_validator("url")
    @classmethod
    def _rest_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be a URL like https://portal.bitrix24.ru/rest/1/<secret>/")
        if "/rest/" not in parts.path + "/":
            raise ValueError(
                "must be the REST URL (…/rest/<user>/<secret>/ or, with oauth, …/rest/)"
            )
        return value

    @field_validator("balance_field")
    @classmethod
    def _uf_name(cls, value: str | None) -> str | None:
        if value is not None and not _UF_NAME.fullmatch(value):
            raise ValueError("must be a contact user field like UF_CRM_BONUS_BALANCE")
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> BitrixOptions:
        if self.url is None:
            if self.oauth is not None:
                raise ValueError("url: the portal's REST endpoint (https://…/rest/) is required")
            return self  # webhook intake only: the bridge does not call this portal
        path = urlsplit(self.url.get_secret_value()).path
        if self.oauth is None and not _WEBHOOK_PATH.search(path):
            raise ValueError(
                "url: without oauth it must be an inbound webhook URL …/rest/<user>/<secret>/"
            )
        return self

    @property
    def calls(self) -> bool:
        """Whether the bridge may call this portal (else it only takes its webhooks)."""
        return self.url is not None
