"""``bonus.rules`` in ``config.yaml``: which rules file prices lines in points, and who
calculates (issue 18). The rules file itself is ``bridge/rules/model.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from bridge.settings_base import Strict


class RulesSettings(Strict):
    """The bonus rules: a YAML file read relative to the config file's folder."""

    # e.g. rules/sandbox.yaml; unset, POST /api/v1/bonus/calculate answers 404 no_rules.
    file: str | None = None
    # Who calculates a cart when the master can (RetailCRM's loyalty calculation): only
    # the bridge does today; "master" answers 501 not_supported until the master side exists.
    source: Literal["bridge", "master"] = "bridge"

    @field_validator("file")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a file, e.g. rules/sandbox.yaml")
        return value
