"""Operator tasks that run against the database directly (``aegis projects create``)."""

from __future__ import annotations

import asyncio
import re

from aegis_memory import schemas as s
from aegis_memory.config import Settings
from aegis_memory.service.errors import Conflict, InvalidInput
from aegis_memory.service.keys import issue_key
from aegis_memory.store import Store, open_store

_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


async def create_project(
    store: Store, name: str, *, agent_id: str | None = None
) -> s.CreatedApiKey:
    """Create a project and its first key (a project key unless ``agent_id`` is given)."""
    if not _PROJECT_NAME.match(name):
        raise InvalidInput(
            "A project name is 1-128 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit.",
            code="invalid_project_name",
        )
    if name in await store.list_projects():
        raise Conflict(f"Project '{name}' already exists.", code="project_exists")
    return await issue_key(store, name, agent_id=agent_id, name="initial key")


async def schema_embedding_dim(settings: Settings) -> int | None:
    """The vector size a new schema needs: only backends that type their vector column (not
    SQLite) need it, and learning it means building the configured embedder."""
    if settings.is_sqlite:
        return None
    from aegis_memory.embeddings import build_embedder

    embedder = build_embedder(settings)
    return await asyncio.to_thread(lambda: embedder.dim)


async def migrate_database(settings: Settings) -> str:
    """``aegis migrate``: upgrade the configured database to the newest schema; returns the
    backend's name."""
    store = open_store(settings)
    try:
        await store.migrate(embedding_dim=await schema_embedding_dim(settings))
        return store.dialect
    finally:
        await store.close()


async def create_project_offline(
    name: str, *, agent_id: str | None = None, settings: Settings | None = None
) -> s.CreatedApiKey:
    settings = settings or Settings()
    store = open_store(settings)
    try:
        await store.migrate(embedding_dim=await schema_embedding_dim(settings))
        return await create_project(store, name, agent_id=agent_id)
    finally:
        await store.close()
