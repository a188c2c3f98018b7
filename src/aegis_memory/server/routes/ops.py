"""Operational endpoints: no authentication, nothing about anybody's memories."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from aegis_memory import __version__
from aegis_memory import schemas as s
from aegis_memory.server.errors import documented, error_response
from aegis_memory.server.fast_json import FastJSONRoute
from aegis_memory.server.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["ops"], route_class=FastJSONRoute)


@router.get("/", summary="About this server")
async def root() -> dict[str, str]:
    return {
        "name": "Aegis Memory",
        "version": __version__,
        "docs": "/docs",
        "health": "/health",
    }


@router.get("/health", response_model=s.HealthResponse, summary="Liveness")
async def health() -> s.HealthResponse:
    return s.HealthResponse(status="healthy", version=__version__)


@router.get("/ready", response_model=s.HealthResponse, summary="Readiness (database and index)",
            responses=documented(503))
async def ready(request: Request) -> Response:
    service = getattr(request.app.state, "service", None)
    try:
        ok = service is not None and await service.ready()
    except Exception:  # readiness reports, it does not raise
        ok = False
    if not ok:
        return error_response(503, "The database or the vector index is not ready.", "not_ready")
    return Response(
        s.HealthResponse(status="ready", version=__version__).model_dump_json(),
        media_type="application/json",
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    metrics = request.app.state.metrics
    service = getattr(request.app.state, "service", None)
    return Response(metrics.exposition(service), media_type=CONTENT_TYPE_LATEST)
