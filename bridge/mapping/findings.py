"""Problems found in a mapping file, each with its line (on top of ``settings_loader``).

``settings_loader.validation_problems`` reads pydantic locations from the document root;
a mapping validates each table, filter and rule on its own, so locations here are taken
relative to the key path of the piece being validated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bridge.settings_loader import Document, Finding, KeyPath

M = TypeVar("M", bound=BaseModel)


@dataclass
class Findings:
    """Collects every problem of one file; never stops at the first."""

    document: Document
    problems: list[Finding] = field(default_factory=list)

    def add(self, path: KeyPath, message: str) -> None:
        """A problem at ``path`` (the closest line known is used)."""
        self.problems.append(self.document.problem(path, message))

    def location(self, path: KeyPath) -> str:
        """``file:line`` of ``path``, for errors raised when the mapping runs."""
        line = self.document.problem(path, "").line
        return f"{self.document.file}:{line}" if line else self.document.file

    def validate(
        self,
        model: type[M],
        data: Any,
        at: KeyPath,
        unknown_key: Callable[[str], str] | None = None,
        owner: str | None = None,
    ) -> M | None:
        """``model`` from ``data``, or None with each validation error added as a problem.

        ``unknown_key`` words the message for a key the model does not have; ``owner``
        (a transform's name) the one for a missing key: ``lookup needs `table```.
        """
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc: KeyPath = tuple(error["loc"])
                message = error["msg"]
                if error["type"] == "extra_forbidden":
                    name = str(loc[-1]) if loc else "?"
                    message = unknown_key(name) if unknown_key else "unknown key"
                elif error["type"] == "missing":
                    name = str(loc[-1]) if loc else "?"
                    message = f"{owner} needs `{name}`" if owner else "is required"
                elif message.startswith("Value error, "):
                    message = message[len("Value error, ") :]
                self.add((*at, *loc), message)
            return None
