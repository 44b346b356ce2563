"""config.yaml loading: interpolation, overrides, and every problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import SettingsError
from bridge.settings_loader import read_settings

GOOD = """\
store:
  url: sqlite:///var/x.db
clients:
  till:
    token: ${TILL_TOKEN:-default-token-1234567}
    scopes: [bonus:read]
systems:
  shop:
    type: recorder
    webhook:
      auth: bearer
      token: ${SHOP_TOKEN}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        read_settings(path, env=env or {})
    return caught.value.problems


def test_defaults_and_env_interpolation(tmp_path: Path) -> None:
    loaded = read_settings(write(tmp_path, GOOD), env={"SHOP_TOKEN": "shop-token-1234567890"})
    s = loaded.settings
    assert s.clients["till"].token.get_secret_value() == "default-token-1234567"
    webhook = s.systems["shop"].webhook
    assert webhook is not None and webhook.token is not None
    assert webhook.token.get_secret_value() == "shop-token-1234567890"
    assert s.http.port == 8080
    assert s.store.synchronous == "full"


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    loaded = read_settings(write(tmp_path, GOOD), env={"SHOP_TOKEN": "shop-token-1234567890"})
    assert "shop-token-1234567890" not in repr(loaded.settings)
    assert "default-token-1234567" not in str(loaded.settings)


def test_missing_variable_names_key_and_line(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD))
    assert found == [
        f"{tmp_path / 'config.yaml'}:12: systems.shop.webhook.token:"
        " environment variable SHOP_TOKEN is not set"
    ]


def test_env_overrides_any_key(tmp_path: Path) -> None:
    env = {
        "SHOP_TOKEN": "shop-token-1234567890",
        "BRIDGE__HTTP__PORT": "9000",
        "BRIDGE__STORE__URL": "sqlite:///var/second.db",
        "BRIDGE__LOG__FORMAT": "json",
    }
    s = read_settings(write(tmp_path, GOOD), env=env).settings
    assert (s.http.port, s.store.url, s.log.format) == (9000, "sqlite:///var/second.db", "json")


def test_bad_override_names_the_variable(tmp_path: Path) -> None:
    env = {"SHOP_TOKEN": "shop-token-1234567890", "BRIDGE__HTTP__PORT": "lots"}
    (found,) = problems(write(tmp_path, GOOD), env)
    assert found.startswith("environment BRIDGE__HTTP__PORT: http.port:")


def test_three_mistakes_are_all_reported_with_lines(tmp_path: Path) -> None:
    text = """\
store:
  url: sqlite:///var/x.db
http:
  port: 99999
clients:
  till:
    token: short
    scopes: [bonus:read]
systems:
  shop:
    type: recorder
    colour: blue
mirror:
  routes:
    - source: shop
      entity: order
      targets: [crm]
"""
    found = problems(write(tmp_path, text))
    name = tmp_path / "config.yaml"
    assert found == [
        f"{name}:4: http.port: Input should be less than or equal to 65535",
        f"{name}:7: clients.till.token: must be at least 16 characters",
        f"{name}:12: systems.shop.colour: unknown key",
        f"{name}:17: mirror.routes[0].targets[0]: unknown system 'crm'",
    ]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "store:\n  url: [unclosed\nhttp: {}\n"))
    assert ":3: (top level): YAML syntax" in found or ":4: (top level): YAML syntax" in found


def test_duplicate_keys_are_problems(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "http:\n  port: 1\n  port: 2\n"))
    assert found == [f"{tmp_path / 'config.yaml'}:3: http.port: duplicate key"]


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    (found,) = problems(tmp_path / "nope.yaml")
    assert "nope.yaml" in found and "cannot read" in found


@pytest.mark.parametrize("secret", ["", "whsec_!!!!!!!!!!!!!!!!!!!!", "whsec_c2hvcnQ="])
def test_hmac_webhook_needs_a_real_whsec_secret(tmp_path: Path, secret: str) -> None:
    text = "systems:\n  shop:\n    type: recorder\n    webhook:\n      auth: hmac\n"
    if secret:
        text += f"      secret: '{secret}'\n"
    (found,) = problems(write(tmp_path, text))
    assert "systems.shop.webhook" in found
    assert "whsec_" in found


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    text = "clients:\n  a:\n    token: pa$$word-1234567890\n    scopes: [admin]\n"
    s = read_settings(write(tmp_path, text), env={}).settings
    assert s.clients["a"].token.get_secret_value() == "pa$word-1234567890"


def test_committed_config_is_valid_without_environment() -> None:
    s = read_settings(Path("config.yaml"), env={}).settings
    assert s.store.url.startswith("sqlite:///var/")
    assert {c.scopes[0] for c in s.clients.values()} == {"bonus:read", "admin"}


def test_example_config_is_valid_with_its_variables_set() -> None:
    env = {
        "BRIDGE_SITE_TOKEN": "site-token-0123456789",
        "BRIDGE_TILLS_TOKEN": "tills-token-0123456789",
        "BRIDGE_ADMIN_TOKEN": "admin-token-0123456789",
        "BRIDGE_ONEC_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "BRIDGE_RETAILCRM_WEBHOOK_TOKEN": "crm-token-0123456789",
        "BRIDGE_BITRIX_APPLICATION_TOKEN": "bx-token-0123456789",
        "BRIDGE_BITRIX_URL": "https://shop.bitrix24.ru/rest/",
        "BRIDGE_BITRIX_CLIENT_ID": "local.0123456789abcd.01234567",
        "BRIDGE_BITRIX_CLIENT_SECRET": "bx-client-secret-0123456789",
        "BRIDGE_BITRIX_REFRESH_TOKEN": "bx-refresh-token-0123456789",
        "BRIDGE_ONEC_PASSWORD": "onec-password",
        "BRIDGE_RETAILCRM_API_KEY": "crm-api-key-0123",
        "BRIDGE_SMSRU_API_ID": "0123ABCD-0123-ABCD-0123-0123456789AB",
        "BRIDGE_CODE_KEY": "0123456789abcdef0123456789abcdef",
        "BRIDGE_PROOF_KEY": "fedcba9876543210fedcba9876543210",
    }
    s = read_settings(Path("config.example.yaml"), env=env).settings
    assert sorted(s.systems) == ["bitrix", "onec", "retailcrm"]
    with pytest.raises(SettingsError) as caught:
        read_settings(Path("config.example.yaml"), env={})
    assert len(caught.value.problems) == len(env)


def test_unknown_yaml_tag_is_a_problem_with_a_line(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "http:\n  host: 127.0.0.1\n  port: !env 8080\n"))
    assert found.startswith(f"{tmp_path / 'config.yaml'}:3: http.port: YAML:")


def test_a_registration_source_must_be_a_configured_system(tmp_path: Path) -> None:
    sources = "    sources:\n      - {system: crm, channel: phone}\n"
    text = GOOD + "customers:\n  registration:\n" + sources
    found = problems(write(tmp_path, text), env={"SHOP_TOKEN": "shop-token-1234567890"})
    assert any(
        "customers.registration.sources[0].system: unknown system 'crm'" in p for p in found
    ), found
