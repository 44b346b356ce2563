"""What a sales report holds once parsed: documents of lines, and the lines kept out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class SaleLine:
    """One sold line: ``amount`` is what the customer paid for it, in money."""

    sku: str
    quantity: Decimal
    amount: Decimal
    group: str | None = None


@dataclass(frozen=True)
class SaleDocument:
    """One sales document: its id in the source system, whose card or phone, its day."""

    document_id: str
    card: str | None
    phone: str | None
    day: date
    lines: tuple[SaleLine, ...]
    first_line: int  # the file line of its first row, for messages

    def arguments(self) -> dict[str, Any]:
        """Plain JSON for the owed call that accrues it."""
        return {
            "document": self.document_id,
            "card": self.card,
            "phone": self.phone,
            "date": self.day.isoformat(),
            "lines": [
                {
                    "sku": ln.sku,
                    "group": ln.group,
                    "quantity": str(ln.quantity),
                    "amount": str(ln.amount),
                }
                for ln in self.lines
            ],
        }


@dataclass(frozen=True)
class BadLine:
    """A row kept out of the accruals: ``file:line:field: message``."""

    line: int
    field: str
    message: str

    def text(self, file: str) -> str:
        """The report support reads."""
        return f"{file}:{self.line}:{self.field}: {self.message}"


@dataclass(frozen=True)
class ParsedReport:
    """A file read: its good documents in file order and its bad lines."""

    documents: tuple[SaleDocument, ...]
    bad_lines: tuple[BadLine, ...] = field(default=())
