"""Session progress and feature tracking endpoints (SPEC §3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aegis_memory import schemas_progress as sp
from aegis_memory.schemas import MAX_IDENT_CHARS
from aegis_memory.server.deps import IdentityDep, ServiceDep
from aegis_memory.server.fast_json import FastJSONRoute

router = APIRouter(prefix="/memories/ace", tags=["ace"], route_class=FastJSONRoute)

NamespaceParam = Annotated[str, Query(min_length=1, max_length=MAX_IDENT_CHARS)]
IdentParam = Annotated[str | None, Query(min_length=1, max_length=MAX_IDENT_CHARS)]


@router.post(
    "/session", response_model=sp.SessionProgress, status_code=201,
    summary="Create a progress-tracking session",
)
async def create_session(
    body: sp.CreateSessionRequest, identity: IdentityDep, service: ServiceDep
) -> sp.SessionProgress:
    return await service.progress.create_session(identity, body)


@router.get("/sessions", response_model=sp.SessionList, summary="List sessions")
async def list_sessions(
    identity: IdentityDep,
    service: ServiceDep,
    namespace: NamespaceParam = "default",
    status: sp.SessionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=sp.MAX_SESSION_LIST)] = 100,
) -> sp.SessionList:
    return await service.progress.list_sessions(identity, namespace, status, limit)


@router.get(
    "/session/{session_id}", response_model=sp.SessionProgress, summary="Get a session"
)
async def get_session(
    session_id: str, identity: IdentityDep, service: ServiceDep,
    namespace: NamespaceParam = "default",
) -> sp.SessionProgress:
    return await service.progress.get_session(identity, session_id, namespace)


@router.patch(
    "/session/{session_id}", response_model=sp.SessionProgress,
    summary="Update a session's progress (created if it does not exist yet)",
)
async def update_session(
    session_id: str, body: sp.UpdateSessionRequest, identity: IdentityDep, service: ServiceDep
) -> sp.SessionProgress:
    return await service.progress.update_session(identity, session_id, body)


@router.post(
    "/feature", response_model=sp.Feature, status_code=201, summary="Create a tracked feature"
)
async def create_feature(
    body: sp.CreateFeatureRequest, identity: IdentityDep, service: ServiceDep
) -> sp.Feature:
    return await service.progress.create_feature(identity, body)


@router.get("/features", response_model=sp.FeatureList, summary="List features with counts")
async def list_features(
    identity: IdentityDep,
    service: ServiceDep,
    namespace: NamespaceParam = "default",
    status: sp.FeatureStatus | None = None,
    session_id: IdentParam = None,
) -> sp.FeatureList:
    return await service.progress.list_features(
        identity, namespace, status, session_id
    )


@router.get("/feature/{feature_id}", response_model=sp.Feature, summary="Get a feature")
async def get_feature(
    feature_id: str, identity: IdentityDep, service: ServiceDep,
    namespace: NamespaceParam = "default",
) -> sp.Feature:
    return await service.progress.get_feature(identity, feature_id, namespace)


@router.patch(
    "/feature/{feature_id}", response_model=sp.Feature,
    summary="Update a feature (complete only with passes=true)",
)
async def update_feature(
    feature_id: str, body: sp.UpdateFeatureRequest, identity: IdentityDep, service: ServiceDep
) -> sp.Feature:
    return await service.progress.update_feature(identity, feature_id, body)
