"""What the core asks of a connector: small protocols a connector implements as it can.

A connector package registers a :class:`ConnectorType` under the ``bridge.connectors``
entry-point group (name = the ``type:`` in config). The core meets it only through these
protocols, so ``bridge/`` never imports a concrete system.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from bridge.errors import BridgeError, DeliveryError
from bridge.settings import SystemSettings
from bridge.store.records import EventRecord, InboundEvent


@dataclass(frozen=True)
class WebhookRequest:
    """An authenticated webhook as the parser sees it."""

    system: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    content_type: str
    body: bytes


class WebhookRejected(BridgeError):
    """The body is not a change we understand; ``reason`` is kept with the stored body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DeliveryJob:
    """One attempt to bring an entity's latest state to a target."""

    delivery_id: str
    operation_key: str  # stable across retries and replays: the target's idempotency key
    target: str
    source: str
    entity: str
    entity_id: str
    attempt: int
    events: tuple[EventRecord, ...]  # the coalesced changes, oldest first
    # The entity as the source holds it now, read just before the attempt when the source
    # can be read (PRODUCT 3.3: history gives changes, not state); None otherwise.
    state: Mapping[str, Any] | None = None
    # What to write, in the target's shape: the route's mapping file applied to ``state``
    # (or to the latest change's data when the source cannot be re-read). None when the
    # route has no mapping; the sink then writes what the change itself carried.
    document: Mapping[str, Any] | None = None
    # The target's own id for the entity when the entity came from the target in the first
    # place (an order the bridge wrote into 1C as ``retailcrm-77`` is RetailCRM's order 77):
    # the sink then writes to that one instead of upserting by ``external_id``.
    target_ref: str | None = None
    # The target's id of the entity as the id map keeps it from an earlier write (what the
    # target answered then); the sink may write to it directly. None when not yet written.
    mapped_id: str | None = None
    # How often support replayed the delivery (``DeliveryRecord.generation``); None when the
    # builder of the job left it out, and ``replay_generation`` reads it from the key then.
    generation: int | None = None

    @property
    def external_id(self) -> str:
        """The key the target upserts by: ``<source>-<entity id>``, stable for an entity."""
        return f"{self.source}-{self.entity_id}"

    @property
    def replay_generation(self) -> int:
        """How often support replayed this delivery (0: never); each replay is written under
        a new operation key."""
        if self.generation is not None:
            return self.generation
        return replay_generation_of(self.operation_key)

    @property
    def may_have_landed(self) -> bool:
        """Whether an earlier attempt or replay may already have written this entity (a
        retry, or any replay): a target without idempotency keys looks before it adds."""
        return self.attempt > 1 or self.replay_generation > 0


_REPLAYED = re.compile(r"-r([0-9]+)$")


def replay_generation_of(operation_key: str) -> int:
    """The replay generation an operation key carries (``DeliveryRecord.operation_key``:
    ``bridge-<delivery id>``, ``-r<n>`` appended for the n-th replay); 0 for none."""
    found = _REPLAYED.search(operation_key)
    return int(found.group(1)) if found else 0


class Mapped(Protocol):
    """What a mapping made of one source document."""

    @property
    def document(self) -> dict[str, Any] | None:
        """The target's document; None when skipped."""
        ...

    @property
    def skipped(self) -> str | None:
        """Why the change does not flow (a filter, an unknown value)."""
        ...


class DocumentMapper(Protocol):
    """A flow's mapping file, compiled (PRODUCT 4.4); raises a PermanentError naming the
    rule when the source document cannot be mapped."""

    def apply(self, source: Mapping[str, Any], /, *, creating: bool = True) -> Mapped:
        """Map one source document; ``creating`` False when the target already holds the
        entity (rules for creation only are then left out)."""
        ...


