"""CSV report rows → sales documents: grouping, numbers as 1C exports them, and every bad
cell reported as line:field: message with its whole document kept out."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.files.documents import BadLine, SaleLine
from connectors.files.options import FilesOptions
from connectors.files.rows import parse_csv

HEAD = "document;card;date;sku;group;quantity;amount\n"


def options(**extra: Any) -> FilesOptions:
    """Options with the default columns."""
    return FilesOptions.model_validate({"url": "file:///tmp/reports", **extra})


def test_rows_of_a_document_make_one_document_in_file_order() -> None:
    text = (
        "\ufeff"  # a BOM, as Excel writes
        + HEAD
        + "D1;2600000000001;2026-12-01;A-100;;2;1 234,50\n"
        + "D2;2600000000002;2026-12-02;X-1;promo20;1;10\n"
        + "\n"
        + "D1;2600000000001;2026-12-01;TOB-1;;1;200.00\n"
    )
    parsed = parse_csv(text.encode(), options())
    assert parsed.bad_lines == ()
    d1, d2 = parsed.documents
    assert (d1.document_id, d1.card, d1.phone, d1.day, d1.first_line) == (
        "D1",
        "2600000000001",
        None,
        date(2026, 12, 1),
        2,
    )
    assert d1.lines == (
        SaleLine("A-100", Decimal(2), Decimal("1234.50"), None),
        SaleLine("TOB-1", Decimal(1), Decimal("200.00"), None),
    )
    assert d2.lines == (SaleLine("X-1", Decimal(1), Decimal(10), "promo20"),)


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (";2600000000001;2026-12-01;A-100;;1;1", "document", "is empty"),
        ("D9;;2026-12-01;A-100;;1;1", "card", "is empty: whose sale is it?"),
        (
            "D9;2600000000001;01.12.2026;A-100;;1;1",
            "date",
            "'01.12.2026' is not a date like %Y-%m-%d",
        ),
        ("D9;2600000000001;2026-12-01;;;1;1", "sku", "is empty"),
        ("D9;2600000000001;2026-12-01;A-100;;0;1", "quantity", "must be above 0"),
        ("D9;2600000000001;2026-12-01;A-100;;x;1", "quantity", "'x' is not a number"),
        (
            "D9;2600000000001;2026-12-01;A-100;;1;-5",
            "amount",
            "must be 0 or more, in roubles and kopecks",
        ),
        (
            "D9;2600000000001;2026-12-01;A-100;;1;1.005",
            "amount",
            "must be 0 or more, in roubles and kopecks",
        ),
        ("D9;2600000000001;2026-12-01;A-100;;1;NaN", "amount", "'NaN' is not a number"),
        ("D9;2600000000001;2026-12-01;A-100;;1;", "amount", "'' is not a number"),
    ],
)
def test_a_bad_cell_is_reported_at_its_line_and_column(row: str, field: str, message: str) -> None:
    text = HEAD + "D1;2600000000001;2026-12-01;A-100;;1;1\n" + row + "\n"
    parsed = parse_csv(text.encode(), options())
    assert parsed.bad_lines == (BadLine(3, field, message),)
    assert [d.document_id for d in parsed.documents] == ["D1"]


def test_a_document_with_a_bad_row_is_kept_out_whole() -> None:
    text = (
        HEAD
        + "D1;2600000000001;2026-12-01;A-100;;1;100\n"
        + "D1;2600000000001;2026-12-01;B-200;;1;oops\n"
        + "D2;2600000000002;2026-12-01;A-100;;1;100\n"
        + "D2;2600000000002;2026-12-02;A-100;;1;100\n"
    )
    parsed = parse_csv(text.encode(), options())
    assert [b.text("r.csv") for b in parsed.bad_lines] == [
        "r.csv:3:amount: 'oops' is not a number",
        "r.csv:5:date: differs from line 4 of the same document",
    ]
    assert parsed.documents == ()


def test_cp1251_with_named_columns_and_phones() -> None:
    columns = {
        "document": "Документ",
        "card": None,
        "phone": "Телефон",
        "date": "Дата",
        "sku": "Артикул",
        "group": None,
        "quantity": "Кол-во",
        "amount": "Сумма",
    }
    text = (
        "Документ,Телефон,Дата,Артикул,Кол-во,Сумма\n"
        "Чек-1,8 (900) 000-00-01,06.12.2026,A-100,1,99.90\n"
        "Чек-2,12345,06.12.2026,A-100,1,99.90\n"
    )
    opts = options(encoding="cp1251", delimiter=",", date_format="%d.%m.%Y", columns=columns)
    parsed = parse_csv(text.encode("cp1251"), opts)
    (doc,) = parsed.documents
    assert (doc.document_id, doc.phone, doc.card) == ("Чек-1", "+79000000001", None)
    assert parsed.bad_lines == (BadLine(3, "Телефон", "must be a phone number of 10 to 15 digits"),)


def test_a_missing_column_or_a_wrong_encoding_keeps_the_whole_file_out() -> None:
    parsed = parse_csv(b"document;card;date;sku;amount\nD1;1;2026-12-01;A;1\n", options())
    assert parsed.documents == ()
    assert parsed.bad_lines == (
        BadLine(1, "quantity", "no such column in the header"),
        BadLine(1, "group", "no such column in the header"),
    )
    parsed = parse_csv((HEAD + "D1;1;2026-12-01;Сок;;1;1\n").encode("cp1251"), options())
    assert parsed.bad_lines == (BadLine(2, "encoding", "not utf-8 text"),)
    assert parse_csv(b"", options()).documents == ()


def test_the_shipped_example_parses_in_the_default_columns() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "files" / "sales.csv"
    parsed = parse_csv(example.read_bytes(), options())
    assert parsed.bad_lines == ()
    assert len(parsed.documents) == 6
