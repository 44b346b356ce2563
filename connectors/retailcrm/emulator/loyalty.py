"""The emulator's loyalty programme: accounts, manual credit/charge, operations, details.

retailcrm-api.md §4.1 (concepts) and §4.2 (endpoints); the order side (calculate, apply,
SMS confirmation, cancel) is checkout.py. Decisions where the reference is silent:
- accounts start `not_confirmed` and need `/activate` (PHP fixtures show both states); with
  confirmSmsRegistration off, activation needs no SMS; with it on, `/activate` sends a code
  and the account activates when it is confirmed (checkout.py, §4.3 "Registration");
- charge and apply need an activated account; a credit needs only an account;
- manual `bonus/charge` never asks for an SMS code (§9.7 open; no client has such a step);
- `burn_soon` looks `BURN_SOON` ahead unless `filter[date]` says up to when.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from connectors.retailcrm.emulator.bonuses import (
    LEVELS,
    PROGRAMME_ID,
    ZERO,
    BonusOperation,
    Lot,
    LoyaltyAccount,
    decode_cursor,
    encode_cursor,
    parse_day,
    render_account,
)
from connectors.retailcrm.emulator.history import CUSTOMER
from connectors.retailcrm.emulator.state import RetailcrmState
from connectors.retailcrm.emulator.wire import (
    INPUT_PARAMS,
    ApiError,
    Json,
    as_int,
    as_list,
    digits,
    filter_of,
    invalid,
    json_field,
    money,
    paginate,
    phone_matches,
)

BURN_SOON = timedelta(days=30)  # Decision: `burn_soon` looks this far ahead by default
FEED_LIMITS = (20, 50, 100, 250)  # §1.7 PaginationLimit, for the cursor feed


class LoyaltyState:
    """One loyalty programme (id 1) over the account's customers and orders."""

    def __init__(
        self,
        state: RetailcrmState,
        *,
        confirm_sms_charge: bool = False,
        confirm_sms_registration: bool = False,
    ) -> None:
        self.state = state
        self.confirm_sms_charge = confirm_sms_charge
        self.confirm_sms_registration = confirm_sms_registration
        self.accounts: dict[int, LoyaltyAccount] = {}
        self.operations: list[BonusOperation] = []

    def today(self) -> date:
        """The account's current date."""
        return self.state.clock().date()

    # ---- programme -------------------------------------------------------------------------

    def programme(self) -> Json:
        """The programme with its levels (§4.1)."""
        return {
            "levels": [level.render() for level in LEVELS],
            "active": True,
            "blocked": False,
            "id": PROGRAMME_ID,
            "name": "Бонусная программа",
            "currency": "RUB",
            "confirmSmsCharge": self.confirm_sms_charge,
            "confirmSmsRegistration": self.confirm_sms_registration,
            "createdAt": "2025-01-01 09:00:00",
            "activatedAt": "2025-01-01 09:05:00",
        }

    def loyalties(self, params: Mapping[str, Any]) -> Json:
        """`GET /loyalty/loyalties` with `filter[ids][]`, `active`, `blocked`, `sites[]`."""
        wanted = filter_of(params)
        ok = not wanted.get("ids") or str(PROGRAMME_ID) in map(str, as_list(wanted["ids"]))
        ok = ok and str(wanted.get("active", "1")) in ("1", "true")
        ok = ok and str(wanted.get("blocked", "0")) in ("0", "false")
        ok = ok and (
            not wanted.get("sites") or bool(set(as_list(wanted["sites"])) & set(self.state.sites))
        )
        rows, pagination = paginate([self.programme()] if ok else [], params)
        return {"success": True, "pagination": pagination, "loyalties": rows}

    def loyalty(self, ref: str) -> Json:
        """`GET /loyalty/loyalties/{id}`."""
        if ref != str(PROGRAMME_ID):
            raise ApiError(404, "Not found")
        return {"success": True, "loyalty": self.programme(), "requiredFields": []}

    # ---- accounts --------------------------------------------------------------------------

    def account(self, ref: str) -> LoyaltyAccount:
        """An account by id, or 404."""
        found = self.accounts.get(int(ref)) if ref.isdigit() else None
        if found is None:
            raise ApiError(404, "Not found")
        return found

    def render(self, account: LoyaltyAccount) -> Json:
        """The account as the API shows it."""
        self._burn(account)
        customer = self.state.entities[CUSTOMER.name][account.customer_id]
        return render_account(account, customer, self.today())

    def account_create(self, params: Mapping[str, Any]) -> Json:
        """`POST /loyalty/account/create` (`site`, `loyaltyAccount`)."""
        site = params.get("site")
        if not site:
            raise ApiError(400, "Parameter 'site' is missing")
        if site not in self.state.sites:
            raise invalid({"site": f"Site with code '{site}' not found."})
        data = json_field(params, "loyaltyAccount")
        ref = data.get("customer")
        if not isinstance(ref, dict) or not ref:
            raise invalid({"customer": "This value should not be blank."})
        try:
            customer = self.state.find_ref(CUSTOMER, ref, site)
        except ApiError:
            raise invalid({"customer": "Customer not found."}) from None
        if self.account_of(customer["id"]) is not None:
            # §4.3 "Registration" [confirmed: BX loyaltyaccountservice.php]
            raise invalid({"loyalty": "The customer is in this loyalty program already"})
        phones = [p.get("number") for p in customer.get("phones", [])]
        account = LoyaltyAccount(
            id=10 + len(self.accounts) + 1,
            customer_id=customer["id"],
            site=site,
            phone=data.get("phoneNumber") or (phones[0] if phones else None),
            card=data.get("cardNumber"),
            created_at=self.state.now(),
            custom_fields=data.get("customFields") or {},
        )
        self.accounts[account.id] = account
        return {
            "success": True,
            "site": site,
            "loyaltyAccount": self.render(account),
            "warnings": [],
        }

    def account_of(self, customer_id: int | None) -> LoyaltyAccount | None:
        """The customer's account, if any."""
        mine = [a for a in self.accounts.values() if a.customer_id == customer_id]
        # One merged in from another customer is deactivated (merges.py).
        return next((a for a in mine if a.status != "deactivated"), mine[0] if mine else None)

    def account_get(self, ref: str) -> Json:
        """`GET /loyalty/account/{id}`."""
        return {"success": True, "loyaltyAccount": self.render(self.account(ref))}

    def account_edit(self, ref: str, params: Mapping[str, Any]) -> Json:
        """`POST /loyalty/account/{id}/edit`: phone, card, custom fields, manual level."""
        account = self.account(ref)
        data = json_field(params, "loyaltyAccount")
        if "loyaltyLevelId" in data and data["loyaltyLevelId"] is not None:
            level_id = as_int(data["loyaltyLevelId"], "loyaltyLevelId")
            if level_id not in {level.id for level in LEVELS}:
                raise invalid({"loyaltyLevelId": "Loyalty level not found."})
            account.level_id = level_id
        account.phone = data.get("phoneNumber", account.phone)
        account.card = data.get("cardNumber", account.card)
        account.custom_fields |= data.get("customFields") or {}
        return {"success": True, "loyaltyAccount": self.render(account), "warnings": []}

    def account_activate(self, ref: str) -> Json:
        """`POST /loyalty/account/{id}/activate` without the SMS step (checkout.py has it)."""
        account = self.account(ref)
        if account.status != "activated":
            account.status, account.activated_at = "activated", self.state.now()
        return {"success": True, "loyaltyAccount": self.render(account)}

    def accounts_list(self, params: Mapping[str, Any]) -> Json:
        """`GET /loyalty/accounts` with the §4.2 filters the bridge uses."""
        wanted = {k: v for k, v in filter_of(params).items() if v not in (None, "", [])}
        rows = [a for a in self.accounts.values() if self._account_matches(a, wanted)]
        page, pagination = paginate(rows, params)
        return {
            "success": True,
            "pagination": pagination,
            "loyaltyAccounts": [self.render(a) for a in page],
        }

    def _account_matches(self, account: LoyaltyAccount, wanted: Json) -> bool:
        customer = self.state.entities[CUSTOMER.name][account.customer_id]
        tests: dict[str, Callable[[Any], bool]] = {
            "id": lambda v: str(account.id) == str(v),
            "ids": lambda v: str(account.id) in map(str, as_list(v)),
            "status": lambda v: account.status == v,
            "customerId": lambda v: str(account.customer_id) == str(v),
            "customerExternalId": lambda v: customer.get("externalId") == str(v),
            "phoneNumber": lambda v: phone_matches(digits(v), account.phone),
            "cardNumber": lambda v: digits(v) == digits(account.card) and bool(account.card),
            "sites": lambda v: account.site in as_list(v),
            "loyalties": lambda v: str(PROGRAMME_ID) in map(str, as_list(v)),
        }
        return all(test(wanted[key]) for key, test in tests.items() if key in wanted)

    # ---- bonuses ---------------------------------------------------------------------------

    def credit(self, ref: str, params: Mapping[str, Any]) -> Json:
        """`POST /loyalty/account/{id}/bonus/credit` → `credit_manual`."""
        account = self.account(ref)
        amount = self.amount(params)
        activation = parse_day(params.get("activationDate"), "activationDate") or self.today()
        # §4.2: the request says expireDate; GO's model says expiredDate: accept both.
        expire = parse_day(params.get("expireDate") or params.get("expiredDate"), "expireDate")
        if expire is not None and expire <= activation:
            raise invalid({"expireDate": "The expire date must be after the activation date."})
        account.lots.append(Lot(amount, amount, activation, expire))
        self.operation(
            "credit_manual", amount, account, activation=activation, comment=params.get("comment")
        )
        bonus = {
            "amount": amount,
            "activationDate": activation.isoformat(),
            "expireDate": expire.isoformat() if expire else None,
        }
        return {"success": True, "loyaltyBonus": bonus}

    def charge(self, ref: str, params: Mapping[str, Any]) -> Json:
        """`POST /loyalty/account/{id}/bonus/charge` → `charge_manual`."""
        account = self._spender(self.account(ref))
        amount = self.amount(params)
        self.take(account, amount, "amount")
        self.operation("charge_manual", -amount, account, comment=params.get("comment"))
        return {"success": True}

    def account_operations(self, ref: str, params: Mapping[str, Any]) -> Json:
        """`GET /loyalty/account/{id}/bonus/operations`, newest first as in the PHP fixture."""
        account = self.account(ref)
        self._burn(account)
        wanted = filter_of(params)
        low, high = wanted.get("createdAtFrom") or "", wanted.get("createdAtTo") or "9999"
        rows = [
            o
            for o in reversed(self.operations)
            if o.account_id == account.id and low <= o.created_at <= high
        ]
        page, pagination = paginate(rows, params)
        return {
            "success": True,
            "pagination": pagination,
            "bonusOperations": [o.render(feed=False) for o in page],
        }

    def details(self, ref: str, status: str, params: Mapping[str, Any]) -> Json:
        """`GET /loyalty/account/{id}/bonus/{waiting_activation|burn_soon}/details`."""
        account = self.account(ref)
        if status not in ("waiting_activation", "burn_soon"):
            choice = "The value you selected is not a valid choice."
            raise ApiError(400, INPUT_PARAMS, {"status": choice})
        self._burn(account)
        today, by_day = self.today(), dict[date, Decimal]()
        until = parse_day(filter_of(params).get("date"), "filter[date]") or today + BURN_SOON
        for lot in account.lots:
            if lot.remaining <= 0:
                continue
            if status == "waiting_activation" and lot.activation > today:
                by_day[lot.activation] = by_day.get(lot.activation, ZERO) + lot.remaining
            elif status == "burn_soon" and lot.active(today) and lot.expire and lot.expire <= until:
                by_day[lot.expire] = by_day.get(lot.expire, ZERO) + lot.remaining
        rows = [{"date": day.isoformat(), "amount": by_day[day]} for day in sorted(by_day)]
        page, pagination = paginate(rows, params)
        total = sum(by_day.values(), ZERO)
        return {
            "success": True,
            "pagination": pagination,
            "statistic": {"totalAmount": total},
            "bonuses": page,
        }

    def all_operations(self, params: Mapping[str, Any]) -> Json:
        """`GET /loyalty/bonus/operations`: ascending, `limit` + `cursor` → `nextCursor` (§1.7)."""
        for account in self.accounts.values():
            self._burn(account)
        limit = as_int(params.get("limit"), "limit", 20)
        if limit not in FEED_LIMITS:
            raise ApiError(
                400, INPUT_PARAMS, {"limit": "The value you selected is not a valid choice."}
            )
        cursor = params.get("cursor") or None
        after = decode_cursor(cursor) if cursor else 0
        loyalties = as_list(filter_of(params).get("loyalties"))
        mine = not loyalties or str(PROGRAMME_ID) in map(str, loyalties)
        rows = [o for o in self.operations if o.seq > after and mine][:limit]
        # Decision: the cursor points after the last row; an empty page hands the caller's back.
        following = encode_cursor(rows[-1]) if rows else cursor
        return {
            "success": True,
            "pagination": {"nextCursor": following},
            "bonusOperations": [o.render(feed=True) for o in rows],
        }

    # ---- shared with the checkout ----------------------------------------------------------

    def participant(self, customer_id: int | None, activated: bool = True) -> LoyaltyAccount | None:
        """The customer's account if it may take part (activated, unless told otherwise)."""
        account = self.account_of(customer_id)
        if account is None or (activated and account.status != "activated"):
            return None
        return account

    def _spender(self, account: LoyaltyAccount) -> LoyaltyAccount:
        if account.status != "activated":
            raise invalid({"loyaltyAccount": "The loyalty account is not activated."})
        return account

    def amount(self, params: Mapping[str, Any], name: str = "amount") -> Decimal:
        """A required positive amount parameter."""
        if params.get(name) in (None, ""):
            raise ApiError(400, f"Parameter '{name}' is missing")
        amount = money(params[name], name)
        if amount <= 0:
            raise invalid({name: "This value should be greater than 0."})
        return amount

    def take(
        self, account: LoyaltyAccount, amount: Decimal, name: str
    ) -> list[tuple[Lot, Decimal]]:
        """Spend `amount` from the lots, or 400 naming `name` when the balance is short."""
        self._burn(account)
        if amount > account.balance(self.today()):
            raise invalid({name: f"Not enough bonuses: {account.balance(self.today())} available."})
        return account.draw(amount, self.today())

    def operation(
        self,
        kind: str,
        amount: Decimal,
        account: LoyaltyAccount,
        *,
        order: Json | None = None,
        activation: date | None = None,
        comment: Any = None,
    ) -> None:
        """Append a §4.1 bonus operation (amount negative for charges and burns)."""
        ref: Json | None = None
        if order is not None:
            ref = {k: order[k] for k in ("id", "externalId") if k in order}
        at = self.state.now()
        seq = len(self.operations) + 1
        self.operations.append(
            BonusOperation(seq, kind, at, amount, account.id, ref, activation, comment)
        )

    def _burn(self, account: LoyaltyAccount) -> None:
        """Expired lots lose what is left, as `burn` operations."""
        today = self.today()
        for lot in account.lots:
            if lot.expire is not None and lot.expire <= today and lot.remaining > 0:
                self.operation("burn", -lot.remaining, account)
                lot.remaining = ZERO

    def snapshot(self) -> Json:
        """Accounts and operations, for `GET /__emulator__/state`."""
        return {
            "loyaltyAccounts": [self.render(a) for a in self.accounts.values()],
            "bonusOperations": [o.render(feed=True) for o in self.operations],
        }

    def seed_sandbox(self) -> None:
        """c-1: 1000 points; c-2: 250 burning in 20 days and 100 waiting activation 7 days."""
        today, days = self.today(), timedelta(days=1)
        plan: dict[str, list[tuple[int, date, date | None]]] = {"c-1": [(1000, today, None)]}
        plan["c-2"] = [(250, today, today + 20 * days)]
        plan["c-2"].append((100, today + 7 * days, None))
        for external_id, credits in plan.items():
            customer = self.state.find(CUSTOMER, external_id)
            card = customer.get("discountCardNumber")
            data = {"customer": {"id": customer["id"]}, "cardNumber": card}
            self.account_create({"site": customer["site"], "loyaltyAccount": data})
            account_id = str(len(self.accounts) + 10)
            self.account_activate(account_id)
            for amount, activation, expire in credits:
                dates = {"activationDate": activation.isoformat(), "expireDate": expire}
                self.credit(account_id, {"amount": str(amount)} | dates)