@runtime_checkable
class EntityReader(Protocol):
    """A source whose entities can be re-read in full before they are delivered."""

    async def read_entity(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """The entity's current state, or None when the source cannot show it (deleted,
        or an entity it does not read)."""
        ...


@runtime_checkable
class ReadsEntities(Protocol):
    """A reader that says which entities it reads, so that ``read_entity`` answering None
    means the source holds no such entity (rather than "not an entity I read")."""

    def reads(self, entity: str) -> bool:
        """True when ``read_entity`` reads ``entity`` at the source."""
        ...


@dataclass(frozen=True)
class ListedEntity:
    """One entity a backfill listing found: its id as the source's change feed names it,
    and its full state as :meth:`EntityReader.read_entity` would give it."""

    entity_id: str
    state: dict[str, Any]


@dataclass(frozen=True)
class ListPage:
    """One page of a backfill listing, and where the next one starts."""

    entities: list[ListedEntity]
    cursor: str | None  # where the next page starts; None when this page was the last
    total: int | None = None  # how many the whole listing holds, when the source says


@runtime_checkable
class EntityLister(Protocol):
    """A source that can list its entities for ``bridge backfill`` (history, not changes).

    Pages must not skip an entity that existed when the listing began, whatever is created
    meanwhile; an entity listed twice is harmless (the store de-duplicates it).
    """

    def lists(self, entity: str) -> bool:
        """Whether this source can list ``entity``."""
        ...

    async def list_entities(self, entity: str, since: date | None, cursor: str | None) -> ListPage:
        """The page of ``entity`` after ``cursor`` (None: the first), those created on or
        after ``since`` (None: all of them), oldest first where the source allows it."""
        ...


@runtime_checkable
class WebhookParser(Protocol):
    """Turns an inbound webhook body into changes; raises WebhookRejected when it cannot."""

    def parse_webhook(self, request: WebhookRequest) -> list[InboundEvent]:
        """Parse one authenticated webhook."""
        ...


@runtime_checkable
class BodyTokenAuth(Protocol):
    """A parser that checks the sender's token inside the body (``webhook.auth: connector``).

    Only connectors that say so may be configured that way; for the others it would leave
    the webhook open.
    """

    authenticates_body: bool


@runtime_checkable
class Sink(Protocol):
    """Writes an entity's latest state into the system; raises DeliveryError subclasses."""

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Apply the job idempotently (the same operation key must not apply twice); return
        the target's id of the entity when the target said it (the core keeps it in the id
        map), or None."""
        ...


@runtime_checkable
class BatchSink(Protocol):
    """A sink that can write several entities in one call (RetailCRM upload, Bitrix batch).

    The dispatcher hands it up to ``batch_size`` jobs when several are due; one due job,
    and any job ``batchable`` turns down, goes through ``deliver`` with a timeout of its own.
    """

    batch_size: int

    def batchable(self, job: DeliveryJob) -> bool:
        """Whether ``job`` may ride in a batch (one a batch refused before goes alone)."""
        ...

    async def deliver_batch(self, jobs: Sequence[DeliveryJob]) -> list[DeliveryError | str | None]:
        """Apply the jobs; per job, the target's id of the entity (or None when the target
        did not say) when it landed, or the error that stopped it.

        Raising a DeliveryError instead means the whole batch failed alike.
        """
        ...


@runtime_checkable
class BalanceMirror(Protocol):
    """A system that shows customers the master's balance (a Bitrix contact field).

    After every bonus change the bonus service stores a ``balance`` change of the customer
    (source ``_bonus``, the master's customer id), routed to each such system; its delivery
    reads the balance from the master then, so several changes make one write.
    """

    mirrors_balances: bool


@runtime_checkable
class Lifecycle(Protocol):
    """Connectors holding sessions or pools open them here and close them on shutdown."""

    async def start(self) -> None:
        """Open sessions; may raise to refuse start-up."""
        ...

    async def close(self) -> None:
        """Release what start() opened."""
        ...


@dataclass(frozen=True)
class PollResult:
    """Changes read from a source, the cursor after them, and whether more are waiting."""

    events: list[InboundEvent]
    cursor: str
    more: bool = False


@runtime_checkable
class Source(Protocol):
    """A system the bridge polls for changes (a history feed, ``GetChanges``)."""

    poll_interval: float  # seconds between polls when nothing more waits; 0 turns polling off
    feeds: tuple[str, ...]  # the change feeds polled, each with its own cursor

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        """Changes of ``feed`` after ``cursor`` (None: from where the connector chooses)."""
        ...


@runtime_checkable
class StartPositions(Protocol):
    """A source whose new feeds start at "now" instead of replaying the history there.

    Before the daemon reports ready, the poller stores a start position for every feed
    that has no cursor yet, so a change made after ready is never taken for old history.
    """

    async def start_position(self, feed: str) -> str:
        """The cursor after every change ``feed`` holds now (asks the system; may raise)."""
        ...

    def start_position_at(self, feed: str, moment: datetime) -> str:
        """A cursor meaning "the changes made from ``moment`` (UTC) on", stored without
        asking the system when it cannot answer at start-up; ``poll`` resolves it later."""
        ...


# A source that merged one entity into another (RetailCRM's ``combinedTo``) reports the
# absorbed one with this action and the survivor's id under this payload key; the poller
# records in the id map that the absorbed id now means the survivor before storing it.
MERGED_ACTION = "merged"
MERGED_INTO = "merged_into"


@runtime_checkable
class Probe(Protocol):
    """``bridge check --probe``: reach the system with the configured credentials."""

    async def probe(self) -> str:
        """A one-line description of what answered; raise DeliveryError on failure."""
        ...


@runtime_checkable
class Features(Protocol):
    """``bridge check``: which of the bridge's features the system as configured enables."""

    def features(self) -> list[str]:
        """One line per feature: on or off, and why."""
        ...


@runtime_checkable
class Emulator(Protocol):
    """A sandbox copy of a system on loopback, where its connector is configured to call."""

    url: str

    async def start(self) -> None:
        """Listen."""
        ...

    async def stop(self) -> None:
        """Stop listening."""
        ...


@runtime_checkable
class SandboxProvider(Protocol):
    """A connector type that ships an emulator for ``sandbox.enabled``."""

    def create_emulator(self, name: str, system: SystemSettings, options: Any) -> Emulator:
        """An emulator serving where system ``name``'s options point."""
        ...


class ConnectorType(Protocol):
    """The entry-point object: validates options and builds a connector for one system."""

    options_model: type[BaseModel]

    def create(self, name: str, system: SystemSettings, options: Any) -> object:
        """A connector for system ``name``; ``options`` is an ``options_model`` instance."""
        ...
