"""Request dependencies: the service instance and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aegis_memory.server.ratelimit import Limits, RateLimitExceeded, TooManyFailedSignIns
from aegis_memory.service import Identity, MemoryService
from aegis_memory.service.errors import Unauthorized

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
    limits: Limits | None = getattr(request.app.state, "limits", None)
    secret = credentials.credentials if credentials else None
    try:
        identity = await service.authenticate(secret)
    except Unauthorized:
        # A key that was sent and refused is a guess, as far as we can tell: count it against
        # the address. A request without a key guesses nothing and stays a plain 401.
        if secret:
            await count_failed_sign_in(request)
        raise
    request.state.identity = identity
    limiter = limits.requests if limits is not None else None
    if limiter is not None:
        # Counted per key; the key configured by AEGIS_API_KEY has no key record.
        decision = await limiter.check(identity.key_id or f"env:{identity.project_id}")
        request.state.rate_limit = decision
        if not decision.allowed:
            raise RateLimitExceeded(decision)
    return identity


async def count_failed_sign_in(request: Request) -> None:
    """Count a refused key against the caller's address: 429 (TooManyFailedSignIns) once the
    address used up ``AUTH_FAILURES_PER_MINUTE``, so keys cannot be guessed at speed."""
    limits: Limits | None = getattr(request.app.state, "limits", None)
    if limits is not None and limits.auth_failures is not None:
        decision = await limits.auth_failures.check(_client_address(request))
        if not decision.allowed:
            raise TooManyFailedSignIns(decision) from None


def _client_address(request: Request) -> str:
    """The caller's address: the peer, or behind a trusted proxy the address it forwarded
    (uvicorn runs with ``proxy_headers``, trusting ``FORWARDED_ALLOW_IPS``)."""
    return request.client.host if request.client else "unknown"


ServiceDep = Annotated[MemoryService, Depends(get_service)]
IdentityDep = Annotated[Identity, Depends(get_identity)]
