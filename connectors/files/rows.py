"""CSV report rows → sales documents by the configured columns.

Rows sharing a document id make one document (they need not be adjacent); each row is one
line. A row with a bad cell is kept out and reported as ``line:field: message``, and so is
its whole document: accruing part of a document would leave the rest unaccruable when the
corrected file comes (the operation id is the document's, and it is used up).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from bridge.bonus.phones import PhoneError, normalize_phone
from bridge.files.documents import BadLine, ParsedReport, SaleDocument, SaleLine
from connectors.files.options import Columns, FilesOptions

CENT = Decimal("0.01")


class RowError(ValueError):
    """A bad cell: which column, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Row:
    """One good row: the document's head fields and its line."""

    line_no: int
    document: str
    card: str | None
    phone: str | None
    day: date
    line: SaleLine


def parse_csv(data: bytes, options: FilesOptions) -> ParsedReport:
    """The documents and bad lines of one CSV file."""
    try:
        text = data.decode(options.encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return ParsedReport((), (BadLine(line, "encoding", f"not {options.encoding} text"),))
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=options.delimiter)
    header = next(reader, None)
    if header is None:
        return ParsedReport((), ())
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in _needed(options.columns) if c not in index]
    if missing:
        bad = tuple(BadLine(1, c, "no such column in the header") for c in missing)
        return ParsedReport((), bad)
    rows: dict[str, list[Row]] = {}
    bad_lines: list[BadLine] = []
    spoiled: set[str] = set()
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines (a trailing one is common) are no rows
        line_no = reader.line_num
        doc = _cell(cells, index, options.columns.document)
        try:
            row = _row(line_no, cells, index, options)
        except RowError as exc:
            bad_lines.append(BadLine(line_no, exc.field, str(exc)))
            spoiled.add(doc)
            continue
        group = rows.setdefault(row.document, [])
        if group and (group[0].card, group[0].phone, group[0].day) != (
            row.card,
            row.phone,
            row.day,
        ):
            field = "date" if group[0].day != row.day else "card/phone"
            message = f"differs from line {group[0].line_no} of the same document"
            bad_lines.append(BadLine(line_no, field, message))
            spoiled.add(doc)
            continue
        group.append(row)
    documents = tuple(_document(doc, group) for doc, group in rows.items() if doc not in spoiled)
    return ParsedReport(documents, tuple(bad_lines))


def _needed(columns: Columns) -> list[str]:
    names = [columns.document, columns.date, columns.sku, columns.quantity, columns.amount]
    names += [c for c in (columns.card, columns.phone, columns.group) if c is not None]
    return names


def _cell(cells: list[str], index: dict[str, int], column: str | None) -> str:
    if column is None:
        return ""
    at = index[column]
    return cells[at].strip() if at < len(cells) else ""


def _row(line_no: int, cells: list[str], index: dict[str, int], options: FilesOptions) -> Row:
    cols = options.columns
    document = _cell(cells, index, cols.document)
    if not document:
        raise RowError(cols.document, "is empty")
    if len(document) > 100:
        raise RowError(cols.document, "is longer than 100 characters")
    card = _cell(cells, index, cols.card) or None
    phone_text = _cell(cells, index, cols.phone) or None
    phone = None
    if phone_text is not None:
        try:
            phone = normalize_phone(phone_text)
        except PhoneError as exc:
            raise RowError(str(cols.phone), str(exc)) from exc
    if card is None and phone is None:
        raise RowError(str(cols.card or cols.phone), "is empty: whose sale is it?")
    sku = _cell(cells, index, cols.sku)
    if not sku:
        raise RowError(cols.sku, "is empty")
    quantity = _decimal(_cell(cells, index, cols.quantity), cols.quantity)
    if quantity <= 0:
        raise RowError(cols.quantity, "must be above 0")
    amount = _decimal(_cell(cells, index, cols.amount), cols.amount)
    if amount < 0 or amount != amount.quantize(CENT):
        raise RowError(cols.amount, "must be 0 or more, in roubles and kopecks")
    group = _cell(cells, index, cols.group) or None
    return Row(
        line_no,
        document,
        card,
        phone,
        _day(cells, index, options),
        SaleLine(sku, quantity, amount, group),
    )


def _decimal(text: str, field: str) -> Decimal:
    """A number; a decimal comma (1C's Russian exports) is read as a point."""
    try:
        value = Decimal(text.replace(",", ".").replace("\u00a0", "").replace(" ", ""))
    except InvalidOperation as exc:
        raise RowError(field, f"{text[:40]!r} is not a number") from exc
    if not value.is_finite():
        raise RowError(field, f"{text[:40]!r} is not a number")
    return value


def _day(cells: list[str], index: dict[str, int], options: FilesOptions) -> date:
    text = _cell(cells, index, options.columns.date)
    try:
        return datetime.strptime(text, options.date_format).date()
    except ValueError as exc:
        raise RowError(
            options.columns.date, f"{text[:40]!r} is not a date like {options.date_format}"
        ) from exc


def _document(doc: str, rows: list[Row]) -> SaleDocument:
    head = rows[0]
    lines = tuple(r.line for r in rows)
    return SaleDocument(doc, head.card, head.phone, head.day, lines, head.line_no)
