"""The bonus master as a support command reaches it (``bridge customers show``, ``bridge
notify --status``): its connector built from the config, called under the same breaker and
budget as the daemon's calls, closed afterwards. The daemon need not run; the master must
answer at its configured address (the sandbox's emulators run inside ``bridge serve``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from bridge.bonus.balance import BonusService, MasterUnavailable
from bridge.connector import Lifecycle
from bridge.customers.merges import cards_of
from bridge.customers.profiles import missing
from bridge.errors import BridgeError
from bridge.ledger import Ledger, LedgerErrorCode, LedgerRefused
from bridge.registry import build_connectors
from bridge.settings_loader import LoadedSettings
from bridge.store import Store
from bridge.store.customer_records import RecordKind, customer_records_of

# How many registrations and verifications --status reads: the customers the bridge knows.
KNOWN_LIMIT = 1_000_000
_REGISTERED = ("registered", "sending", "notified", "failed", "unknown")


@asynccontextmanager
async def master_of(loaded: LoadedSettings, store: Store) -> AsyncIterator[BonusService | str]:
    """The master's service, or why there is none (not configured, not a ledger)."""
    settings = loaded.settings
    master = settings.bonus.master
    if master is None:
        yield "bonus.master is not set"
        return
    connectors, _problems = build_connectors(settings)  # `bridge check` reports them
    ledger = connectors.by_system.get(master)
    if not isinstance(ledger, Ledger):
        yield f"the bonus master {master!r} has no ledger connector"
        return
    if isinstance(ledger, Lifecycle):
        await ledger.start()  # a master that is down is logged here and tried per call
    try:
        yield BonusService(settings.bonus, master, ledger, store)
    finally:
        if isinstance(ledger, Lifecycle):
            await ledger.close()


async def known_phones(store: Store) -> list[str]:
    """Phones the bridge registered, or that proved themselves by SMS, oldest first."""
    records = customer_records_of(store)
    found = [
        r.subject
        for r in await records.list_records(RecordKind.REGISTRATION, limit=KNOWN_LIMIT)
        if r.status in _REGISTERED
    ]
    found += [
        r.subject
        for r in await records.list_records(
            RecordKind.VERIFICATION, status="confirmed", limit=KNOWN_LIMIT
        )
    ]
    return list(dict.fromkeys(found))


async def incomplete_phones(loaded: LoadedSettings, store: Store) -> list[str] | str:
    """The known phones whose questionnaire misses a required field at the master, or why
    they cannot be told (no master, a master without questionnaires, a master down).

    The bridge keeps no list of every customer of the programme: it asks about those it
    registered or verified; customers it never met are not found this way."""
    required: list[str] = list(loaded.settings.customers.profile.required)
    async with master_of(loaded, store) as bonus:
        if isinstance(bonus, str):
            return bonus
        phones: list[str] = []
        try:
            ledger = cards_of(bonus)
            for phone in await known_phones(store):
                try:
                    find = partial(bonus.ledger.find_customer, phone=phone)
                    customer = await bonus.call_master("find_customer", find)
                except LedgerRefused as exc:
                    if exc.code is LedgerErrorCode.UNKNOWN_CUSTOMER:
                        continue
                    raise
                cid = customer.customer_id
                profile = await bonus.call_master("profile", partial(ledger.profile, cid))
                if missing(profile, required):
                    phones.append(phone)
        except MasterUnavailable as exc:
            return f"{exc}; try again when it answers"
        except BridgeError as exc:  # not_supported, a refusal: the master cannot say
            return str(getattr(exc, "detail", None) or exc)
        return phones
