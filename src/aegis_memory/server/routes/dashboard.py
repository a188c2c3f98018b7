"""Dashboard API (SPEC §3): overview, activity, sessions and the event timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aegis_memory import schemas as s
from aegis_memory import schemas_progress as sp
from aegis_memory.server.deps import IdentityDep, ServiceDep
from aegis_memory.server.fast_json import FastJSONRoute
from aegis_memory.service.dashboard import _require_project_key

router = APIRouter(prefix="/memories/ace/dashboard", tags=["dashboard"], route_class=FastJSONRoute)

NamespaceParam = Annotated[
    str | None, Query(max_length=s.MAX_IDENT_CHARS, description="One namespace, or all.")
]


@router.get("/stats", response_model=s.DashboardStats, summary="Overview counts")
async def stats(
    identity: IdentityDep, service: ServiceDep, namespace: NamespaceParam = None
) -> s.DashboardStats:
    return await service.dashboard_stats(identity, namespace)


@router.get("/activity", response_model=s.DashboardActivity, summary="Events per day")
async def activity(
    identity: IdentityDep, service: ServiceDep, namespace: NamespaceParam = None,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
) -> s.DashboardActivity:
    return await service.dashboard_activity(identity, namespace, days)


@router.get("/sessions", response_model=sp.SessionList, summary="Sessions with progress")
async def sessions(
    identity: IdentityDep, service: ServiceDep,
    namespace: Annotated[str, Query(max_length=s.MAX_IDENT_CHARS)] = "default",
    status: sp.SessionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=sp.MAX_SESSION_LIST)] = 100,
) -> sp.SessionList:
    _require_project_key(identity)
    return await service.progress.list_sessions(identity, namespace, status, limit)


@router.get("/timeline", response_model=s.Timeline, summary="Event timeline, newest first")
async def timeline(
    identity: IdentityDep, service: ServiceDep, namespace: NamespaceParam = None,
    event_type: Annotated[str | None, Query(max_length=32)] = None,
    agent_id: Annotated[str | None, Query(max_length=s.MAX_IDENT_CHARS)] = None,
    memory_id: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1,  # a BIGINT, on either database
                                        description="`next_cursor` of a page.")] = None,
    limit: Annotated[int, Query(ge=1, le=s.MAX_PAGE)] = 100,
) -> s.Timeline:
    return await service.dashboard_timeline(
        identity, namespace=namespace, event_type=event_type, agent_id=agent_id,
        memory_id=memory_id, before=before, limit=limit)
