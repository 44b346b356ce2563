"""A portal's request budget across instances: this process's leaky bucket first, then the
schedule every instance sharing the store takes turns from (``bridge.budgets``), so several
bridges together stay under the portal's bucket (bitrix.md §1.6)."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from bridge import budgets
from connectors.bitrix.client import LeakyBucket


class SharedBucket:
    """The client's ``Limiter``: the local bucket, then a shared turn of the portal's."""

    def __init__(self, bucket: LeakyBucket, portal_url: str) -> None:
        self._bucket = bucket
        host = urlsplit(portal_url).hostname or portal_url
        # The portal names the budget; hashed, so no webhook secret of the URL leaks.
        self.key = "bitrix:" + hashlib.sha256(host.encode()).hexdigest()[:12]

    async def acquire(self) -> None:
        """Wait for room in this process's bucket, then for the portal's shared turn."""
        await self._bucket.acquire()
        burst = max(1, int(self._bucket.capacity))
        await budgets.take_turn(self.key, 1.0 / self._bucket.rate, burst)

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (Bitrix said 503), here and in every instance."""
        self._bucket.hold(seconds)
        budgets.hold_shared(self.key, seconds)
