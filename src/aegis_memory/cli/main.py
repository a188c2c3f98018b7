"""The ``aegis`` command line. This release: ``serve``, ``version`` and ``projects``.

The full CLI (config profiles, memory commands, export/import, demo) builds on these.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="aegis",
    help="Aegis Memory: the memory layer for multi-agent systems.",
    no_args_is_help=True,
    add_completion=False,
)
projects_app = typer.Typer(help="Projects (tenants), managed on the server's own database.")
app.add_typer(projects_app, name="projects")
console = Console()
err = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the installed version."""
    from aegis_memory import __version__

    console.print(f"aegis-memory {__version__}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (env HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env PORT, default 8000).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (env AEGIS_DATA_DIR).")
    ] = None,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
    log_level: Annotated[str | None, typer.Option(help="Log level (env LOG_LEVEL).")] = None,
) -> None:
    """Start the Aegis server (embedded SQLite + local embeddings unless configured)."""
    import uvicorn

    from aegis_memory.config import Settings

    # Flags become environment so that every worker process reads the same settings.
    if host is not None:
        os.environ["HOST"] = host
    if port is not None:
        os.environ["PORT"] = str(port)
    if data_dir is not None:
        os.environ["AEGIS_DATA_DIR"] = str(data_dir)
    if log_level is not None:
        os.environ["LOG_LEVEL"] = log_level
    from aegis_memory.embeddings import EmbeddingError
    from aegis_memory.service.engine import preflight
    from aegis_memory.service.errors import StartupError

    settings = Settings()
    try:
        asyncio.run(preflight(settings))
    except (StartupError, EmbeddingError) as exc:
        err.print(f"[red]Aegis cannot start:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    where = settings.resolved_database_url if not settings.is_sqlite else str(
        settings.aegis_data_dir
    )
    err.print(
        f"Aegis Memory on http://{settings.host}:{settings.port}  (data: {where}, "
        f"embeddings: {settings.aegis_embedding_provider})"
    )
    uvicorn.run(
        "aegis_memory.server.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers if not reload else 1,
        reload=reload,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Argument(help="Project name (the tenant id).")],
    agent_id: Annotated[
        str | None, typer.Option(help="Bind the first key to this agent instead.")
    ] = None,
) -> None:
    """Create a project and print its first project key (shown once)."""
    from aegis_memory.service.admin import create_project_offline

    try:
        key = asyncio.run(create_project_offline(name, agent_id=agent_id))
    except Exception as exc:  # surface the reason, not a traceback
        err.print(f"[red]Could not create project:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Project [bold]{name}[/bold] created. Its key (shown once):")
    console.print(key.key, soft_wrap=True, highlight=False)


if __name__ == "__main__":
    app()
