"""Alembic environment.

Two ways in: the server (and ``aegis migrate``) runs the upgrade on a connection it already
holds, passed through ``config.attributes["connection"]``; the ``alembic`` command line (with
the ``alembic.ini`` at the repository root) opens its own async engine from ``sqlalchemy.url``
or, when that is empty, from the same ``DATABASE_URL`` / ``AEGIS_DATA_DIR`` the server reads.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from aegis_memory.store.tables import metadata, schema_filter

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=schema_filter(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def _command_line_url() -> str:
    """``sqlalchemy.url`` from alembic.ini if set, else the server's own setting
    (``DATABASE_URL``, or the SQLite file in ``AEGIS_DATA_DIR``), with an async driver."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from aegis_memory.config import Settings

        url = Settings().resolved_database_url
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    elif url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    return url


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_command_line_url(), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    shared = config.attributes.get("connection")
    if shared is not None:
        _run(shared)
    else:
        asyncio.run(_run_async(_command_line_url()))
