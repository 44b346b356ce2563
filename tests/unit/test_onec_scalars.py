"""The quick readers of plain XML Schema values read every text as zeep's own type does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from zeep.xsd.types import builtins as xsd

from connectors.onec import scalars

TYPES = [
    xsd.String(),
    xsd.Decimal(),
    xsd.Integer(),
    xsd.Long(),
    xsd.Int(),
    xsd.UnsignedInt(),
    xsd.Boolean(),
    xsd.DateTime(),
    xsd.Date(),  # no quick path: zeep's own
]
PLAIN = [
    "150.00", "-1", "0", "-0", "007", "1" * 28 + "." + "9" * 28, "1" * 29, ".5", "5.", "+3",
    "1e3", "NaN", "Infinity", " 7 ", "\t8\n", "1 000,50", "\u0661\u0662", "true", "false",
    "1", "Да", " true ", "TRUE", "2026-12-06T15:55:19", "2026-12-06T15:55:19Z",
    "2026-12-06T15:55:19.25+03:00", "2026-12-06T15:55:19.000001", "0001-01-01T00:00:00",
    "0000-01-01T00:00:00", "2026-13-01T00:00:00", "2026-02-30T10:00:00",
    "2026-12-06T24:00:00", "2026-12-06 15:55:19", "2026-12-06", "22.11.2026 10:00:00", "",
    "x", "٣٤",
]  # fmt: skip
DIGITS = st.text(alphabet="0123456789-.:T +Z", max_size=30)


def element(text: str | None) -> Any:
    node = etree.Element("v")
    node.text = text
    return node


def reading(read: Any, text: str | None) -> tuple[str, str]:
    """What ``read`` makes of ``text``: the value and its type, or the error's type."""
    try:
        value = read(element(text))
    except Exception as exc:  # the error is the answer compared
        return ("raised", type(exc).__name__)
    return ("ok", f"{type(value).__name__}:{value!r}")


@pytest.mark.parametrize("simple", TYPES, ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("text", [*PLAIN, None])
def test_each_plain_and_odd_spelling_reads_as_zeep_reads_it(simple: Any, text: str | None) -> None:
    assert reading(scalars.reader(simple), text) == reading(simple.parse_xmlelement, text)


@pytest.mark.parametrize("simple", TYPES, ids=lambda t: type(t).__name__)
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(DIGITS, st.text(max_size=12)))
def test_generated_texts_read_as_zeep_reads_them(simple: Any, text: str) -> None:
    assert reading(scalars.reader(simple), text) == reading(simple.parse_xmlelement, text)


def test_the_plain_kinds_take_the_quick_path_and_the_rest_are_zeeps() -> None:
    quick = [t for t in TYPES if scalars.reader(t) != t.parse_xmlelement]
    names = [type(t).__name__ for t in quick]
    assert names == ["String", "Decimal", "Integer", "Long", "Int", "UnsignedInt", "Boolean",
                     "DateTime"]  # fmt: skip
