"""A service description (``emulator.yaml``) read and checked: every problem reported at
once, each naming where it is (``operations.ЗаблокироватьБаллы.in.amount: …``).

The format is drawn in the package docstring and DESCRIBED.md; this module only reads it.
A leaf of an answer template is ``"<value>"`` or ``"<value>:<spelling>"`` (a value the
behaviour gives, a spelling of ``spelling.SPELLINGS``); any other YAML scalar is a constant;
``{"$each": <list value>, "$item": <template>}`` repeats its item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from connectors.onec.emulator.described.behaviours import BEHAVIOURS, KEYS
from connectors.onec.emulator.described.spelling import SPELLINGS

REASONS = (
    "unknown_customer",
    "insufficient_balance",
    "reservation_not_found",
    "reservation_closed",
    "amount_exceeds_reservation",
    "amount_exceeds_original",
    "operation_conflict",
    "invalid_request",
)
# What a refusal says unless the description's `texts` say otherwise; {detail} is the
# ledger's own message (which parameter, which amount).
TEXTS = {
    "unknown_customer": "Клиент не найден",
    "insufficient_balance": "Недостаточно баллов",
    "reservation_not_found": "Блокировка не найдена",
    "reservation_closed": "Блокировка уже закрыта",
    "amount_exceeds_reservation": "Сумма больше заблокированной",
    "amount_exceeds_original": "Сумма больше начисленной",
    "operation_conflict": "Операция уже выполнена с другими параметрами",
    "invalid_request": "Неверные параметры: {detail}",
}
FAULT_TEXT = "Ошибка при вызове метода контекста ({operation}): {text}"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@dataclass(frozen=True)
class Leaf:
    """A value of the behaviour's answer, in a spelling (None: its type's default)."""

    value: str
    spelling: str | None = None


@dataclass(frozen=True)
class Const:
    """A constant written as it is."""

    value: Any


@dataclass(frozen=True)
class Each:
    """One item per element of the list value ``source``."""

    source: str
    item: Node


Node = Leaf | Const | Each | dict[str, "Node"]


@dataclass(frozen=True)
class Refusal:
    """How a refusal with one of ``reasons`` (None: any) is answered."""

    style: Literal["fault", "answer", "status"]
    reasons: frozenset[str] | None = None
    text: str = FAULT_TEXT  # fault: the faultstring ({operation}, {text})
    out: Node | None = None  # answer/status: the body (None: the operation's own out)
    status: Mapping[str, int] = field(default_factory=dict)  # status: reason → HTTP code

    def covers(self, reason: str) -> bool:
        """This rule answers ``reason``."""
        return self.reasons is None or reason in self.reasons

    def http_status(self, reason: str) -> int:
        """The HTTP status of a refusal with ``reason``."""
        if self.style != "status":
            return 200
        return self.status.get(reason, self.status.get("default", 422))


@dataclass(frozen=True)
class DescribedOperation:
    """One operation of the service: what it does, where its arguments are, its answer."""

    name: str
    does: str
    inputs: Mapping[str, str]  # logical → element (SOAP) or path./query./body. place (HTTP)
    out: Node
    refusals: tuple[Refusal, ...]  # its own rules first, then the service's
    method: str = "POST"
    route: str = ""  # HTTP: the template under the root, /cards/{card}/balance

    def refusal(self, reason: str) -> Refusal:
        """The rule answering ``reason`` (a fault when none does)."""
        return next((r for r in self.refusals if r.covers(reason)), Refusal("fault"))


@dataclass(frozen=True)
class Description:
    """A whole service as its description file says."""

    source: Path
    kind: Literal["soap", "http"]
    publish: str  # SOAP: the name under /ws/ (bonus.1cws); HTTP: the root under /hs/
    wsdl: Path | None
    timezone: ZoneInfo
    texts: Mapping[str, str]
    hold_ids: str
    accrual_ids: str
    operations: Mapping[str, DescribedOperation]


class DescriptionError(ValueError):
    """A description that cannot be served; the message lists every problem."""


def load_description(path: Path | str) -> Description:
    """Read and check a description file."""
    source = Path(path)
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    reader = _Reader(source)
    description = reader.description(raw if isinstance(raw, dict) else {})
    if reader.problems or description is None:
        raise DescriptionError(f"{source}:\n  " + "\n  ".join(reader.problems or ["empty"]))
    return description


class _Reader:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")

    def description(self, raw: dict[str, Any]) -> Description | None:
        kind = raw.get("service")
        if kind not in ("soap", "http"):
            self.problem("service", "soap or http")
            return None
        publish = raw.get("publish" if kind == "soap" else "root")
        if not isinstance(publish, str) or not publish or "/" in publish:
            self.problem("publish" if kind == "soap" else "root", "one URL path segment")
        wsdl = None
        if kind == "soap":
            wsdl = self.source.parent / str(raw.get("wsdl", ""))
            if not wsdl.is_file():
                self.problem("wsdl", f"no file {wsdl}")
        try:
            zone = ZoneInfo(str(raw.get("timezone", "Europe/Moscow")))
        except (ZoneInfoNotFoundError, ValueError):
            self.problem("timezone", "not a time zone name such as Europe/Moscow")
            zone = ZoneInfo("UTC")
        texts = TEXTS | self.texts(raw.get("texts") or {})
        ids = raw.get("ids") or {}
        hold_ids = self.id_format(ids.get("hold", "H-{n}"), "ids.hold")
        accrual_ids = self.id_format(ids.get("accrual", "A-{n}"), "ids.accrual")
        defaults = self.refusals(raw.get("refusal", {"as": "fault"}), "refusal")
        operations = {}
        for name, spec in (raw.get("operations") or {}).items():
            op = self.operation(str(name), spec, kind, defaults)
            if op is not None:
                operations[op.name] = op
        if not operations:
            self.problem("operations", "at least one operation")
        known = {"service", "wsdl", "publish", "root", "timezone", "texts", "ids", "refusal"}
        for extra in sorted(set(raw) - known - {"operations", "notes"}):
            self.problem(extra, "unknown key")
        return Description(
            self.source, kind, str(publish), wsdl, zone, texts, hold_ids, accrual_ids, operations
        )

    def texts(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict):
            self.problem("texts", "a map of reasons to texts")
            return {}
        for reason in set(raw) - set(REASONS):
            self.problem(f"texts.{reason}", f"not a reason: {', '.join(REASONS)}")
        return {str(k): str(v) for k, v in raw.items()}

    def id_format(self, raw: Any, where: str) -> str:
        try:
            str(raw).format(n=1)
        except (KeyError, IndexError, ValueError):
            self.problem(where, 'a format of {n}, e.g. "Б-{n:06d}"')
        return str(raw)

    def operation(
        self, name: str, spec: Any, kind: str, defaults: tuple[Refusal, ...]
    ) -> DescribedOperation | None:
        where = f"operations.{name}"
        if not isinstance(spec, dict):
            self.problem(where, "a map with does, in, out")
            return None
        does = spec.get("does")
        if does not in BEHAVIOURS:
            self.problem(f"{where}.does", f"one of {', '.join(BEHAVIOURS)}")
            return None
        inputs = self.inputs(spec.get("in") or {}, does, kind, f"{where}.in")
        method, route = "POST", ""
        if kind == "http":
            method, _, route = str(spec.get("route", "")).partition(" ")
            if method not in METHODS or not route.startswith("/"):
                self.problem(f"{where}.route", 'a method and a path, "GET /cards/{card}/balance"')
        own = self.refusals(spec["refusal"], f"{where}.refusal") if "refusal" in spec else ()
        out = self.node(spec.get("out", {}), f"{where}.out")
        for extra in sorted(set(spec) - {"does", "in", "out", "route", "refusal"}):
            self.problem(f"{where}.{extra}", "unknown key")
        return DescribedOperation(name, does, inputs, out, own + defaults, method, route.strip())

    def inputs(self, raw: Any, does: str, kind: str, where: str) -> dict[str, str]:
        behaviour = BEHAVIOURS[does]
        if not isinstance(raw, dict):
            self.problem(where, "a map of arguments to where they are")
            return {}
        for name in sorted(set(raw) - behaviour.inputs):
            self.problem(f"{where}.{name}", f"{does} reads {', '.join(sorted(behaviour.inputs))}")
        for name in sorted(behaviour.required - set(raw)):
            self.problem(f"{where}.{name}", f"{does} needs it")
        if behaviour.keyed and not set(raw) & set(KEYS):
            self.problem(where, f"{does} needs one of {', '.join(KEYS)}")
        for name, place in raw.items():
            head = str(place).split(".", 1)[0]
            if kind == "http" and (head not in ("path", "query", "body") or "." not in place):
                self.problem(f"{where}.{name}", "path.<name>, query.<name> or body.<key>[.<key>]")
        return {str(k): str(v) for k, v in raw.items()}

    def refusals(self, raw: Any, where: str) -> tuple[Refusal, ...]:
        rules = raw if isinstance(raw, list) else [raw]
        return tuple(r for i, rule in enumerate(rules) if (r := self.refusal(rule, f"{where}.{i}")))

    def refusal(self, raw: Any, where: str) -> Refusal | None:
        if not isinstance(raw, dict) or raw.get("as") not in ("fault", "answer", "status"):
            self.problem(where, "a map with as: fault, answer or status")
            return None
        reasons = raw.get("reasons")
        if reasons is not None:
            for reason in set(reasons) - set(REASONS):
                self.problem(f"{where}.reasons", f"{reason}: not a reason")
            reasons = frozenset(reasons)
        out = raw.get("out", "out")
        node = None if out == "out" else self.node(out, f"{where}.out")
        text = str(raw.get("text", FAULT_TEXT))
        try:
            text.format(operation="", text="")
        except (KeyError, IndexError, ValueError):
            self.problem(f"{where}.text", "a text with {operation} and {text} at most")
        status = {str(k): int(v) for k, v in (raw.get("status") or {}).items()}
        return Refusal(raw["as"], reasons, text, node, status)

    def node(self, raw: Any, where: str) -> Node:
        if isinstance(raw, dict) and "$each" in raw:
            return Each(str(raw["$each"]), self.node(raw.get("$item", {}), f"{where}.$item"))
        if isinstance(raw, dict):
            return {str(k): self.node(v, f"{where}.{k}") for k, v in raw.items()}
        if not isinstance(raw, str):
            return Const(raw)
        value, _, spelling = raw.partition(":")
        if spelling and spelling not in SPELLINGS:
            self.problem(where, f"{spelling}: not a spelling ({', '.join(sorted(SPELLINGS))})")
        return Leaf(value, spelling or None)
