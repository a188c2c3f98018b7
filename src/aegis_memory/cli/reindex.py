"""``aegis reindex``: re-embed every memory with the configured embedding model.

A server-side command like ``aegis migrate``: it works on the configured database directly
(``DATABASE_URL``, or the SQLite file in ``AEGIS_DATA_DIR``) with the embedding model the
settings name (``AEGIS_EMBEDDING_PROVIDER`` / ``AEGIS_EMBEDDING_MODEL``), so that data embedded
with one model can be served with another. The work itself, and why it is safe to interrupt
and resume, is described in :mod:`aegis_memory.service.reindex`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aegis_memory.cli._common import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_VALIDATION,
    JsonFlag,
    emit,
    err,
    fail,
)

if TYPE_CHECKING:
    from aegis_memory.config import Settings
    from aegis_memory.service.reindex import Reindex, ReindexPlan, ReindexResult

#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("reindex")(reindex)


def reindex(
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Memories embedded and committed per transaction.")] = 256,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start without asking.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-embed every memory with the configured embedding model (server side).

    Run it after changing AEGIS_EMBEDDING_PROVIDER / AEGIS_EMBEDDING_MODEL, with the same
    settings (and DATABASE_URL or AEGIS_DATA_DIR) the server will use; stop the server first.
    Resumable: an interrupted run continues where it stopped when run again. Until it has
    finished, no server starts on the database.
    """
    from aegis_memory.config import Settings
    from aegis_memory.service.reindex import MAX_BATCH_SIZE, Reindex

    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        fail(f"--batch-size must be between 1 and {MAX_BATCH_SIZE} (got {batch_size}).",
             EXIT_VALIDATION, as_json=as_json, error_code="invalid_batch_size")
    try:
        with _offline_errors(as_json):
            settings = Settings()
            job = Reindex(settings, batch_size=batch_size)
            plan = asyncio.run(job.plan())
    except KeyboardInterrupt:
        fail("Interrupted before starting; nothing was changed.", EXIT_INTERRUPTED,
             as_json=as_json, error_code="interrupted")
    where = _describe_database(settings)
    if plan.nothing_to_do:
        _report_nothing_to_do(plan, where, as_json)
        return
    if not yes:
        _describe(plan, where)
        _confirm()
    else:
        if not as_json:
            err.print(f"Re-embedding {plan.todo} of {plan.total} memories with "
                      f"{_model(plan.model, plan.dim)}...", highlight=False)
        _warn_running_server(plan)
    result = _run(job, plan, as_json)
    data: dict[str, Any] = {**result.as_dict(), "database": where}
    emit(data, as_json, lambda _: _done_message(result))


@contextlib.contextmanager
def _offline_errors(as_json: bool, done: Callable[[], str] = str) -> Iterator[None]:
    """Configuration, database and embedding failures as a sentence (exit 1), not a
    traceback; ``done()`` adds what the failure leaves behind."""
    from pydantic import ValidationError

    from aegis_memory.embeddings import EmbeddingError
    from aegis_memory.service.errors import StartupError
    from aegis_memory.service.reindex import NoDatabase, ReindexError
    from aegis_memory.store.errors import DatabaseUnavailable

    try:
        yield
    except NoDatabase as exc:
        fail(str(exc), EXIT_NOT_FOUND, as_json=as_json, error_code="no_database")
    except (ReindexError, EmbeddingError, StartupError, DatabaseUnavailable,
            ValidationError, RuntimeError, OSError) as exc:
        message = str(exc).strip().rstrip(".") or type(exc).__name__
        fail(f"Cannot reindex: {message}{done()}", EXIT_ERROR, as_json=as_json,
             error_code="reindex_failed")


def _describe_database(settings: Settings) -> str:
    """Where the data lives, without the password a database URL may carry."""
    from sqlalchemy.engine import make_url

    if settings.is_sqlite:
        return str(settings.aegis_data_dir)
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _model(name: str | None, dim: int | None) -> str:
    if name is None:
        return "none recorded"
    return f"'{name}' ({dim} dims)" if dim else f"'{name}'"


