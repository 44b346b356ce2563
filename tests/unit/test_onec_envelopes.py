"""Compiled SOAP request envelopes (issue 16) against zeep's, byte for byte: every operation
of every WSDL in the repository, both SOAP versions, over generated values (texts with
markup, carriage returns, control characters and Cyrillic, decimals, whole numbers, dates
with and without zones, flags, no value, values of another type than the element's)."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.onec.client import SoapClient
from tests.support.soap_reference import (
    NOT_COMPILED,
    Wsdl,
    loaded_client,
    operations,
    outcome,
    repository_wsdls,
    zeep_envelope,
)

VERSIONS = ("1.1", "1.2")
WSDLS = repository_wsdls()
_CLIENTS: dict[tuple[str, str], SoapClient] = {}


def client_for(wsdl: Wsdl, version: str) -> SoapClient:
    """One loaded client per WSDL and version (zeep reads a WSDL in ~50 ms)."""
    key = (wsdl.label, version)
    if key not in _CLIENTS:
        _CLIENTS[key] = loaded_client(wsdl, version)
    return _CLIENTS[key]


ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=3)), timezone(-timedelta(hours=5))])
TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "a&b<c>d", "x\r\ny", "\t1 000,50 ", "Иван «Петров»", "]]>", "\x00"]),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x3F), max_size=8),
)
VALUES = st.one_of(
    st.none(),
    TEXTS,
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.decimals(min_value=-(10**9), max_value=10**9, places=2),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.datetimes(timezones=ZONES),
)


def elements_for(draw: Any, params: list[tuple[str, Any]]) -> dict[str, Any]:
    """Some of the operation's elements (a left-out one and a None alike), typed or not."""
    chosen: dict[str, Any] = {}
    for name, element in params:
        if draw(st.integers(0, 4)) == 0:
            continue  # not given at all
        typed = _typed(type(element.type).__name__)
        chosen[name] = draw(st.one_of(typed, typed, VALUES))
    return chosen


def _typed(kind: str) -> st.SearchStrategy[Any]:
    if kind == "Decimal":
        return st.decimals(allow_nan=False, allow_infinity=False, places=2)
    if kind in ("Int", "Integer", "Long"):
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "Boolean":
        return st.booleans()
    if kind == "DateTime":
        return st.datetimes(timezones=ZONES)
    return TEXTS


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("wsdl", WSDLS, ids=lambda w: w.label)
def test_every_operation_is_compiled_with_zeeps_headers(wsdl: Wsdl, version: str) -> None:
    client = client_for(wsdl, version)
    for name, _ in operations(client):
        assert client.compiled(name) is (name not in NOT_COMPILED), name
        if name in NOT_COMPILED:
            continue
        compiled = client._compiled[name]
        assert compiled.headers == zeep_envelope_headers(client, name), name


def zeep_envelope_headers(client: SoapClient, operation: str) -> dict[str, str]:
    """zeep's headers for an operation (they do not depend on the values)."""
    template = client._compiled[operation].request
    values = {p.name: "x" for p in template._params if not p.optional and not p.nillable}
    return dict(zeep_envelope(client, operation, values)[1])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("wsdl", WSDLS, ids=lambda w: w.label)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_envelope_is_zeeps_byte_for_byte(wsdl: Wsdl, version: str, data: Any) -> None:
    client = client_for(wsdl, version)
    name = data.draw(st.sampled_from(sorted(client._compiled)), label="operation")
    params = list(client._operations[name].input.body.type.elements)
    elements = elements_for(data.draw, params)
    rendered = client._compiled[name].request.render(elements)
    kind, zeep_made = outcome(lambda: zeep_envelope(client, name, elements)[0])
    if rendered is None:
        # Left to zeep: only where zeep refuses (and raises what it always raised).
        assert kind == "raised", (elements, zeep_made)
    else:
        assert kind == "ok", (elements, zeep_made)
        assert rendered == zeep_made


def test_a_value_zeep_refuses_is_left_to_zeep() -> None:
    client = client_for(WSDLS[0], "1.1")
    template = client._compiled["GetBalance"].request
    assert template.render({"CustomerId": "a\x00b"}) is None  # lxml: not XML compatible
    assert template.render({"CustomerId": "c", "Unknown": "x"}) is None  # zeep: TypeError
    assert template.render({"CustomerId": "c", "CartTotal": [1]}) is None
    assert template.render({"CustomerId": "c", "CartTotal": Decimal("1.5")}) is not None
