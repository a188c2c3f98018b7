"""API keys of the caller's project (project keys only)."""

from __future__ import annotations

from fastapi import APIRouter

from aegis_memory import schemas as s
from aegis_memory.server.deps import IdentityDep, ServiceDep
from aegis_memory.server.fast_json import FastJSONRoute

router = APIRouter(prefix="/keys", tags=["keys"], route_class=FastJSONRoute)


@router.post("", response_model=s.CreatedApiKey, status_code=201, summary="Create an API key")
async def create_key(
    body: s.CreateKeyRequest, identity: IdentityDep, service: ServiceDep
) -> s.CreatedApiKey:
    return await service.create_key(identity, body)


@router.get("", response_model=s.KeyList, summary="List API keys")
async def list_keys(identity: IdentityDep, service: ServiceDep) -> s.KeyList:
    return s.KeyList(keys=await service.list_keys(identity))


@router.delete("/{key_id}", summary="Revoke an API key (immediately)")
async def revoke_key(key_id: str, identity: IdentityDep, service: ServiceDep) -> dict[str, object]:
    await service.revoke_key(identity, key_id)
    return {"id": key_id, "revoked": True}
