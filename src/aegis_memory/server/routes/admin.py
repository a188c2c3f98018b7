"""Operator API (SPEC §2): projects, behind ``AEGIS_ADMIN_KEY``. Off when that is unset.

The admin key manages tenants only; it reads no memories.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from aegis_memory import schemas as s
from aegis_memory.server.deps import ServiceDep, count_failed_sign_in
from aegis_memory.server.fast_json import FastJSONRoute
from aegis_memory.service.admin import create_project
from aegis_memory.service.errors import NotFound, Unauthorized
from aegis_memory.service.hashing import same_secret

router = APIRouter(prefix="/admin", tags=["admin"], route_class=FastJSONRoute)
_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    admin_key = request.app.state.settings.aegis_admin_key
    if not admin_key:
        raise NotFound("The admin API is off (set AEGIS_ADMIN_KEY to enable it).",
                       code="admin_disabled")
    if credentials is None or not same_secret(credentials.credentials, admin_key):
        if credentials is not None:  # a guess at the most powerful key: counted like others
            await count_failed_sign_in(request)
        raise Unauthorized("Authentication failed: Invalid API key")


class CreateProjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    agent_id: str | None = None


@router.post("/projects", response_model=s.CreatedApiKey, status_code=201,
             dependencies=[Depends(require_admin)], summary="Create a project and its first key")
async def create(body: CreateProjectRequest, service: ServiceDep) -> s.CreatedApiKey:
    return await create_project(service.store, body.name, agent_id=body.agent_id)


@router.get("/projects", dependencies=[Depends(require_admin)], summary="List projects")
async def list_projects(service: ServiceDep) -> dict[str, list[str]]:
    return {"projects": await service.store.list_projects()}
