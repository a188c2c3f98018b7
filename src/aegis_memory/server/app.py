"""The FastAPI application factory.

``create_app(settings)`` builds a self-contained app: its lifespan opens the store, the
embedder and the index, and closes them again, so the same factory serves ``aegis serve``,
tests and the SDK's in-process local mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from aegis_memory import __version__
from aegis_memory.config import Settings
from aegis_memory.embeddings import build_embedder
from aegis_memory.server import dashboard_ui, errors, logs
from aegis_memory.server.metrics import Metrics, MetricsMiddleware, PrometheusTelemetry
from aegis_memory.server.middleware import BodyLimitMiddleware, RequestIdMiddleware
from aegis_memory.server.ratelimit import RateLimitHeadersMiddleware, limits_for
from aegis_memory.server.routes import admin, dashboard, keys, memories, ops
from aegis_memory.server.routes import progress as progress_routes
from aegis_memory.service import MemoryService
from aegis_memory.store import open_store

log = logging.getLogger("aegis_memory.server")

DESCRIPTION = (
    "Memory for multi-agent AI systems: scoped memories, semantic search, handoffs, votes. "
    "Authenticate with `Authorization: Bearer <key>` (the development key is `dev-key`)."
)


async def _maintenance(service: MemoryService, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await service.maintenance()
        except Exception:  # keep the loop alive; the next round retries
            log.exception("maintenance round failed")


async def _refresh_metrics(metrics: Metrics, service: MemoryService, every: float) -> None:
    """Keep this worker's state gauges current between scrapes: with several workers a
    scrape is answered by one of them and reads the others' last values from their files."""
    while True:
        try:
            metrics.refresh(service)
        except Exception:  # a gauge is not worth a dead task
            log.exception("refreshing the metrics failed")
        await asyncio.sleep(every)


def create_app(
    settings: Settings | None = None, *, configure_logging: bool = True, serve_mcp: bool = True
) -> FastAPI:
    """Build the app. Embedded use (the SDK's local mode) passes ``configure_logging=False``:
    a library must leave the host program's logging alone. It also passes ``serve_mcp=False``:
    an in-process app has no HTTP listener for MCP clients, and importing the ``mcp`` package
    costs about a second of start-up."""
    settings = settings or Settings()
    if configure_logging:
        logs.configure_logging(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedder = build_embedder(settings)
        store = open_store(settings)
        metrics: Metrics = app.state.metrics
        try:
            service = await MemoryService.open(
                settings, store, embedder, telemetry=PrometheusTelemetry(metrics, embedder))
        except BaseException:
            await store.close()
            raise
        app.state.service = service
        if settings.is_sqlite:
            log.info("SQLite database %s, synchronous=%s", settings.resolved_database_url,
                     settings.sqlite_synchronous)
        await app.state.limits.start()
        tasks = [asyncio.create_task(_maintenance(service, 60.0)),
                 asyncio.create_task(_refresh_metrics(metrics, service, 15.0))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.close()
            await app.state.limits.aclose()
            metrics.process_exited()

    app = FastAPI(
        title="Aegis Memory",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.limits = limits_for(settings)
    app.state.rate_limiter = app.state.limits.requests
    errors.install(app)
    app.include_router(ops.router)
    # The error statuses each route can answer with, in the OpenAPI schema (shape: ErrorBody).
    app.include_router(progress_routes.router, responses=errors.API_ERRORS)
    app.include_router(memories.router, responses=errors.API_ERRORS)
    app.include_router(keys.router, responses=errors.API_ERRORS)
    app.include_router(dashboard.router, responses=errors.API_ERRORS)
    app.include_router(dashboard_ui.router)  # the web dashboard at /dashboard
    app.include_router(admin.router, responses=errors.ADMIN_ERRORS)

    if settings.cors_origins:
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        exposed = ["X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset"]
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=exposed)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        overrides={"/memories/import": settings.max_import_bytes},
    )
    if app.state.rate_limiter is not None:  # no extra layer on every request when off
        app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    if configure_logging:  # request lines are the server's; a host has its own logs
        app.add_middleware(logs.RequestLogMiddleware)  # inside: reads the request id
    app.add_middleware(RequestIdMiddleware)
    if serve_mcp:
        _mount_mcp_if_installed(app)
    return app


def _mount_mcp_if_installed(app: FastAPI) -> None:
    """Serve the MCP endpoint at ``/mcp`` when the ``[mcp]`` extra is installed.

    It speaks streamable HTTP, statelessly (any worker can answer), and authenticates each
    request with the caller's Aegis key, so scopes and agent keys apply as on the REST API.
    """
    try:
        from aegis_memory.integrations.mcp import mount_mcp
    except ImportError:  # no [mcp] extra: no /mcp endpoint
        return
    mount_mcp(app)
