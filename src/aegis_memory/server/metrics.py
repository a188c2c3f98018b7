"""Prometheus metrics: HTTP traffic, service operations, embedding, ACE activity, index and
database pool.

One registry per app, so several apps in one process (tests, the SDK's local mode) stay apart.
With several worker processes (``aegis serve --workers N``) the values live in files under
``PROMETHEUS_MULTIPROC_DIR`` (``aegis serve`` sets it up) and every scrape, whichever worker
answers it, adds up all workers: prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from aegis_memory.server.middleware import WatchedSend

if TYPE_CHECKING:
    from aegis_memory.embeddings import Embedder
    from aegis_memory.service import MemoryService

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Latency buckets from a cached dedup hit (well under a millisecond) to a large import.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                   5, 10, 30)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware", "PrometheusTelemetry",
           "multiprocess_mode"]


def multiprocess_mode() -> bool:
    """True when workers share their values through files (several worker processes)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """Every series the server exports. Each is updated somewhere; ``tests/test_metrics.py``
    drives traffic and checks that all of them moved."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # HTTP, by route template (never the raw path: ids would explode the label set).
        self.requests = Counter(
            "aegis_http_requests_total", "HTTP requests by route and status.",
            ["method", "route", "status"], registry=r,
        )
        self.latency = Histogram(
            "aegis_http_request_duration_seconds", "HTTP request latency by route.",
            ["method", "route"], registry=r, buckets=LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "aegis_http_requests_in_flight", "HTTP requests being served right now.",
            registry=r, multiprocess_mode="livesum",
        )
        # Service operations, whichever interface (REST, MCP) asked for them.
        self.operations = Counter(
            "aegis_operations_total", "Service operations by name and outcome.",
            ["operation", "outcome"], registry=r,
        )
        self.operation_latency = Histogram(
            "aegis_operation_duration_seconds", "Service operation latency.",
            ["operation"], registry=r, buckets=LATENCY_BUCKETS,
        )
        self.memories_added = Counter(
            "aegis_memories_added_total", "New memories stored (adds, deltas, imports).",
            registry=r,
        )
        self.dedup_hits = Counter(
            "aegis_dedup_hits_total",
            "Adds answered with an existing identical memory instead of a new one.", registry=r,
        )
        # Embedding.
        self.embedding_latency = Histogram(
            "aegis_embedding_duration_seconds",
            "Time to embed one request's texts (cache lookups included).",
            registry=r, buckets=LATENCY_BUCKETS,
        )
        self.embedded_texts = Counter(
            "aegis_embedding_texts_total", "Texts sent to the embedder.", registry=r,
        )
        self.embedding_cache = Counter(
            "aegis_embedding_cache_requests_total", "Embedding cache lookups by result.",
            ["result"], registry=r,
        )
        # ACE.
        self.votes = Counter("aegis_votes_total", "Votes recorded, by kind.", ["vote"],
                             registry=r)
        self.reflections = Counter("aegis_reflections_total", "Reflections stored.",
                                   registry=r)
        self.sessions = Counter(
            "aegis_session_updates_total",
            "Sessions created or updated, by the status they are left in.", ["status"],
            registry=r,
        )
        self.features = Counter(
            "aegis_feature_updates_total",
            "Feature updates by outcome: passed, failed or updated (neither).", ["outcome"],
            registry=r,
        )
        # State, refreshed on each scrape and every few seconds.
        self.index_size = Gauge(
            "aegis_index_vectors", "Live vectors in the vector index.", registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.index_pending = Gauge(
            "aegis_index_pending_vectors",
            "Vectors searchable but not yet in the HNSW graph (scored exactly meanwhile).",
            registry=r, multiprocess_mode="livemostrecent",
        )
        self.pool_connections = Gauge(
            "aegis_db_pool_connections",
            "Database connections by pool and state (in_use, idle; summed over workers).",
            ["pool", "state"], registry=r, multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "aegis_db_pool_size", "Configured connections per pool (summed over workers).",
            ["pool"], registry=r, multiprocess_mode="livesum",
        )

    def refresh(self, service: MemoryService | None) -> None:
        """Read the state gauges off the running service."""
        if service is None:
            return
        if service.index.vector_count is not None:
            self.index_size.set(service.index.vector_count)
            self.index_pending.set(service.index.pending or 0)
        pools = getattr(service.store, "pool_status", None)
        if pools is None:
            return
        for name, status in pools().items():
            self.pool_size.labels(name).set(status.size)
            self.pool_connections.labels(name, "in_use").set(status.in_use)
            self.pool_connections.labels(name, "idle").set(status.idle)

    def exposition(self, service: MemoryService | None) -> bytes:
        """The text format of a scrape: this process's registry, or every worker's files."""
        self.refresh(service)
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    @staticmethod
    def process_exited() -> None:
        """Drop this worker's live gauges from the shared files (multiprocess mode)."""
        if multiprocess_mode():
            multiprocess.mark_process_dead(os.getpid())


class PrometheusTelemetry:
    """The service's ``Telemetry`` recorded into ``Metrics``."""

    def __init__(self, metrics: Metrics, embedder: Embedder | None = None) -> None:
        self.metrics = metrics
        self._embedder = embedder
        self._cache_seen = (0, 0)
        self._cache_lock = threading.Lock()

    def operation(self, name: str, seconds: float, ok: bool) -> None:
        self.metrics.operations.labels(name, "ok" if ok else "error").inc()
        self.metrics.operation_latency.labels(name).observe(seconds)

    def embedded(self, texts: int, seconds: float) -> None:
        self.metrics.embedding_latency.observe(seconds)
        self.metrics.embedded_texts.inc(texts)
        self._count_cache()

    def _count_cache(self) -> None:
        """Move the cache's own hit and miss counters into Prometheus (as increments, so
        that workers' counts add up)."""
        hits = getattr(self._embedder, "hits", None)
        misses = getattr(self._embedder, "misses", None)
        if hits is None or misses is None:
            return
        with self._cache_lock:
            seen_hits, seen_misses = self._cache_seen
            if hits > seen_hits:
                self.metrics.embedding_cache.labels("hit").inc(hits - seen_hits)
            if misses > seen_misses:
                self.metrics.embedding_cache.labels("miss").inc(misses - seen_misses)
            self._cache_seen = (max(hits, seen_hits), max(misses, seen_misses))

    def deduplicated(self, count: int) -> None:
        self.metrics.dedup_hits.inc(count)

    def memories_added(self, count: int) -> None:
        if count:
            self.metrics.memories_added.inc(count)

    def voted(self, vote: str) -> None:
        self.metrics.votes.labels(vote).inc()

    def reflected(self) -> None:
        self.metrics.reflections.inc()

    def session_changed(self, status: str) -> None:
        self.metrics.sessions.labels(status).inc()

    def feature_changed(self, outcome: str) -> None:
        self.metrics.features.labels(outcome).inc()


class MetricsMiddleware:
    """Counts every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        sent = WatchedSend(send)
        try:
            await self.app(scope, receive, sent)
        finally:
            status = sent.status or 500
            self.metrics.in_flight.dec()
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, name, str(status)).inc()
            self.metrics.latency.labels(method, name).observe(time.perf_counter() - started)
