"""Prometheus metrics: one registry per app, queue gauges read from the store at scrape."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bridge.store.protocol import Store
from bridge.store.records import Status

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Counters and histograms the app and the dispatcher update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bridge_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bridge_http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "bridge_events_received",
            "Inbound events by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "bridge_delivery_attempts",
            "Delivery attempts by target and outcome",
            ["target", "outcome"],
            registry=self.registry,
        )
        self.attempt_latency = Histogram(
            "bridge_delivery_attempt_duration_seconds",
            "Delivery attempt duration",
            ["target"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bonus_requests = Counter(
            "bridge_bonus_requests",
            "Bonus look-ups and reservations by outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.master_latency = Histogram(
            "bridge_master_call_duration_seconds",
            "Calls to the bonus master",
            ["master", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "bridge_breaker_open",
            "1 while a system's circuit breaker refuses calls",
            ["system"],
            registry=self.registry,
        )
        self.sms = Counter(
            "bridge_sms_messages",
            "Confirmation codes sent, by gateway and outcome (sent, failed)",
            ["gateway", "outcome"],
            registry=self.registry,
        )
        self.reservations = Gauge(
            "bridge_reservations",
            "Reservations by status",
            ["status"],
            registry=self.registry,
        )
        self.queue = Gauge(
            "bridge_queue_depth",
            "Deliveries by target and status (done excluded)",
            ["target", "status"],
            registry=self.registry,
        )
        self.oldest = Gauge(
            "bridge_oldest_pending_age_seconds",
            "Age of the oldest waiting delivery",
            ["target"],
            registry=self.registry,
        )
        # Labelled children of the hot series (routes, masters and outcomes are a few, and
        # these series are never cleared, unlike the queue gauges).
        self._per_request: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._per_master: dict[tuple[str, str], Histogram] = {}
        self._per_bonus: dict[tuple[str, str], Counter] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        key = (route, method, status)
        kept = self._per_request.get(key)
        if kept is None:  # labels() takes a lock and checks every label: once per key
            kept = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            self._per_request[key] = kept
        kept[0].inc()
        kept[1].observe(seconds)

    def observe_master(self, master: str, operation: str, seconds: float) -> None:
        """Time one answered call to the bonus master."""
        key = (master, operation)
        kept = self._per_master.get(key)
        if kept is None:
            kept = self._per_master[key] = self.master_latency.labels(master, operation)
        kept.observe(seconds)

    def count_bonus(self, operation: str, outcome: str) -> None:
        """Count one bonus look-up or reservation step by its outcome."""
        key = (operation, outcome)
        kept = self._per_bonus.get(key)
        if kept is None:
            kept = self._per_bonus[key] = self.bonus_requests.labels(operation, outcome)
        kept.inc()

    def observe_attempt(self, target: str, outcome: Status, seconds: float) -> None:
        """Count one delivery attempt."""
        self.attempts.labels(target, outcome.value).inc()
        self.attempt_latency.labels(target).observe(seconds)

    async def render(self, store: Store) -> bytes:
        """Refresh the queue gauges from the store and render the text format."""
        depth = await store.queue_depth()
        now = time.time()
        self.queue.clear()
        self.oldest.clear()
        oldest: dict[str, float] = {}
        for cell in depth:
            self.queue.labels(cell.target, cell.status.value).set(cell.count)
            if cell.oldest_at is not None:
                oldest[cell.target] = min(oldest.get(cell.target, now), cell.oldest_at)
        for cell in depth:
            self.oldest.labels(cell.target).set(max(0.0, now - oldest.get(cell.target, now)))
        self.reservations.clear()
        for status, count in (await store.count_reservations()).items():
            self.reservations.labels(status).set(count)
        return generate_latest(self.registry)
