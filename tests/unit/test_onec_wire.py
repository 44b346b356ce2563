"""The 1C wire's small pure parts: Basic credentials and reading an answer's text."""

from __future__ import annotations

import base64

from multidict import CIMultiDict, CIMultiDictProxy

from connectors.onec.wire import Answer, basic_auth


def test_basic_credentials_are_latin_1_as_requests_sends_them() -> None:
    value = basic_auth("bridge", "pässword")
    scheme, token = value.split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token) == "bridge:pässword".encode("latin-1")


def answer(body: bytes, charset: str | None) -> Answer:
    return Answer(500, body, CIMultiDictProxy(CIMultiDict()), charset)


def test_an_answer_is_read_in_its_charset_and_never_fails() -> None:
    page = "Ошибка сервера".encode("cp1251")
    assert answer(page, "windows-1251").text() == "Ошибка сервера"
    assert "\ufffd" in answer(page, None).text()  # not UTF-8: replaced, not raised
    assert answer(b"plain", "no-such-charset").text() == "plain"
