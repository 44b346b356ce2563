"""A recording target: a real HTTP server on loopback that applies upserts idempotently.

It behaves as the real targets do for us: an operation key it has applied is acknowledged
again without applying twice (RetailCRM and 1C upsert by external id). It keeps how often
each key was *received* apart from which keys were *applied* to which entity, so a test
can tell a harmless resend (same key) from a duplicate write (a second key for one change),
and it can be told to fail.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    """What the next requests should get."""

    status: int = 0  # 0: behave; else answer this status
    count: int = -1  # how many requests get it (-1: until cleared)
    retry_after: str | None = None
    delay: float = 0.0
    after_apply: bool = False  # apply the write, then answer the fault (a lost response)


@dataclass
class TargetState:
    """Everything the target has seen."""

    received: Counter[str] = field(default_factory=Counter)  # operation key -> requests
    applied: dict[str, str] = field(default_factory=dict)  # operation key -> entity id
    state: dict[str, Any] = field(default_factory=dict)  # entity id -> last state
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    fault: Fault = field(default_factory=Fault)
    feed: list[dict[str, Any]] = field(default_factory=list)  # a change feed to poll
    batches: list[int] = field(default_factory=list)  # sizes of the batch calls received
    refuse: set[str] = field(default_factory=set)  # entity ids a batch call refuses
    feed_delay: float = 0.0  # seconds each /changes answer takes


class TargetRoutes:
    """The recording target's handlers over one :class:`TargetState`."""

    def __init__(self, state: TargetState) -> None:
        self.state = state

    async def apply(self, request: web.Request) -> web.Response:
        state = self.state
        body = await request.json()
        state.requests.append(body)
        state.request_times.append(asyncio.get_running_loop().time())
        fault = state.fault
        if fault.delay:
            await asyncio.sleep(fault.delay)
        key = body["operation_key"]
        state.received[key] += 1
        if fault.after_apply and key not in state.applied:
            state.applied[key] = body["entity_id"]
            state.state[body["entity_id"]] = body["state"]
        if fault.status and fault.count != 0:
            if fault.count > 0:
                fault.count -= 1
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.json_response({"error": "injected"}, status=fault.status, headers=headers)
        if key not in state.applied:
            state.applied[key] = body["entity_id"]
            state.state[body["entity_id"]] = body["state"]
        return web.json_response({"ok": True})

    async def set_fault(self, request: web.Request) -> web.Response:
        state = self.state
        data = await request.json()
        state.fault = Fault(**data)
        return web.json_response({"ok": True})

    async def get_state(self, _request: web.Request) -> web.Response:
        state = self.state
        return web.json_response(
            {"received": dict(state.received), "applied": state.applied, "state": state.state}
        )

    async def get_changes(self, request: web.Request) -> web.Response:
        state = self.state
        await asyncio.sleep(state.feed_delay)
        since = int(request.query.get("since", "0"))
        items = [c for c in state.feed if c["no"] > since][:2]  # small pages: paging is tested
        last = items[-1]["no"] if items else since
        return web.json_response({"items": items, "last": last, "more": last < len(state.feed)})

    async def add_change(self, request: web.Request) -> web.Response:
        state = self.state
        change = await request.json()
        state.feed.append({**change, "no": len(state.feed) + 1})
        return web.json_response({"no": len(state.feed)})

    async def apply_batch(self, request: web.Request) -> web.Response:
        state = self.state
        body = await request.json()
        state.batches.append(len(body["ops"]))
        results: list[dict[str, Any]] = []
        for op in body["ops"]:
            state.requests.append(op)
            if op["entity_id"] in state.refuse:
                results.append({"ok": False, "error": f"entity {op['entity_id']} refused"})
                continue
            key = op["operation_key"]
            state.received[key] += 1
            if key not in state.applied:
                state.applied[key] = op["entity_id"]
                state.state[op["entity_id"]] = op["state"]
            results.append({"ok": True})
        return web.json_response({"results": results})


def build_target_app(state: TargetState) -> web.Application:
    """The target's routes: POST /apply, POST /fault, GET /state, the change feed, batches."""
    routes = TargetRoutes(state)
    app = web.Application()
    app.router.add_post("/apply_batch", routes.apply_batch)
    app.router.add_get("/changes", routes.get_changes)
    app.router.add_post("/changes", routes.add_change)
    app.router.add_post("/apply", routes.apply)
    app.router.add_post("/fault", routes.set_fault)
    app.router.add_get("/state", routes.get_state)
    return app