def _report_nothing_to_do(plan: ReindexPlan, where: str, as_json: bool) -> None:
    from aegis_memory.service.reindex import ReindexResult

    result = ReindexResult(
        model=plan.model, dim=plan.dim, previous_model=plan.recorded_model, reembedded=0,
        skipped=plan.total, total=plan.total, seconds=0.0, status="nothing_to_do",
    )
    if plan.total:
        message = (f"Nothing to do: all {plan.total} memories are already embedded with "
                   f"{_model(plan.model, plan.dim)}.")
    elif plan.recorded_model is None:
        message = ("Nothing to do: the database has no memories yet (the server records "
                   f"{_model(plan.model, plan.dim)} when it first starts).")
    else:
        message = (f"Nothing to do: the database has no memories and already records "
                   f"{_model(plan.model, plan.dim)}.")
    emit({**result.as_dict(), "database": where}, as_json, lambda _: message)


def _describe(plan: ReindexPlan, where: str) -> None:
    """What is about to happen, on stderr (stdout stays for the result)."""
    err.print(f"Database: {where}", highlight=False)
    err.print(f"Embedded with: {_model(plan.recorded_model, plan.recorded_dim)}",
              highlight=False)
    if plan.resuming:
        err.print(f"An interrupted reindex to '{plan.model}' continues where it stopped.",
                  highlight=False)
    elif plan.unfinished_target is not None:
        err.print(f"An unfinished reindex to '{plan.unfinished_target}' is replaced by this "
                  f"one: memories already moved to it are re-embedded again.", highlight=False)
    err.print(
        f"Re-embed {plan.todo} of {plan.total} memories with {_model(plan.model, plan.dim)}"
        f"{f'; {plan.skipped} already are' if plan.skipped else ''}.", highlight=False)
    err.print("Until this has finished no Aegis server starts on this database (with either "
              "model). It can be interrupted (Ctrl-C) and resumed by running it again. Stop a "
              "running server first, and start it with the new model settings afterwards.",
              highlight=False)
    _warn_running_server(plan)


def _warn_running_server(plan: ReindexPlan) -> None:
    if plan.other_servers:
        err.print(f"[yellow]Warning:[/yellow] {plan.other_servers} other Aegis connection(s) "
                  "to this database: a server seems to be running. It keeps using the old "
                  "model until restarted, and its searches degrade meanwhile.",
                  highlight=False)


def _confirm() -> None:
    """Ask on stderr, so that stdout carries nothing but the result (``--json``)."""
    try:
        answer = err.input("Start re-embedding? \\[y/N] ")
    except (EOFError, KeyboardInterrupt):
        err.print()
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        err.print("Cancelled; nothing was changed.")
        raise typer.Exit(EXIT_ERROR)


def _run(job: Reindex, plan: ReindexPlan, as_json: bool) -> ReindexResult:
    """The re-embedding under a progress bar (stderr), total = every memory."""
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = progress.add_task("Re-embedding", total=plan.total, completed=plan.skipped)

    def left_behind() -> str:
        if not job.began:
            return "; nothing was changed."
        return (f"; progress is saved ({job.reembedded} memories re-embedded by this run): "
                "run `aegis reindex` again to continue (until then no server starts on this "
                "database).")

    try:
        with _offline_errors(as_json, left_behind), progress:
            result = asyncio.run(job.run(
                on_batch=lambda n: progress.advance(task, n),
                on_status=lambda text: progress.update(task, description=text),
            ))
            progress.update(task, description="Re-embedded")
            return result
    except KeyboardInterrupt:
        fail(f"Interrupted{left_behind()}", EXIT_INTERRUPTED, as_json=as_json,
             error_code="interrupted")
        raise  # unreachable: fail() raises


def _done_message(result: ReindexResult) -> str:
    already = f"; {result.skipped} already were" if result.skipped else ""
    return (
        f"Re-embedded {result.reembedded} memories with {_model(result.model, result.dim)} "
        f"in {result.seconds:.1f} s{already}. The database now records this model: start the "
        "server with these embedding settings."
    )
