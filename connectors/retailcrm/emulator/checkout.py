"""Bonuses on orders in the emulator: calculate, apply (with the SMS step), cancel, accrual.

retailcrm-api.md §4.3. Decisions where the reference is silent:
- max charge: at most `CHARGE_SHARE` (50 %) of the goods after manual discounts (delivery
  excluded) and never more than the spendable balance; `chargeRate` 1 (a bonus is 1 RUB);
- calculate caps the asked bonuses at that maximum; apply refuses more with a 400;
- apply on an order already charged is refused (cancel first); apply while an SMS check is
  pending replaces the check, which is how Bitrix re-sends the code (§4.3 step 4);
- a charge waiting for its code touches neither the balance nor the order;
- an order turning `complete` earns `credit_for_order` at the level's % of the goods minus
  the bonuses paid, and a status starting with `cancel` reverses the order's operations
  like cancel-bonus-operations does (§4.3 step 6 [unconfirmed trigger]).
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Mapping
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from connectors.retailcrm.emulator.bonuses import ZERO, Check, Held, Lot, LoyaltyAccount
from connectors.retailcrm.emulator.history import CUSTOMER, ORDER, HistoryChange
from connectors.retailcrm.emulator.loyalty import LoyaltyState
from connectors.retailcrm.emulator.orders import CENT, line_sums, normalize_order, spread
from connectors.retailcrm.emulator.wire import ApiError, Json, invalid, json_field, money

CHARGE_SHARE = Decimal("0.5")
CHECK_TTL = timedelta(minutes=5)  # Decision: how long an SMS code stays valid
ACTION_CHARGE = "charge_bonuses"  # Decision: the order-charge actionType is [unconfirmed] (§4.3)
ACTION_REGISTER = "register"  # §4.3 step 4: `actionType` seen for an account's registration


class LoyaltyCheckout:
    """The order side of the programme, over a `LoyaltyState`."""

    def __init__(self, loyalty: LoyaltyState) -> None:
        self.loyalty = loyalty
        self.state = loyalty.state
        self.held: dict[int, Held] = {}  # by order id
        self.credited: dict[int, tuple[Lot, Decimal]] = {}  # credit_for_order, by order id
        self.checks: dict[str, Check] = {}
        self.sms: list[Json] = []  # what was "sent", for GET /__emulator__/sms
        self.state.order_listeners.append(self._order_changed)

    def calculate(self, params: Mapping[str, Any]) -> Json:
        """`POST /loyalty/calculate` (§4.3 step 2): `order`, `calculations[]`, `loyalty`."""
        data = json_field(params, "order")
        site = str(params.get("site") or data.get("site") or self.state.sites[0])
        customer = None
        if isinstance(data.get("customer"), dict) and data["customer"]:
            try:
                customer = self.state.find_ref(CUSTOMER, data["customer"], site)
            except ApiError:
                raise invalid({"customer": "Customer not found."}) from None
        account = self.loyalty.participant(customer["id"] if customer else None)
        order = copy.deepcopy(data) | {"site": site}
        normalize_order(order, lambda _: 0)
        cap = self._cap(order, account)
        asked = money(params.get("bonuses") or 0, "bonuses")
        view = self._view(order, account, min(max(asked, ZERO), cap))
        for item, given in zip(view["items"], data.get("items") or [], strict=False):
            if "id" not in given:
                item.pop("id", None)
        best = {"privilegeType": "loyalty_level", "discount": view["bonusesChargeTotal"]}
        best |= {"creditBonuses": view["bonusesCreditTotal"], "maxChargeBonuses": cap}
        best["maximum"] = True  # §4.3: marks the best privilege
        plain = best | {"privilegeType": "none", "creditBonuses": 0, "maximum": False}
        calculations = [best, plain] if account else [plain | {"maximum": True, "discount": 0}]
        programme = {"name": self.loyalty.programme()["name"], "chargeRate": 1}
        return {"success": True, "order": view, "calculations": calculations, "loyalty": programme}

    def apply(self, params: Mapping[str, Any], change: HistoryChange) -> Json:
        """`POST /orders/loyalty/apply` (§4.3 step 3/4): charge now, or after the SMS code."""
        order = self._order(params)
        bonuses = self.loyalty.amount(params, "bonuses")  # PY omits `bonuses` when it is 0
        account = self.loyalty.participant(order.get("customer", {}).get("id"))
        if account is None:
            raise invalid({"customer": "The customer has no activated loyalty account."})
        held = self.held.get(order["id"])
        if held is not None and held.charged:
            raise invalid({"bonuses": "Bonuses are already charged for this order."})
        cap = self._cap(order, account)
        if bonuses > cap:
            raise invalid({"bonuses": f"At most {cap} bonuses can be charged for this order."})
        held = self.held[order["id"]] = Held(order["id"], account.id, bonuses)
        if not self.loyalty.confirm_sms_charge:
            self._charge(held, change)
            return {"success": True, "order": self._view(order, account)}
        check = self._send_code(account, order["id"])
        held.check_id = check.check_id
        upcoming = self._view(order, account, bonuses)  # the order once the code is confirmed
        return {"success": True, "order": upcoming, "verification": check.render()}

    def cancel(self, params: Mapping[str, Any], change: HistoryChange) -> Json:
        """`POST /orders/loyalty/cancel-bonus-operations` (§4.3 step 5): restore the balance."""
        order = self._order(params)
        self._reverse(order, change)
        account = self.loyalty.participant(order.get("customer", {}).get("id"), activated=False)
        return {"success": True, "order": self._view(order, account)}

    def activate(self, ref: str) -> Json:
        """`POST /loyalty/account/{id}/activate`: with confirmSmsRegistration a `not_confirmed`
        account stays so and the answer carries the `verification` of the code sent (§4.3
        "Registration"); the account activates when the code is confirmed."""
        account = self.loyalty.account(ref)
        if not self.loyalty.confirm_sms_registration or account.status != "not_confirmed":
            return self.loyalty.account_activate(ref)
        check = self._send_code(account, None, ACTION_REGISTER)
        shown = self.loyalty.render(account)
        return {"success": True, "loyaltyAccount": shown, "verification": check.render()}

    def sms_confirm(self, params: Mapping[str, Any], change: HistoryChange) -> Json:
        """`POST /verification/sms/confirm` (`verification` = {code, checkId})."""
        data = json_field(params, "verification")
        check = self.checks.get(str(data.get("checkId")))
        if check is None:
            raise ApiError(404, "Not found")
        if check.verified_at is not None:
            raise invalid({"checkId": "The code has already been confirmed."})
        if self.state.clock() > check.expired_at:
            raise invalid({"checkId": "The verification has expired."})
        if str(data.get("code", "")) != check.code:
            raise invalid({"code": "Invalid verification code."})
        if check.action_type == ACTION_REGISTER and check.account_id is not None:
            self.loyalty.account_activate(str(check.account_id))
            check.verified_at = self.state.clock()
            return {"success": True, "verification": check.render()}
        held = self.held.get(check.order_id or 0)
        if held is None or held.check_id != check.check_id:
            raise invalid({"checkId": "The verification is no longer valid."})
        self._charge(held, change)
        check.verified_at = self.state.clock()
        return {"success": True, "verification": check.render()}

    def sms_status(self, check_id: str) -> Json:
        """`GET /verification/sms/{checkId}/status`."""
        check = self.checks.get(check_id)
        if check is None:
            raise ApiError(404, "Not found")
        return {"success": True, "verification": check.render()}

    def _order(self, params: Mapping[str, Any]) -> Json:
        return self.state.find_ref(ORDER, json_field(params, "order"), params.get("site") or None)

    def _cap(self, order: Json, account: LoyaltyAccount | None) -> Decimal:
        if account is None:
            return ZERO
        goods = sum(line_sums(order["items"]), ZERO)
        half = (goods * CHARGE_SHARE).quantize(CENT, ROUND_DOWN)
        return max(ZERO, min(half, account.balance(self.loyalty.today())))

    def _view(
        self, order: Json, account: LoyaltyAccount | None, charge: Decimal | None = None
    ) -> Json:
        """The order as apply/calculate/cancel return it (§4.3 fixtures), maybe with `charge`."""
        order = copy.deepcopy(order)
        items = order["items"]
        if charge is not None:
            for item, share in zip(items, spread(charge, line_sums(items)), strict=True):
                item["bonusesChargeTotal"] = share
        rate = Decimal(account.level().size) / 100 if account else ZERO
        for item, line in zip(items, line_sums(items), strict=True):
            share = money(item["bonusesChargeTotal"], "bonusesChargeTotal")
            item["bonusesCreditTotal"] = ((line - share) * rate).quantize(CENT)
            item["discounts"] = [{"type": "bonus_charge", "amount": share}] if share else []
        normalize_order(order, lambda _: 0)
        keys = ("bonusesCreditTotal", "bonusesChargeTotal", "totalSumm", "site", "items")
        view: Json = {k: order[k] for k in keys}
        view["privilegeType"] = "loyalty_level" if account else order.get("privilegeType", "none")
        view["delivery"] = {"cost": (order.get("delivery") or {}).get("cost", 0)}
        customer = self.state.entities[CUSTOMER.name].get(order.get("customer", {}).get("id", 0))
        if customer is not None:
            view["customer"] = {k: customer[k] for k in ("id", "externalId") if k in customer}
            view["customer"]["personalDiscount"] = customer.get("personalDiscount", 0)
        if account is not None:
            balance = account.balance(self.loyalty.today())
            view["loyaltyAccount"] = {"id": account.id, "amount": balance}
            view["loyaltyLevel"] = {"id": account.level().id, "name": account.level().name}
        return view

    def _charge(self, held: Held, change: HistoryChange) -> None:
        order = self.state.entities[ORDER.name][held.order_id]
        account = self.loyalty.accounts[held.account_id]
        held.taken = self.loyalty.take(account, held.amount, "bonuses")
        held.charged, held.check_id = True, None
        self.loyalty.operation("charge_for_order", -held.amount, account, order=order)
        self._set_charge(order, held.amount, change)

    def _set_charge(self, order: Json, amount: Decimal, change: HistoryChange) -> None:
        items = copy.deepcopy(order["items"])
        for item, share in zip(items, spread(amount, line_sums(items)), strict=True):
            item["bonusesChargeTotal"] = share
        patch: Json = {"items": items}
        if amount:
            patch["privilegeType"] = "loyalty_level"  # §4.3 step 1
        self.state.patch(ORDER, order, patch, change)

    def _reverse(self, order: Json, change: HistoryChange) -> None:
        """Undo the order's charge (`cancel_of_charge`) and credit (`cancel_of_credit`)."""
        held = self.held.pop(order["id"], None)  # a pending check dies with it
        if held is not None and held.charged:
            account = self.loyalty.accounts[held.account_id]
            for lot, part in held.taken:
                lot.remaining += part
            self.loyalty.operation("cancel_of_charge", held.amount, account, order=order)
            self._set_charge(order, ZERO, change)
        credit = self.credited.pop(order["id"], None)
        account_or_none = self.loyalty.account_of(order.get("customer", {}).get("id"))
        if credit is not None and account_or_none is not None:
            lot, amount = credit
            lot.remaining = max(ZERO, lot.remaining - amount)
            account_or_none.orders_sum -= money(order["totalSumm"], "totalSumm")
            self.loyalty.operation("cancel_of_credit", -amount, account_or_none, order=order)

    def _order_changed(self, order: Json, old_status: str | None, change: HistoryChange) -> None:
        status = str(order.get("status"))
        if status == old_status:
            return
        if status.startswith("cancel"):
            self._reverse(order, change)
            return
        account = self.loyalty.participant(order.get("customer", {}).get("id"))
        if status != "complete" or account is None or order["id"] in self.credited:
            return
        account.orders_sum += money(order["totalSumm"], "totalSumm")
        goods = money(order["summ"], "summ") - money(order["bonusesChargeTotal"], "charged")
        amount = (goods * Decimal(account.level().size) / 100).quantize(CENT)
        lot = Lot(amount, amount, self.loyalty.today())
        account.lots.append(lot)
        self.credited[order["id"]] = (lot, amount)
        today = self.loyalty.today()
        self.loyalty.operation("credit_for_order", amount, account, order=order, activation=today)

    def _send_code(
        self, account: LoyaltyAccount, order_id: int | None, action: str = ACTION_CHARGE
    ) -> Check:
        now = self.state.clock()
        code = f"{secrets.randbelow(10000):04d}"
        check_id = str(uuid.uuid4())
        check = Check(check_id, code, account.phone, now, now + CHECK_TTL, action, order_id)
        check.account_id = account.id
        self.checks[check_id] = check
        account.last_check_id = check_id
        sent = {"phone": account.phone, "checkId": check_id, "code": code}
        self.sms.append(sent | {"actionType": action, "createdAt": self.state.now()})
        return check
