"""``bonus.sms`` of ``config.yaml``: the SMS gateways and the text of a code's message
(split from ``settings.py``, which re-exports these names)."""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from bridge.settings_base import Strict

SMS_FIELDS = frozenset({"code", "amount", "order", "minutes"})
DEFAULT_SMS_TEXT = "Код {code}: списание {amount} баллов, заказ {order}. Не сообщайте код никому."


def check_template(text: str, allowed: frozenset[str]) -> str:
    """A ``{name}`` template using only ``allowed`` names, no attributes, indexes or specs."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from exc
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            names = ", ".join("{" + n + "}" for n in sorted(allowed))
            raise ValueError(
                f"unknown placeholder {{{name}}}; use {names} (double braces for a literal)"
            )
    return text


class SandboxGatewaySettings(Strict):
    """Messages are kept in the store, readable by ``bridge sandbox messages``; sandbox only."""

    type: Literal["sandbox"] = "sandbox"


class SmsRuGatewaySettings(Strict):
    """SMS.ru HTTP API (``/sms/send`` with ``api_id``)."""

    type: Literal["smsru"]
    api_id: SecretStr
    sender: str | None = None  # an approved sender name (``from``)
    url: str = "https://sms.ru/sms/send"
    test: bool = False  # SMS.ru checks the request but sends nothing


class SmscGatewaySettings(Strict):
    """SMSC.ru HTTP API (``/sys/send.php`` with ``login``/``psw``)."""

    type: Literal["smsc"]
    login: str
    password: SecretStr
    sender: str | None = None
    url: str = "https://smsc.ru/sys/send.php"


HTTP_FIELDS = frozenset({"phone", "text"})


class HttpGatewaySettings(Strict):
    """Any provider with an HTTP API: a request template with ``{phone}`` and ``{text}``."""

    type: Literal["http"]
    url: str
    method: Literal["GET", "POST"] = "POST"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    # Query parameters (GET) or form fields (POST) — or a JSON body; values are templates.
    params: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    success_status: list[int] = Field(default_factory=lambda: [200, 201, 202])
    # A substring the answer must contain to count as sent (some APIs answer 200 on errors).
    success_contains: str | None = None

    @field_validator("params")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            check_template(text, HTTP_FIELDS)
        return value

    @field_validator("json_body")
    @classmethod
    def _json_templates(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        def walk(node: Any) -> None:
            if isinstance(node, str):
                check_template(node, HTTP_FIELDS)
            elif isinstance(node, dict):
                for item in node.values():
                    walk(item)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(value)
        return value

    @model_validator(mode="after")
    def _body_needs_post(self) -> HttpGatewaySettings:
        if self.method == "GET" and self.json_body is not None:
            raise ValueError("json_body needs method: POST (a GET has no body)")
        return self


GatewaySettings = Annotated[
    SandboxGatewaySettings | SmsRuGatewaySettings | SmscGatewaySettings | HttpGatewaySettings,
    Field(discriminator="type"),
]


class SmsSettings(Strict):
    """Who sends the confirmation codes, and through what."""

    # bridge: the bridge makes the code and sends it through ``gateway``; master: the master
    # sends its own (RetailCRM confirmSmsCharge) and the bridge passes the code on.
    sender: Literal["bridge", "master"] = "bridge"
    gateway: GatewaySettings = SandboxGatewaySettings()
    text: str = DEFAULT_SMS_TEXT  # placeholders: {code} {amount} {order} {minutes}
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        check_template(value, SMS_FIELDS)
        if "{code}" not in value:
            raise ValueError("must contain {code}")
        return value
