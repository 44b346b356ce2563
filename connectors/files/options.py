"""``systems.<name>.options`` of a files source: where reports are dropped, how to read them.

The columns are named here rather than in a mapping file: a report row is flat text (one
cell per column) and documents are built by grouping rows, which the mapping language
(dict documents → dict documents) does not do; a column map is all a row needs.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

SCHEMES = ("file", "ftp")


class Columns(BaseModel):
    """Which column (by header name) holds each field; one of ``card`` or ``phone`` at least."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    document: str = "document"
    card: str | None = "card"
    phone: str | None = None
    date: str = "date"
    sku: str = "sku"
    group: str | None = "group"
    quantity: str = "quantity"
    amount: str = "amount"


class FilesOptions(BaseModel):
    """Where reports are dropped and how they are read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # ftp://user@host:port/folder or file:///folder; the password by environment.
    url: str
    password: SecretStr | None = None
    pattern: str = Field(default="*.csv", min_length=1)
    format: Literal["csv", "xml"] = "csv"
    # Seconds between looks at the folder.
    poll_interval: float = Field(default=60.0, gt=0, le=86400)
    # A file is taken only once its size holds for this long (one still being uploaded is
    # left for the next poll); 0: at once (uploads are renamed into the pattern when done).
    settle_seconds: float = Field(default=2.0, ge=0, le=600)
    # A finished file is moved to this folder (relative to the url's folder) …
    done_dir: str | None = "done"
    # … or, with done_dir null, renamed with this suffix (which the pattern must not match).
    mark: str = Field(default=".done", min_length=1)
    encoding: Literal["utf-8", "cp1251"] = "utf-8"
    delimiter: str = Field(default=";", min_length=1, max_length=1)
    date_format: str = "%Y-%m-%d"
    columns: Columns = Field(default_factory=Columns)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme == "sftp":
            raise ValueError("sftp:// is not supported yet; use ftp:// or file:///")
        if scheme not in SCHEMES:
            raise ValueError("must start with ftp:// or file:///")
        if scheme == "ftp" and not urlsplit(value).hostname:
            raise ValueError("ftp:// needs a host, e.g. ftp://user@host:21/reports")
        if urlsplit(value).password:
            raise ValueError("no password in the url: give options.password by ${VAR}")
        return value

    @field_validator("format")
    @classmethod
    def _csv_only(cls, value: str) -> str:
        if value != "csv":
            raise ValueError("xml is not supported yet; use csv")
        return value

    @field_validator("columns")
    @classmethod
    def _someone(cls, value: Columns) -> Columns:
        if value.card is None and value.phone is None:
            raise ValueError("name a card or a phone column")
        return value
