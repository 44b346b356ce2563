"""Manual adjustments (issue 18): ``POST /api/v1/bonus/operations`` accrues or writes off
points at the 1C sandbox master through the owed-calls mechanism, once per
Idempotency-Key, recorded with who asked; over the wire, the master's emulator on loopback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from tests.support.bonus import ADMIN, TILL, Bonus, BonusFactory, bonus_config, bonus_factory
from tests.support.daemon import free_port, run_cli
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name

OPS = "/api/v1/bonus/operations"
PHONE = "+79000000001"  # seeded in the 1C sandbox with 1,000 points
ADJUSTER = {"Authorization": "Bearer adjuster-token-0000000000001"}
OTHER = {"Authorization": "Bearer other-adjuster-token-000000001"}
# A 1C service that shows a balance by card and can do nothing else (issue 14's fixture).
LOOKUP_ONLY = Path(__file__).resolve().parents[1] / "fixtures/onec_services/lookup_only"


def adjust_config(tmp_path: Path, **bonus: Any) -> dict[str, Any]:
    """1C is the master; two sales systems hold ``bonus:adjust``, the till does not."""
    config = bonus_config(tmp_path, "onec", **bonus)
    config["clients"]["crm"] = {
        "token": ADJUSTER["Authorization"].split()[1],
        "scopes": ["bonus:read", "bonus:adjust"],
    }
    config["clients"]["shop"] = {
        "token": OTHER["Authorization"].split()[1],
        "scopes": ["bonus:adjust"],
    }
    return config


async def start(bonus_factory: BonusFactory, tmp_path: Path, **bonus: Any) -> Bonus:
    return await bonus_factory("onec", config=adjust_config(tmp_path, **bonus))


def body(kind: str = "accrue", amount: Any = "150.00", **more: Any) -> dict[str, Any]:
    return {
        "customer": {"phone": PHONE},
        "kind": kind,
        "amount": amount,
        "reason": "goodwill: the courier was two hours late",
    } | more


async def adjust(
    bonus: Bonus, data: Any, key: str | None, headers: dict[str, str] = ADJUSTER
) -> tuple[int, Any]:
    extra = {} if key is None else {"Idempotency-Key": key}
    return await bonus.call("POST", OPS, data, headers | extra)


async def balance(bonus: Bonus) -> str:
    status, found = await bonus.balance({"customer": {"phone": PHONE}})
    assert status == 200, found
    return str(found["balance"])


async def settled(bonus: Bonus, op_id: str, status: str) -> dict[str, Any]:
    async def check() -> Any:
        _, shown = await bonus.call("GET", f"{OPS}/{op_id}", headers=ADJUSTER)
        return shown if shown["status"] == status else None

    found: dict[str, Any] = await eventually(check, 10)
    return found


async def test_an_accrual_raises_the_balance_once_however_often_it_is_asked(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await start(bonus_factory, tmp_path)
    key = "crm-bonus-7781"
    with capture_logs() as logs:
        status, made = await adjust(bonus, body(), key)
    assert status == 202, made
    assert made["operation_id"].startswith("adj_")
    assert (made["status"], made["kind"], made["amount"]) == ("done", "accrue", "150.00")
    assert made["requested_by"] == "crm"
    assert made["customer"]["phone"] == "+7 900 ***-**-01"
    assert made["master_call"]["status"] == "done"
    assert await balance(bonus) == "1150.00"

    status, again = await adjust(bonus, body(), key)
    assert (status, again["operation_id"], again["status"]) == (200, made["operation_id"], "done")
    assert await balance(bonus) == "1150.00"

    status, reused = await adjust(bonus, body(amount="151.00"), key)
    assert (status, reused["code"], reused["field"]) == (
        422,
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    # Keys are per client: another client's same key is its own adjustment.
    status, theirs = await adjust(bonus, body(amount="10.00"), key, OTHER)
    assert status == 202, theirs
    assert theirs["operation_id"] != made["operation_id"]
    assert await balance(bonus) == "1160.00"
    async with bonus.http.get(bonus.url + "/metrics") as resp:
        metrics = await resp.text()
    assert 'bridge_bonus_requests_total{operation="adjust",outcome="done"} 2.0' in metrics
    assert 'operation="adjust",outcome="idempotency_key_reused"} 1.0' in metrics

    events = {e["event"]: e for e in logs}
    assert {"adjustment_requested", "adjustment_done"} <= set(events)
    assert events["adjustment_requested"]["customer"] == "+7 900 ***-**-01"
    text = repr(logs)
    assert key not in text
    assert PHONE not in text


async def test_an_accrual_owed_to_a_master_that_is_down_is_made_once_it_is_back(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await start(
        bonus_factory,
        tmp_path,
        reservations={"retry_max_seconds": 0.3},
        breaker={"failures": 2, "reset_seconds": 0.3},
    )
    bonus.emulator.faults.set(outage=True)
    status, made = await adjust(bonus, body(amount="75.50"), "down-1")
    assert (status, made["status"]) == (202, "pending"), made
    assert made["master_call"]["last_error"]

    await asyncio.sleep(0.8)  # the sweeper keeps trying while the master is down
    status, again = await adjust(bonus, body(amount="75.50"), "down-1")
    assert (status, again["status"]) == (200, "pending")
    assert again["master_call"]["attempts"] >= 2
    assert again["master_call"]["status"] in ("pending", "in_flight")

    bonus.emulator.faults.set(outage=False)
    done = await settled(bonus, made["operation_id"], "done")
    assert done["balance"] == "1075.50"
    await asyncio.sleep(0.5)  # nothing more is owed: no second accrual comes late
    assert await balance(bonus) == "1075.50"


async def test_a_write_off_lowers_the_balance_and_leaves_no_hold(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await start(bonus_factory, tmp_path)
    order = {"system": "onec", "id": "ORD-55"}
    status, made = await adjust(bonus, body("write_off", "300.00", order=order), "wo-1")
    assert (status, made["status"]) == (202, "done"), made
    assert made["order"] == order
    status, found = await bonus.balance({"customer": {"phone": PHONE}})
    assert (found["balance"], found["available"], found["reserved"]) == (
        "700.00",
        "700.00",
        "0.00",
    )
    status, again = await adjust(bonus, body("write_off", "300.00", order=order), "wo-1")
    assert (status, again["status"]) == (200, "done")
    assert await balance(bonus) == "700.00"


async def test_a_refusal_of_the_master_fails_the_operation_with_its_code(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await start(bonus_factory, tmp_path)
    status, made = await adjust(bonus, body("write_off", "5000.00"), "too-much")
    assert (status, made["status"]) == (202, "failed"), made
    assert made["error"]["code"] == "insufficient_balance"
    assert made["master_call"]["status"] == "dead"
    assert await balance(bonus) == "1000.00"

    nobody = body() | {"customer": {"phone": "+79990001122"}}
    status, unknown = await adjust(bonus, nobody, "nobody")
    assert (status, unknown["status"], unknown["error"]["code"]) == (
        202,
        "failed",
        "unknown_customer",
    )


async def test_only_adjusters_may_adjust_and_each_sees_its_own(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await start(bonus_factory, tmp_path)
    status, refused = await adjust(bonus, body(), "k-1", TILL)
    assert (status, refused["code"]) == (403, "forbidden")
    status, refused = await adjust(bonus, body(), "k-1", {})
    assert (status, refused["code"]) == (401, "unauthorized")

    status, made = await adjust(bonus, body(), "k-1")
    assert status == 202, made
    path = f"{OPS}/{made['operation_id']}"
    status, hidden = await bonus.call("GET", path, headers=OTHER)
    assert (status, hidden["code"]) == (404, "operation_not_found")
    status, shown = await bonus.call("GET", path, headers=ADMIN)
    assert (status, shown["requested_by"]) == (200, "crm")
    status, _ = await bonus.call("GET", path, headers=TILL)
    assert status == 403
    status, nothing = await bonus.call("GET", f"{OPS}/adj_nope", headers=ADMIN)
    assert (status, nothing["code"]) == (404, "operation_not_found")

    # Support (admin) adjusts too, recorded as itself.
    status, by_support = await adjust(bonus, body(amount="1.00"), "k-1", ADMIN)
    assert (status, by_support["requested_by"]) == (202, "support")


async def test_bad_input_is_a_422_naming_the_field(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await start(bonus_factory, tmp_path)
    cases: list[tuple[Any, str | None, str]] = [
        (body(), None, "Idempotency-Key"),
        (body(), "has space", "Idempotency-Key"),
        (body(), "x" * 129, "Idempotency-Key"),
        (body(amount="0.00"), "b1", "amount"),
        (body(amount="-5"), "b1", "amount"),
        (body(amount="1.001"), "b1", "amount"),
        (body(amount=1.5), "b1", "amount"),
        (body(kind="gift"), "b1", "kind"),
        (body(reason=""), "b1", "reason"),
        (body(reason="x" * 201), "b1", "reason"),
        (body(reason="a\x00b"), "b1", "reason"),
        (body(order={"system": "onec"}), "b1", "order.id"),
        (body(extra=1), "b1", "extra"),
        ({"kind": "accrue", "amount": "1.00", "reason": "r"}, "b1", "customer"),
        (body() | {"customer": {"phone": "12"}}, "b1", "customer.phone"),
    ]
    for data, key, field in cases:
        status, problem = await adjust(bonus, data, key)
        assert (status, problem["code"], problem.get("field")) == (
            422,
            "invalid_request",
            field,
        ), (data, key, problem)
    assert await balance(bonus) == "1000.00"


async def test_hostile_text_with_a_key_is_refused_at_the_boundary(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    """The hostile-input sweep sends no Idempotency-Key; with one, the body is read too."""
    bonus = await start(bonus_factory, tmp_path)
    headers = ADJUSTER | {"Idempotency-Key": "h-1", "Content-Type": "application/json"}
    raws = [
        b'{"customer": {"phone": "+7900000000\\udfff1"}, "kind": "accrue",'
        b' "amount": "1.00", "reason": "r"}',
        b'{"customer": {"card": "2000000000015"}, "kind": "accrue", "amount": "1.00",'
        b' "reason": "\\ud800"}',
        b'{"customer": {"card": "2000000000015"}, "kind": "accrue", "amount": NaN, "reason": "r"}',
        b"[1, 2]",
        b"not json",
    ]
    for raw in raws:
        async with bonus.http.post(bonus.url + OPS, data=raw, headers=headers) as resp:
            problem = await resp.json(content_type=None)
            assert resp.status in (400, 422), (raw, resp.status, problem)
            assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert await balance(bonus) == "1000.00"


async def test_a_1c_service_that_cannot_hold_points_refuses_a_write_off_with_501(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = adjust_config(tmp_path)
    folder = LOOKUP_ONLY
    endpoint = f"http://127.0.0.1:{free_port()}/base/ws/cards.1cws"
    config["systems"] = {
        "onec": {
            "type": "onec",
            "options": {
                "transport": "soap",
                "address": endpoint,
                "username": "bridge",
                "password": "sandbox",
                "poll_interval": 0,
                "service": str(folder / "declaration.yaml"),
                "emulator": str(folder / "emulator.yaml"),
            },
        }
    }
    bonus = await bonus_factory("onec", config=config)
    data = body("write_off", "10.00") | {"customer": {"card": "2000000000015"}}
    status, refused = await adjust(bonus, data, "cannot")
    assert (status, refused["code"]) == (501, "not_supported"), refused
    assert "reserve" in refused["detail"]
    status, refused = await adjust(bonus, data | {"kind": "accrue"}, "cannot-2")
    assert (status, refused["code"]) == (501, "not_supported"), refused


async def test_support_replays_a_refused_write_off_once_the_points_are_there(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await start(bonus_factory, tmp_path)
    status, refused = await adjust(bonus, body("write_off", "1100.00"), "replay-me")
    assert (status, refused["status"]) == (202, "failed"), refused
    status, topped = await adjust(bonus, body(amount="100.00"), "top-up")
    assert (status, topped["status"]) == (202, "done"), topped

    call = refused["master_call"]["id"]
    code, out, err = await run_cli(tmp_path / "onec-0.yaml", "replay", call)
    assert code == 0, (out, err)
    done = await settled(bonus, refused["operation_id"], "done")
    assert "error" not in done
    assert await balance(bonus) == "0.00"


async def test_retailcrm_refuses_an_accrual_it_cannot_make_exactly_once(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = bonus_config(tmp_path, "retailcrm")
    config["clients"]["crm"] = {
        "token": ADJUSTER["Authorization"].split()[1],
        "scopes": ["bonus:adjust"],
    }
    bonus = await bonus_factory("retailcrm", config=config)
    status, refused = await adjust(bonus, body("accrue", "10.00"), "crm-credit-1")
    assert (status, refused["code"]) == (501, "not_supported"), refused
    assert "operation id" in refused["detail"], refused
