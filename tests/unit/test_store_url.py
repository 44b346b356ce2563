"""store.url: SQLite paths and PostgreSQL URLs are taken; a password in the URL is refused
with the key named, and open_store builds the store the URL names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.settings import StoreSettings
from bridge.store import SQLiteStore, open_store
from bridge.store.postgres import PostgresStore
from tests.unit.test_settings import GOOD, problems, write


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/x.db",
        "sqlite:////abs/x.db",
        "postgresql://bridge@db.local:5432/bridge",
        "postgresql://bridge@db.local/bridge?sslmode=require",
        "postgres://bridge@10.0.0.5/bridge",
        "postgresql:///bridge",  # libpq's defaults: the local socket, the login's name
    ],
)
def test_store_urls_taken(url: str) -> None:
    assert StoreSettings(url=url).url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://bridge:secret@db.local/bridge", "must not carry a password"),
        ("postgresql://bridge@db.local/bridge?password=secret", "must not carry a password"),
        ("postgresql://bridge@db.local:5432", "must name the database"),
        ("postgresql://bridge@db.local/", "must name the database"),
        ("mysql://bridge@db.local/bridge", "postgresql://user@host:5432/db"),
        ("sqlite:///", "sqlite:///relative/path.db"),
    ],
)
def test_store_urls_refused(url: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        StoreSettings(url=url)


def test_a_password_in_the_config_names_store_url_and_where_it_goes(tmp_path: Path) -> None:
    text = GOOD.replace("sqlite:///var/x.db", "postgresql://bridge:hunter2@db/bridge")
    (found,) = problems(write(tmp_path, text), env={"SHOP_TOKEN": "t" * 20})
    assert ":2: store.url: must not carry a password" in found
    assert "PGPASSWORD" in found
    assert "~/.pgpass" in found


def test_open_store_builds_the_store_the_url_names(tmp_path: Path) -> None:
    sqlite = open_store(StoreSettings(url=f"sqlite:///{tmp_path}/x.db"))
    assert isinstance(sqlite, SQLiteStore)
    postgres = open_store(StoreSettings(url="postgresql://bridge@db/bridge", lease_seconds=7))
    assert isinstance(postgres, PostgresStore)
    assert (postgres.url, postgres.lease_seconds) == ("postgresql://bridge@db/bridge", 7)
