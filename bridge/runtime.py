"""Everything a running bridge holds, built from settings, started and stopped in order."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge import budgets
from bridge.bonus.adjustments import Adjustments
from bridge.bonus.balance import BonusService
from bridge.bonus.master_calls import retry_policy
from bridge.bonus.mirror import BalanceChanges, BalanceReader
from bridge.bonus.orders import OrderStatusSink
from bridge.bonus.reservations import ReservationService
from bridge.connector import BalanceMirror, DocumentMapper, Emulator, Lifecycle, Sink
from bridge.customers.outbox import sent_check
from bridge.customers.registration import RegistrationSink
from bridge.customers.service import CustomerService, build_customers
from bridge.errors import BridgeError, SettingsError
from bridge.files.accruals import SaleAccruals
from bridge.files.checks import files_problems
from bridge.files.source import ReportFiles
from bridge.files.watcher import FileWatcher
from bridge.ledger import Ledger, MasterVerification
from bridge.logs import get_logger
from bridge.mapping import Compiled, inspect_route_mappings, mapping_path
from bridge.metrics import Metrics
from bridge.mirror.backfill import Backfiller
from bridge.mirror.dispatcher import Dispatcher
from bridge.mirror.intake import Intake
from bridge.mirror.poller import Poller
from bridge.mirror.retention import Pruner
from bridge.mirror.router import Router
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.registry import Connectors, build_connectors
from bridge.rules.book import RuleBook
from bridge.rules.loader import config_rules_problems, load_rules, rules_path
from bridge.settings import BONUS_TARGET, REGISTRATION_TARGET, DeliverySettings, Settings
from bridge.settings_loader import LoadedSettings
from bridge.sms.factory import build_gateway
from bridge.sms.gateway import SmsGateway
from bridge.store import Store, open_store
from bridge.store.customer_records import customer_records_of
from bridge.store.leases import Leases
from bridge.store.owed import owed_store_of
from bridge.store.records import InboundEvent

log = get_logger("bridge.runtime")


@dataclass
class Runtime:
    """The store, connectors, router, dispatcher and metrics of one process."""

    loaded: LoadedSettings
    store: Store
    connectors: Connectors
    router: Router
    metrics: Metrics = field(default_factory=Metrics)
    dispatcher: Dispatcher | None = None
    poller: Poller | None = None
    backfiller: Backfiller | None = None
    bonus: BonusService | None = None
    reservations: ReservationService | None = None
    customers: CustomerService | None = None  # /api/v1/customers (issue 17)
    adjustments: Adjustments | None = None  # /api/v1/bonus/operations (issue 18)
    rules: RuleBook | None = None  # bonus.rules.file: /api/v1/bonus/calculate (issue 18)
    file_watchers: list[FileWatcher] = field(default_factory=list)  # type: files (issue 18)
    emulators: dict[str, Emulator] = field(default_factory=dict)
    # Each route's mapping file, compiled, by (source, entity, target).
    mappers: dict[tuple[str, str, str], DocumentMapper] = field(default_factory=dict)
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    intake: Intake = field(init=False)
    # Leases several instances on one store share (PostgreSQL); None: this process alone.
    leases: Leases | None = None
    # The calls the bridge owes a system (bridge.owed): reservations register theirs.
    owed: OwedSweeper = field(init=False)
    # Done events pruned past store.retention.done_after, in small batches beside intake.
    pruner: Pruner = field(init=False)
    _gateway: SmsGateway | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Webhooks, pollers and backfills store changes through it; it wakes the lanes.
        self.intake = Intake(self.store, self.router, self._wake)
        self.pruner = Pruner(self.store, self.loaded.settings.store.retention)
        self.owed = OwedSweeper(
            owed_store_of(self.store),
            Handlers(),
            self.owner,
            lease_seconds=self.loaded.settings.store.lease_seconds,
        )

    @property
    def settings(self) -> Settings:
        """The validated settings."""
        return self.loaded.settings

    async def start(self, *, dispatch: bool = True) -> None:
        """Open the store, start sandbox emulators, connectors, dispatcher and pollers."""
        sandbox = self.settings.sandbox
        fresh = sandbox.enabled and sandbox.fresh_store
        await self.store.open(serving=True, fresh=fresh)
        await self._share_budgets()
        if fresh:
            url = self.settings.store.url
            kept = "<file>.previous" if url.startswith("sqlite:") else "schema bridge_previous"
            log.info("sandbox_store_reset", store=url, kept_as=kept)
        self.pruner.start()
        if self.settings.sandbox.enabled:
            await self.start_emulators()
        for name, connector in self.connectors.by_system.items():
            if isinstance(connector, Lifecycle):
                await connector.start()
                log.info("connector_started", system=name)
        master = self.settings.bonus.master
        ledger = self.connectors.by_system.get(master) if master else None
        if master is not None and isinstance(ledger, Ledger):
            self.bonus = BonusService(self.settings.bonus, master, ledger, self.store, self.metrics)
            self.reservations = self._reservation_service(self.bonus, ledger)
            await self.reservations.start()
            self.adjustments = self._adjustments(self.bonus)
            self.file_watchers = self._file_watchers(self.bonus)
            self.customers = await self._customer_service(self.bonus)
            if self.settings.customers.accumulate_only_until_profile:
                self.reservations.spend_gate = self.customers.profiles.spend_blocked
            await self.owed.start()  # after its handlers are registered: calls owed before
            for watcher in self.file_watchers:
                watcher.start()
        if not dispatch:
            return
        mirrors = self._balance_mirrors()
        readers = dict(self.connectors.readers())
        if self.bonus is not None and self.reservations is not None and mirrors:
            self.reservations.balance_changes = BalanceChanges(self.store, mirrors, self._wake)
            readers[BONUS_TARGET] = BalanceReader(self.bonus)
        self.dispatcher = Dispatcher(
            self.store,
            self._lanes(mirrors),
            self.owner,
            lease_seconds=self.settings.store.lease_seconds,
            metrics=self.metrics,
            readers=readers,
            mappers=self.mappers,
        )
        await self.dispatcher.start()
        self.poller = Poller(
            self.store, self.connectors.sources(), self.intake, owner=self.owner, leases=self.leases
        )
        # Before the server answers /health: a change made after ready is news (issue 12.2).
        await self.poller.fix_start_positions()
        self.poller.start()
        systems = set(self.settings.systems)
        listers = self.connectors.listers()
        self.backfiller = Backfiller(self.store, listers, self.router, systems, self.intake)
        self.backfiller.start()

    def _lanes(self, mirrors: tuple[str, ...]) -> dict[str, tuple[Sink, DeliverySettings]]:
        """A lane per target: the systems' sinks, and the internal ``_bonus`` (order
        statuses move reservations) and ``_customers`` (orders register customers)."""
        lanes: dict[str, tuple[Sink, DeliverySettings]] = {}
        internal = {BONUS_TARGET, REGISTRATION_TARGET}
        for target in sorted((self.router.all_targets() | set(mirrors)) - internal):
            sink = self.connectors.sink(target)
            if sink is not None:
                lanes[target] = (sink, self.settings.systems[target].delivery)
        if self.reservations is not None and BONUS_TARGET in self.router.all_targets():
            rules = self.settings.bonus.order_statuses
            lanes[BONUS_TARGET] = (OrderStatusSink(self.reservations, rules), DeliverySettings())
        if self.customers is not None and REGISTRATION_TARGET in self.router.all_targets():
            sink = self._registration_sink(self.customers)
            lanes[REGISTRATION_TARGET] = (sink, DeliverySettings())
        return lanes

    def _balance_mirrors(self) -> tuple[str, ...]:
        """Systems that show the master's balance (a Bitrix contact field)."""
        return tuple(
            sorted(
                name
                for name, c in self.connectors.by_system.items()
                if isinstance(c, BalanceMirror) and c.mirrors_balances
            )
        )

    async def _customer_service(self, bonus: BonusService) -> CustomerService:
        assert self.reservations is not None
        # Codes that prove a phone follow the reservations' code book and go through their
        # gateway (a master that sends its own codes does so only for write-offs): without
        # one, verify answers 501.
        reservations = self.reservations

        async def mirror(event: InboundEvent) -> None:
            await self.intake.receive(bonus.master, [event])

        return await build_customers(
            self.settings,
            bonus,
            self.store,
            self.owed,
            (reservations.gateway, reservations.codes),
            mirror,
        )

    def _sms_gateway(self) -> SmsGateway:
        """The bridge's SMS gateway (``bonus.sms.gateway``): one per process, shared by the
        write-off codes, the codes that prove a phone and the welcome texts."""
        if self._gateway is None:
            self._gateway = build_gateway(self.settings.bonus.sms, self.store)
        return self._gateway

    def _adjustments(self, bonus: BonusService) -> Adjustments:
        """Manual adjustments, their owed calls retried like a reservation's commit."""
        policy = retry_policy(self.settings.bonus.reservations.retry_max_seconds)
        records = customer_records_of(self.store)
        made = Adjustments(bonus, records, self.owed, policy, self.store, self.metrics)
        made.register(self.owed.handlers)
        return made

    def _file_watchers(self, bonus: BonusService) -> list[FileWatcher]:
        """A watcher per files source, their accruals owed calls (build_runtime refused a
        files source without rules or with a master that cannot accrue once)."""
        sources = [c for c in self.connectors.by_system.values() if isinstance(c, ReportFiles)]
        if not sources or self.rules is None:
            return []
        policy = retry_policy(self.settings.bonus.reservations.retry_max_seconds)
        SaleAccruals(bonus, self.rules, policy, self.metrics).register(self.owed.handlers)
        records = customer_records_of(self.store)
        return [
            FileWatcher(source, bonus.master, records, self.owed, self.leases, self.owner)
            for source in sources
        ]

    def _registration_sink(self, customers: CustomerService) -> RegistrationSink:
        """Welcome texts of automatic registration go through the bridge's own gateway
        (``bonus.sms.gateway``), whoever sends the write-off codes."""
        gateway = self._sms_gateway()
        return RegistrationSink(
            self.settings.customers.registration,
            {name: system.type for name, system in self.settings.systems.items()},
            customers.bonus,
            customer_records_of(self.store),
            gateway,
            customers.proofs,
            sent_check(gateway, self.store),
        )

    def _reservation_service(self, bonus: BonusService, ledger: Ledger) -> ReservationService:
        sms = self.settings.bonus.sms
        if sms.sender == "master":
            if not isinstance(ledger, MasterVerification):
                raise SettingsError(
                    [
                        f"bonus.sms.sender: master, but {bonus.master!r} does not send"
                        " confirmation codes itself; use sender: bridge with a gateway"
                    ]
                )
            return ReservationService(
                bonus,
                self.store,
                self.settings.bonus,
                None,
                verifier=ledger,
                metrics=self.metrics,
                owed=self.owed,
                owed_store=self.owed.store,
            )
        return ReservationService(
            bonus,
            self.store,
            self.settings.bonus,
            self._sms_gateway(),
            metrics=self.metrics,
            owed=self.owed,
            owed_store=self.owed.store,
        )

    async def start_emulators(self) -> None:
        """Start the sandbox emulator of every system whose connector ships one."""
        self.emulators = self.connectors.emulators(self.settings)
        for name, emulator in self.emulators.items():
            try:
                await emulator.start()
            except OSError as exc:
                raise BridgeError(
                    f"the sandbox emulator of {name!r} cannot listen at {emulator.url}:"
                    f" {exc.strerror or exc}"
                ) from exc
            log.info("sandbox_emulator_started", system=name, url=emulator.url)
            # A sandbox emulator starts afresh each time (its data lives in memory): poll
            # positions kept from its previous run would skip its first changes.
            if await self.store.forget_cursors(name):
                log.info("sandbox_cursors_reset", system=name)

    async def stop(self) -> None:
        """Stop in reverse order; queued writes commit before the store closes."""
        await self.pruner.stop()
        for watcher in self.file_watchers:
            await watcher.stop()
        await self.owed.stop()
        if self.reservations is not None:
            await self.reservations.stop()
        if self.backfiller is not None:
            await self.backfiller.stop()
        if self.poller is not None:
            await self.poller.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self._gateway is not None:  # after every user of it: codes, welcome texts
            await self._gateway.close()
        for connector in self.connectors.by_system.values():
            if isinstance(connector, Lifecycle):
                await connector.close()
        for emulator in self.emulators.values():
            await emulator.stop()
        shared = budgets.shared()
        if shared is not None:
            budgets.install(None)
            await shared.close()
        if self.leases is not None:
            await self.leases.close()
        await self.store.close()

    async def _share_budgets(self) -> None:
        """On a store several instances share (PostgreSQL), every rate limit of this process
        takes its turns from the schedule they share (``bridge.budgets``)."""
        url = self.settings.store.url
        if url.startswith(("postgresql://", "postgres://")):
            from bridge.budgets.postgres import PostgresBudgets  # psycopg only when used

            shared = PostgresBudgets(url)
            await shared.open()
            budgets.install(shared)
            from bridge.store.postgres_leases import PostgresLeases

            leases = PostgresLeases(url)
            await leases.open()
            self.leases = self.owed.leases = self.pruner.leases = leases
            self.pruner.owner = self.owner

    def _wake(self, targets: set[str]) -> None:
        if self.dispatcher is not None:
            for target in targets:
                self.dispatcher.wake(target)


