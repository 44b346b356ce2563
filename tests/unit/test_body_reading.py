"""A request body read in one step by pydantic's JSON reader is read as the step-by-step
reading (``json``, the surrogate check, pydantic) reads it: the same model, or the same
problem, for every bonus body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bridge.http.bonus import BalanceIn, parse_model, parse_model_slowly
from bridge.http.problems import Problem
from bridge.http.reservation_bodies import CommitIn, ConfirmIn, EmptyIn, ReserveIn

MODELS = [BalanceIn, ReserveIn, ConfirmIn, CommitIn, EmptyIn]
TEXTS = st.one_of(
    st.sampled_from(
        ["+79161234567", "8 (916) 123-45-67", "300.00", "1e2", "12345", " x ", "", "a" * 65]
    ),
    st.text(max_size=10),
)
SCALARS = st.one_of(
    TEXTS,
    st.integers(-10, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
KEYS = st.sampled_from(
    [
        "customer",
        "phone",
        "card",
        "system",
        "id",
        "cart",
        "total",
        "items",
        "amount",
        "order",
        "channel",
        "code",
        "x",
    ]
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(KEYS, TEXTS), inner, max_size=4)
    ),
    max_leaves=12,
)
ODD_BODIES = [
    b"",
    b"[1]",
    b'{"customer":{"card":"\\ud800"}}',
    b'{"customer":{"card":"a\x01"}}',
    b'{"customer":{"card":"x\xff"}}',
    b'\xef\xbb\xbf{"customer":{"card":"x"}}',
    b'{"customer":{"card":"x"}} trailing',
    b'{"customer":{"card":"x"},"cart":{"total":"1.00","items":[{"a":NaN}]}}',
    b'{"customer":{"card":"x"},"customer":{"phone":"+79161234567"}}',
    '{"customer":{"card":"x"}}'.encode("utf-16"),
    b'{"amount":"10.00","customer":{"card":"c"},"order":{"system":"s","id":" 1 "}}',
    b'{"code":" 1234 "}',
    b"[" * 1500 + b"]" * 1500,
]


def reading(raw: bytes, model: type[BaseModel], read: Any) -> tuple[str, Any]:
    try:
        return ("ok", read(raw, model).model_dump())
    except Problem as exc:
        return ("problem", (exc.status, exc.code, exc.detail, exc.extra))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("raw", ODD_BODIES)
def test_odd_bodies_read_alike(model: type[BaseModel], raw: bytes) -> None:
    assert reading(raw, model, parse_model) == reading(raw, model, parse_model_slowly)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None)
@given(doc=DOCS, ascii_only=st.booleans())
def test_generated_bodies_read_alike(model: type[BaseModel], doc: Any, ascii_only: bool) -> None:
    raw = json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert reading(raw, model, parse_model) == reading(raw, model, parse_model_slowly)


@settings(max_examples=200, deadline=None)
@given(
    phone=st.sampled_from(["+79161234567", "89161234567", "+7 916 123-45-67"]),
    total=st.decimals(min_value=0, max_value=99999999, places=2, allow_nan=False),
)
def test_a_tills_usual_body_is_read_in_one_step(phone: str, total: Any) -> None:
    raw = json.dumps({"customer": {"phone": phone}, "cart": {"total": str(total)}}).encode()
    body = parse_model(raw, BalanceIn)
    assert body == BalanceIn.model_validate_json(raw)  # the one step took it
    assert body == parse_model_slowly(raw, BalanceIn)
    assert body.cart.total == total
