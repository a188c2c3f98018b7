"""Issuing API keys: a secret shown once, stored only as its SHA-256 hash."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from aegis_memory import schemas as s
from aegis_memory.service.errors import InvalidInput
from aegis_memory.service.hashing import hash_key, new_key
from aegis_memory.store import Store
from aegis_memory.store.records import ApiKeyRecord


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def key_info(r: ApiKeyRecord) -> s.ApiKeyInfo:
    return s.ApiKeyInfo(
        id=r.id, project_id=r.project_id, agent_id=r.agent_id, name=r.name, prefix=r.prefix,
        created_at=_ts(r.created_at), expires_at=_ts(r.expires_at), revoked_at=_ts(r.revoked_at),
    )


async def issue_key(
    store: Store,
    project_id: str,
    *,
    agent_id: str | None = None,
    name: str | None = None,
    expires_at: datetime | None = None,
) -> s.CreatedApiKey:
    now = time.time()
    expires = None
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        expires = expires_at.timestamp()
        if expires <= now:
            raise InvalidInput("expires_at must be in the future.", code="invalid_expiry")
    secret = new_key()
    record = ApiKeyRecord(
        id=uuid.uuid4().hex[:16], project_id=project_id, agent_id=agent_id, name=name,
        key_hash=hash_key(secret), prefix=secret[:12], created_at=now, expires_at=expires,
    )
    await store.insert_key(record)
    return s.CreatedApiKey(**key_info(record).model_dump(), key=secret)
