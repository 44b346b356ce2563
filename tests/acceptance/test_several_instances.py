"""Three ``bridge serve`` on one PostgreSQL (issue 15, "Show" points 2 and 3).

Real ``bridge serve`` processes share a fresh database of their own. The RetailCRM emulator
runs in a process of its own (``tests/support/crm_process.py``) so it meters every request
of the three instances together against its one-second window; a recording target runs in
the test's loop and keeps every delivery it was sent.

1. 10,000 webhooks (changes of a few hundred orders, each changed many times) spread round
   robin over three instances, routed to RetailCRM and to the recorder, while one instance
   is killed with SIGKILL twice and started again: every acknowledged event is delivered
   exactly once, each order's changes arrive in order, and RetailCRM never sees more than
   10 requests in a second.
2. The RetailCRM history poller runs on one instance of three; killed, another takes its
   feed over within 30 s, and each change a manager made before, during and after the kill
   is read in exactly one poll that was stored and delivered once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml

from tests.support.configs import HOOK_TOKEN
from tests.support.crm_process import CrmProcess, busiest_second
from tests.support.daemon import Daemon, cli_json, free_port
from tests.support.mirroring import BRIDGE_KEY, create_order, edit_order, manager_call
from tests.support.postgres import create_database, drop_database
from tests.support.recorder import TargetEmulator

ORDERS = 250  # distinct orders the webhooks change
WEBHOOKS = 10_000  # the number: 40 changes of each order
SENDERS = 24  # webhooks in flight at once
RATE = 10  # RetailCRM's requests per second per key (retailcrm-api.md §1.6)
FEED_LEASE = "poll:crm:orders"
HOOK = {"Authorization": f"Bearer {HOOK_TOKEN}"}


def instance_config(
    folder: Path, database: str, port: int, crm: str, rec: str, *, crm_poll: float
) -> Path:
    """One instance's config: only the HTTP port differs between instances."""
    delivery = {
        "concurrency": 4,
        "timeout_seconds": 5,
        "retry": {"base_seconds": 0.5, "cap_seconds": 3, "max_attempts": 50},
    }
    config = {
        # The delivery lease: a killed instance's deliveries return to others after 30 s
        # (shorter than the default 60 s to keep the test short; 10 s was too short for an
        # attempt on this 2-core host under three instances: a live holder lost its lease).
        "store": {"url": database, "lease_seconds": 30},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "info", "format": "json"},
        "systems": {
            "shop": {
                "type": "recorder",  # generic JSON webhooks; never read back
                "webhook": {"auth": "bearer", "token": HOOK_TOKEN},
                "delivery": {"timeout_seconds": 5},
                "options": {"url": rec},
            },
            "crm": {
                "type": "retailcrm",
                "delivery": delivery,
                "options": {
                    "url": crm,
                    "api_key": BRIDGE_KEY,
                    "rate_limit": RATE,
                    "poll_interval": crm_poll,
                },
            },
            "rec": {"type": "recorder", "delivery": delivery, "options": {"url": rec}},
        },
        "mirror": {
            "routes": [
                {"source": "shop", "entity": "order", "targets": ["crm", "rec"]},
                {"source": "crm", "entity": "order", "targets": ["rec"]},
            ]
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Cluster:
    """The emulators, the database and three instances of the bridge."""

    database: str
    crm: CrmProcess
    rec: TargetEmulator
    daemons: list[Daemon]

    async def start(self) -> None:
        """Start every instance (they migrate the fresh database under a lock)."""
        await asyncio.gather(*(d.start(timeout=60) for d in self.daemons))

    async def query(self, text: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one query on the shared database."""
        async with await psycopg.AsyncConnection.connect(self.database, autocommit=True) as conn:
            cursor = await conn.execute(text, args)
            return await cursor.fetchall()


@asynccontextmanager
async def cluster(tmp_path: Path, *, crm_poll: float) -> AsyncIterator[Cluster]:
    """A fresh database, the emulators and three instances; everything stopped after."""
    database = create_database()
    crm: CrmProcess | None = None
    rec = TargetEmulator(f"http://127.0.0.1:{free_port()}")
    daemons: list[Daemon] = []
    try:
        crm = await CrmProcess.start(RATE)
        await rec.start()
        for name in "abc":
            port = free_port()
            path = instance_config(
                tmp_path / name, database, port, crm.url, rec.url, crm_poll=crm_poll
            )
            daemons.append(Daemon(path, port))
        yield Cluster(database, crm, rec, daemons)
    finally:
        for daemon in daemons:
            if daemon.proc is not None and daemon.proc.returncode is None:
                daemon.proc.kill()
                await daemon.proc.wait()
        await rec.stop()
        if crm is not None:
            await crm.stop()
        drop_database(database)


def change(order: int, seq: int) -> dict[str, Any]:
    """Change ``seq`` of order ``order`` in the generic format, carrying a RetailCRM order
    (the route has no mapping: the connector writes the ``document``)."""
    document = {
        "firstName": "Анна",
        "lastName": f"Покупатель {order}",
        "phone": f"+7916{order:07d}",
        "status": "new",
        "items": [
            {"offer": {"externalId": "SKU-100245"}, "quantity": 1 + seq % 3, "initialPrice": 89.9}
        ],
        "customerComment": f"{seq:03d}",  # the change's place in the order's sequence
    }
    return {
        "event_id": f"o{order}-c{seq}",
        "entity": "order",
        "id": f"o{order}",
        "action": "changed",
        "data": {"document": document},
    }


@dataclass
class Sender:
    """Posts webhooks round robin; one the chosen instance does not acknowledge (killed,
    starting) goes to the next, as a load balancer would send it on."""

    http: aiohttp.ClientSession
    daemons: list[Daemon]
    acked: dict[str, int] = field(default_factory=dict)  # event_id -> instance index
    duplicates: int = 0
    refused: int = 0  # attempts an instance did not acknowledge

    async def post(self, event: dict[str, Any], first: int) -> None:
        """Post until one instance acknowledges (2xx)."""
        for attempt in range(200):
            index = (first + attempt) % len(self.daemons)
            url = f"{self.daemons[index].url}/hooks/shop"
            try:
                async with self.http.post(url, json=event, headers=HOOK) as resp:
                    answer = await resp.json(content_type=None)
                    if 200 <= resp.status < 300:
                        self.acked[event["event_id"]] = index
                        self.duplicates += bool(answer.get("duplicate"))
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.refused += 1
            await asyncio.sleep(0.02)
        raise AssertionError(f"no instance acknowledged {event['event_id']}")

    async def send(self, orders: int, changes: int) -> None:
        """Change ``c`` of every order, then change ``c + 1``: a change is sent only after
        the one before it of the same order was acknowledged, as a shop sends them."""
        gate = asyncio.Semaphore(SENDERS)
        spread = itertools.count()

        async def one(event: dict[str, Any]) -> None:
            async with gate:
                await self.post(event, next(spread))

        for seq in range(changes):
            await asyncio.gather(*(one(change(o, seq)) for o in range(orders)))


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    """Ask ``check`` every 0.5 s until it holds; the seconds it took."""
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < seconds, f"{what}: not within {seconds:g} s"
        await asyncio.sleep(0.5)
    return time.monotonic() - began


def comment_of(state: Any) -> int:
    """The change number a recorded state carries."""
    return int(state["document"]["customerComment"])


def applied_events(requests: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Operation key -> the events of the request that applied it (the first one)."""
    applied: dict[str, list[str]] = {}
    for body in requests:
        applied.setdefault(body["operation_key"], body["events"])
    return applied


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_three_instances_10000_webhooks_two_kills_each_event_once_in_order_under_10_per_s(
    tmp_path: Path,
) -> None:
    changes = WEBHOOKS // ORDERS
    began = time.monotonic()
    async with cluster(tmp_path, crm_poll=5) as c, aiohttp.ClientSession() as http:
        await c.start()
        started = time.monotonic()
        sender = Sender(http, c.daemons)
        victim = c.daemons[1]
        kills: list[float] = []

        async def kill_twice() -> None:
            for share in (0.3, 0.65):
                while len(sender.acked) < share * WEBHOOKS:
                    await asyncio.sleep(0.05)
                await victim.kill9()
                kills.append(time.monotonic() - started)
                await asyncio.sleep(1)
                await victim.start(timeout=60)

        killer = asyncio.create_task(kill_twice())
        await sender.send(ORDERS, changes)
        sent = time.monotonic() - started
        await killer
        assert len(sender.acked) == WEBHOOKS

        async def all_done() -> bool:
            rows = await c.query("SELECT status, count(*) FROM deliveries GROUP BY status")
            counts = dict(rows)
            assert not counts.get("dead"), counts
            return set(counts) == {"done"}

        await wait_for(all_done, 300, "every delivery done")
        delivered = time.monotonic() - started

        crm = await c.crm.observed()
        listed = await cli_json(
            c.daemons[0].config, "events", "list", "--source", "shop", "--limit", "10000"
        )
        store = await store_checks(c)
        for daemon in c.daemons:
            assert await daemon.stop() == 0

    # Store: every acknowledged event once, each in one delivery per target, done once.
    assert {e["source_key"] for e in listed["events"]} == set(sender.acked)
    assert {e["status"] for e in listed["events"]} == {"done"}
    assert store["events"] == WEBHOOKS

    # The recorder: every event in exactly one applied write, each order's writes in order.
    requests = c.rec.state.requests
    applied = applied_events(requests)
    per_event = Counter(e for events in applied.values() for e in events)
    assert set(per_event) == store["event_ids"], "no event lost"
    assert set(per_event.values()) == {1}, "no event written twice"
    seen: dict[str, list[int]] = defaultdict(list)
    for body in requests:
        seen[body["entity_id"]].append(comment_of(body["state"]))
    assert len(seen) == ORDERS
    for entity_id, numbers in seen.items():
        assert numbers == sorted(numbers), f"{entity_id}: an older change after a newer one"
        assert numbers[-1] == changes - 1
        assert comment_of(c.rec.state.state[entity_id]) == changes - 1

    # RetailCRM: one order per shop order, in its last state, its changes in order.
    ours = [o for o in crm["orders"] if str(o["externalId"]).startswith("shop-")]
    assert Counter(o["externalId"] for o in ours) == Counter(f"shop-o{i}" for i in range(ORDERS))
    assert {o["comment"] for o in ours} == {f"{changes - 1:03d}"}
    writes: dict[str, list[int]] = defaultdict(list)
    for record in crm["history"]:
        if record["who"] == "bridge" and record["comment"] is not None:
            writes[record["external_id"]].append(int(record["comment"]))
    for external_id, numbers in writes.items():
        assert numbers == sorted(set(numbers)), f"{external_id}: RetailCRM got {numbers}"
    arrivals = crm["arrivals"]["bridge"]
    window = busiest_second(arrivals)
    busiest = len(window)
    gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(window)]
    assert busiest <= RATE, (
        f"{busiest} requests in one second, {gaps} ms apart, at {window[0] - started:.1f} s"
        f" (the emulator's loop was at most {crm['stall'] * 1000:.0f} ms late)"
    )
    assert crm["stats"]["rateLimited"] == 0, crm["stats"]

    print(
        f"\nthree instances, {WEBHOOKS} webhooks ({ORDERS} orders x {changes} changes):"
        f" acknowledged in {sent:.1f} s ({sender.refused} sends refused by a killed or"
        f" starting instance, {sender.duplicates} answered as duplicates), instance b killed"
        f" at {kills[0]:.1f} s and {kills[1]:.1f} s; every delivery done at {delivered:.1f} s"
        f" ({time.monotonic() - began:.1f} s in all)\n"
        f"  store: {store['deliveries']} deliveries for {WEBHOOKS * 2} (event, target) pairs,"
        f" {store['lease_expired']} returned by an expired lease, attempts {store['attempts']}\n"
        f"  RetailCRM: {len(arrivals)} requests from the bridge's key"
        f" ({crm['byKey']}), at most {busiest} in any one second,"
        f" {crm['stats']['rateLimited']} answered 503; {sum(map(len, writes.values()))}"
        f" order states written\n"
        f"  recorder: {len(requests)} requests, {len(applied)} operations applied"
    )


async def store_checks(c: Cluster) -> dict[str, Any]:
    """The store's side: each event in one delivery per target, each delivery done by
    exactly one successful attempt; figures for the report."""
    events = await c.query("SELECT id, status FROM events WHERE source = 'shop'")
    assert {status for _id, status in events} == {"done"}
    twice = await c.query(
        "SELECT de.event_id, d.target, count(*) FROM delivery_events de"
        " JOIN deliveries d ON d.id = de.delivery_id WHERE d.source = 'shop'"
        " GROUP BY 1, 2 HAVING count(*) <> 1"
    )
    assert twice == [], twice
    pairs = await c.query(
        "SELECT count(*) FROM delivery_events de JOIN deliveries d ON d.id = de.delivery_id"
        " WHERE d.source = 'shop'"
    )
    assert pairs == [(2 * len(events),)]
    done = await c.query(
        "SELECT d.id, count(h.id) FROM deliveries d LEFT JOIN history h"
        " ON h.delivery_id = d.id AND h.kind = 'attempt' AND h.outcome = 'done'"
        " WHERE d.source = 'shop' GROUP BY d.id HAVING count(h.id) <> 1"
    )
    if done:
        story = await c.query(
            "SELECT delivery_id, round((at - (SELECT min(at) FROM history))::numeric, 2), kind,"
            " attempt, outcome, message, actor, round(duration_ms::numeric) FROM history"
            " WHERE delivery_id = ANY(%s) ORDER BY delivery_id, id",
            [d for d, _count in done[:3]],
        )
        lines = "\n".join(map(str, story))
        raise AssertionError(f"{len(done)} deliveries not done exactly once:\n{lines}")
    deliveries = await c.query("SELECT count(*) FROM deliveries WHERE source = 'shop'")
    expired = await c.query("SELECT count(*) FROM history WHERE kind = 'lease_expired'")
    attempts = await c.query(
        "SELECT outcome, count(*) FROM history WHERE kind = 'attempt' GROUP BY 1"
    )
    return {
        "events": len(events),
        "event_ids": {f"evt_{eid}" for eid, _status in events},
        "deliveries": deliveries[0][0],
        "lease_expired": expired[0][0],
        "attempts": dict(attempts),
    }


@dataclass
class Manager:
    """A RetailCRM manager editing orders with the official client (their own key)."""

    crm: str
    orders: list[int] = field(default_factory=list)  # RetailCRM's ids
    last: dict[str, str] = field(default_factory=dict)  # id -> the last comment written
    edits: int = 0
    times: list[float] = field(default_factory=list)  # when each edit was answered

    async def create(self, count: int) -> None:
        """Create ``count`` orders."""
        for n in range(count):
            order = {
                "externalId": f"m-{n}",
                "firstName": "Олег",
                "lastName": f"Покупатель {n}",
                "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 500}],
                "customerComment": "m-0",
            }
            answer = await manager_call(self.crm, create_order(order))
            self.orders.append(int(answer["id"]))
            self.last[str(answer["id"])] = "m-0"
            await asyncio.sleep(0.2)  # the manager's key has its own 10/s too

    async def edit_for(self, seconds: float, pause: float = 0.2) -> None:
        """Edit the orders in turn for ``seconds``, a comment each time."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.edits += 1
            order = self.orders[self.edits % len(self.orders)]
            comment = f"m-{self.edits}"
            await manager_call(self.crm, edit_order({"id": order, "customerComment": comment}))
            self.last[str(order)] = comment
            self.times.append(time.monotonic())
            await asyncio.sleep(pause)


async def holder_of(c: Cluster, lease: str) -> tuple[str, float] | None:
    """Who holds ``lease`` and for how many seconds more (by the database's clock)."""
    rows = await c.query(
        "SELECT holder, until - extract(epoch FROM clock_timestamp()) FROM bridge_leases"
        " WHERE name = %s",
        lease,
    )
    return (str(rows[0][0]), float(rows[0][1])) if rows else None


def daemon_of(c: Cluster, holder: str) -> int:
    """The index of the instance a lease holder (host:pid:random) names."""
    pid = int(holder.split(":")[1])
    found = [i for i, d in enumerate(c.daemons) if d.proc is not None and d.proc.pid == pid]
    assert len(found) == 1, (holder, [d.proc and d.proc.pid for d in c.daemons])
    return found[0]


def leases_taken(daemon: Daemon, feed: str) -> int:
    """How often an instance's log says it took the poller lease of ``feed``."""
    taken = 0
    for line in daemon.log.read_text(encoding="utf-8").splitlines():
        if '"poller_lease_taken"' in line:
            entry = json.loads(line)
            taken += (entry.get("system"), entry.get("feed")) == ("crm", feed)
    return taken


def stored_reads(crm: dict[str, Any], keys: set[str]) -> dict[int, set[str]]:
    """Manager history record id -> the keys of the stored events it was read into.

    The poller folds each page into one event per order, keyed by the order and the last
    record folded (``connectors/retailcrm/history.py``). Every page the emulator served the
    bridge is folded the same way here; a page whose event keys the store holds was stored
    (one that was not, say read by an instance killed before its commit, is read again)."""
    records = {r["id"]: r for r in crm["history"]}
    found: dict[int, set[str]] = defaultdict(set)
    for read in crm["historyReads"]:
        news = [records[i] for i in read["ids"] if records[i]["who"] != "bridge"]
        last: dict[str, int] = {}
        for record in news:
            last[record["entity_id"]] = max(last.get(record["entity_id"], 0), record["id"])
        for record in news:
            key = f"orders-history:{record['entity_id']}:{last[record['entity_id']]}"
            if key in keys:
                found[record["id"]].add(key)
    return found


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_the_history_poller_runs_on_one_instance_and_moves_within_30_s_when_it_dies(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, crm_poll=1) as c:
        await c.start()

        async def feeds_started() -> bool:
            rows = await c.query("SELECT count(*) FROM cursors WHERE source = 'crm'")
            return rows == [(3,)] and await holder_of(c, FEED_LEASE) is not None

        await wait_for(feeds_started, 30, "the feeds' start positions")
        first = await holder_of(c, FEED_LEASE)
        assert first is not None
        victim = daemon_of(c, first[0])
        manager = Manager(c.crm.url)
        await manager.create(10)
        await manager.edit_for(4)
        taken = [leases_taken(d, "orders") for d in c.daemons]
        assert taken == [int(i == victim) for i in range(3)], taken

        killed_at = time.monotonic()
        await c.daemons[victim].kill9()
        editing = asyncio.create_task(manager.edit_for(60))

        async def taken_over() -> bool:
            now = await holder_of(c, FEED_LEASE)
            return now is not None and now[0] != first[0] and now[1] > 0

        takeover = await wait_for(taken_over, 40, "another instance polling the feed")
        new = await holder_of(c, FEED_LEASE)
        assert new is not None
        heir = daemon_of(c, new[0])
        assert heir != victim
        editing.cancel()
        await asyncio.gather(editing, return_exceptions=True)
        await manager.edit_for(4)
        last_edit = max(
            r["id"] for r in (await c.crm.observed())["history"] if r["who"] == "manager"
        )

        async def all_read_and_delivered() -> bool:
            cursor = await c.query(
                "SELECT value FROM cursors WHERE source = 'crm' AND name = 'orders'"
            )
            waiting = await c.query("SELECT count(*) FROM deliveries WHERE status <> 'done'")
            return int(cursor[0][0]) >= last_edit and waiting == [(0,)]

        await wait_for(all_read_and_delivered, 30, "every change read and delivered")
        crm = await c.crm.observed()
        events = await c.query(
            "SELECT id, source_key, status FROM events WHERE source = 'crm' AND entity = 'order'"
        )
        done = await c.query(
            "SELECT d.id, count(h.id) FROM deliveries d LEFT JOIN history h"
            " ON h.delivery_id = d.id AND h.kind = 'attempt' AND h.outcome = 'done'"
            " WHERE d.source = 'crm' GROUP BY d.id HAVING count(h.id) <> 1"
        )
        for daemon in c.daemons:
            if daemon.proc is not None and daemon.proc.returncode is None:
                assert await daemon.stop() == 0

    first_poll = min(r["at"] for r in crm["historyReads"] if r["at"] > killed_at)
    keys = {str(key) for _id, key, _status in events}
    assert {status for _id, _key, status in events} == {"done"}
    assert done == [], f"deliveries not done exactly once: {done}"
    changes = [r for r in crm["history"] if r["who"] == "manager"]
    during = [t for t in manager.times if killed_at < t < killed_at + takeover]
    read_in = stored_reads(crm, keys)
    skipped = [r["id"] for r in changes if not read_in.get(r["id"])]
    twice = {r["id"]: read_in[r["id"]] for r in changes if len(read_in.get(r["id"], ())) > 1}
    assert skipped == [], f"history records never read into a stored event: {skipped}"
    assert twice == {}, f"history records read into two stored events: {twice}"

    # The recorder: each event in exactly one applied write; each order's last state.
    applied = applied_events(c.rec.state.requests)
    per_event = Counter(e for events_of in applied.values() for e in events_of)
    assert set(per_event) == {f"evt_{eid}" for eid, _key, _status in events}
    assert set(per_event.values()) == {1}
    for order, comment in manager.last.items():
        assert c.rec.state.state[order]["customerComment"] == comment, order
    assert takeover <= 30, f"taken over after {takeover:.1f} s"
    print(
        f"\npoller failover: instance {'abc'[victim]} held {FEED_LEASE}, killed; instance"
        f" {'abc'[heir]} holds it {takeover:.1f} s later (first history read after the kill"
        f" at {first_poll - killed_at:.1f} s); {len(changes)} manager changes"
        f" ({len(during)} while no instance polled), {len(events)} events, each record read"
        f" into exactly one stored event, each event written once"
    )
