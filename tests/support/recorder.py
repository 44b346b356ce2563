"""A test connector: delivers each job over HTTP to a recording target server.

Registered through the ``bridge.connectors`` entry point by the dist-info folder in
``tests/plugins`` (on ``sys.path`` in tests and on ``PYTHONPATH`` for subprocesses), the
same way real connectors are found. Its errors follow the target's status codes like a
real connector's ``errors.py`` would: 5xx → transient, 429 → rate limited, 401 → auth,
other 4xx → permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from bridge.connector import DeliveryJob, PollResult
from bridge.errors import AuthError, DeliveryError, PermanentError, RateLimited, TransientError
from bridge.settings import SystemSettings
from bridge.store.records import InboundEvent
from tests.support.target import TargetState, build_target_app


class RecorderOptions(BaseModel):
    """Where the recording target listens."""

    model_config = ConfigDict(extra="forbid")
    url: str


class RecorderConnector:
    """Sink (and generic webhook source) for tests."""

    def __init__(self, name: str, options: RecorderOptions, timeout: float) -> None:
        self.name = name
        self.url = options.url.rstrip("/")
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, job: DeliveryJob) -> None:
        assert self._session is not None
        latest = job.events[-1]
        body: dict[str, Any] = {
            "operation_key": job.operation_key,
            "entity": job.entity,
            "entity_id": job.entity_id,
            "source": job.source,
            "attempt": job.attempt,
            "events": [e.id for e in job.events],
            # The source's state when the core could re-read it, else the change's payload.
            "state": dict(job.state) if job.state is not None else latest.payload,
            # What the route's mapping made of it (None without a mapping file).
            "document": dict(job.document) if job.document is not None else None,
        }
        try:
            async with self._session.post(f"{self.url}/apply", json=body) as resp:
                text = await resp.text()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"target unreachable: {exc!r}") from exc
        if status < 300:
            return
        message = f"HTTP {status}: {text[:200]}"
        if status == 429:
            raise RateLimited(message, float(retry_after) if retry_after else None)
        if status >= 500:
            raise TransientError(message)
        if status in (401, 403):
            raise AuthError(message)
        raise PermanentError(message)

    async def probe(self) -> str:
        assert self._session is not None
        try:
            async with self._session.get(f"{self.url}/state") as resp:
                if resp.status != 200:
                    raise AuthError(f"HTTP {resp.status}")
                state = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"target unreachable: {exc!r}") from exc
        return f"recording target with {len(state['applied'])} applied operations"


class BatchConnector(RecorderConnector):
    """A recorder that writes up to five entities per call, like an upload endpoint."""

    batch_size = 5

    def batchable(self, job: DeliveryJob) -> bool:
        return job.attempt == 1  # a retry goes alone

    async def deliver_batch(self, jobs: Sequence[DeliveryJob]) -> list[DeliveryError | str | None]:
        assert self._session is not None
        ops = [
            {
                "operation_key": j.operation_key,
                "entity_id": j.entity_id,
                "state": j.events[-1].payload,
            }
            for j in jobs
        ]
        try:
            async with self._session.post(f"{self.url}/apply_batch", json={"ops": ops}) as resp:
                results = (await resp.json())["results"]
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"target unreachable: {exc!r}") from exc
        return [None if r["ok"] else PermanentError(r["error"]) for r in results]


class FeedConnector(RecorderConnector):
    """A recorder that is also a polled source: it reads the target's change feed."""

    poll_interval = 0.05
    feeds = ("changes",)

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        assert self._session is not None
        since = int(cursor or 0)
        try:
            async with self._session.get(f"{self.url}/changes", params={"since": since}) as resp:
                answer: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"feed unreachable: {exc!r}") from exc
        events = [
            InboundEvent(f"msg-{c['no']}", c["entity"], c["id"], "changed", c.get("data", {}))
            for c in answer["items"]
        ]
        return PollResult(events, str(answer["last"]), answer["more"])


class TargetEmulator:
    """The recording target as a sandbox emulator, listening where the options point."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.state = TargetState()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        parts = urlsplit(self.url)
        self._runner = web.AppRunner(build_target_app(self.state))
        await self._runner.setup()
        await web.TCPSite(self._runner, parts.hostname, parts.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class RecorderType:
    """Entry-point object for ``type: recorder``."""

    options_model = RecorderOptions
    connector_class: type[RecorderConnector] = RecorderConnector

    def create(self, name: str, system: SystemSettings, options: RecorderOptions) -> object:
        return self.connector_class(name, options, system.delivery.timeout_seconds)

    def create_emulator(
        self, name: str, system: SystemSettings, options: RecorderOptions
    ) -> TargetEmulator:
        return TargetEmulator(options.url)


class BatchType(RecorderType):
    """Entry-point object for ``type: batcher``."""

    connector_class = BatchConnector


class FeedType(RecorderType):
    """Entry-point object for ``type: feed``."""

    connector_class = FeedConnector


RECORDER = RecorderType()
BATCHER = BatchType()
FEED = FeedType()