def build_runtime(loaded: LoadedSettings) -> Runtime:
    """Build (not start) the runtime; connector and mapping problems raise SettingsError
    (all of them, as ``bridge check`` lists them)."""
    connectors, problems = build_connectors(loaded.settings)
    found = [str(loaded.document.problem(p.path, p.message)) for p in problems]
    config_file = Path(loaded.document.file)
    mapping_problems, compiled = inspect_route_mappings(config_file, loaded.document)
    found += mapping_problems + config_rules_problems(config_file, loaded.document)
    found += [
        str(loaded.document.problem(path, message))
        for path, message in files_problems(loaded.settings, connectors.by_system)
    ]
    if found:
        raise SettingsError(found)
    rules = loaded.settings.bonus.rules.file
    return Runtime(
        loaded=loaded,
        store=open_store(loaded.settings.store),
        connectors=connectors,
        router=Router(loaded.settings),
        mappers=route_mappers(loaded, compiled),
        rules=load_rules(rules_path(config_file, rules))[0] if rules else None,
    )


def route_mappers(
    loaded: LoadedSettings, compiled: Mapping[Path, Compiled]
) -> dict[tuple[str, str, str], DocumentMapper]:
    """Each route's compiled mapping file (checked, and compiled once, just before)."""
    mappers: dict[tuple[str, str, str], DocumentMapper] = {}
    config_file = Path(loaded.document.file)
    for route in loaded.settings.mirror.routes:
        if route.mapping is None:
            continue
        mapping = compiled[mapping_path(config_file, route.mapping).resolve()].mapping
        assert mapping is not None  # a file with problems stopped build_runtime
        for target in route.targets:
            mappers[(route.source, route.entity, target)] = mapping
    return mappers
