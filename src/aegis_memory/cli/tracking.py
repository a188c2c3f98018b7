"""``aegis progress ...`` and ``aegis features ...``: session progress and feature tracking.

Thin over the SDK's ``client.progress`` and ``client.features`` (`aegis_memory.client._progress`)
so that the command line and Python code follow the same rules: the options mirror the SDK
parameters one to one, and what the server decides (``completed`` items accumulate, ``next`` and
``blocked`` replace, a feature is ``complete`` only with ``passes``) is not re-implemented here.

Values the SDK types as a closed set (statuses) are checked before any request, so a typo exits
with the validation code (5) instead of Click's usage error (2, which means "connection" for
``aegis``). Unknown sessions and features exit 4, like every other command.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from aegis_memory.cli._common import (
    EXIT_VALIDATION,
    JsonFlag,
    emit,
    err,
    fail,
    handle_errors,
    make_client,
    short_time,
    truncate,
)
from aegis_memory.schemas_progress import (
    MAX_SESSION_LIST,
    Feature,
    FeatureList,
    FeatureStatus,
    SessionProgress,
    SessionStatus,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

SESSION_STATUSES: tuple[str, ...] = get_args(SessionStatus)
FEATURE_STATUSES: tuple[str, ...] = get_args(FeatureStatus)

#: Rich styles per status: the colour says at a glance whether something needs attention.
SESSION_STYLES = {"active": "cyan", "paused": "yellow", "completed": "green", "failed": "red"}
FEATURE_STYLES = {
    "not_started": "dim", "in_progress": "cyan", "blocked": "yellow", "testing": "blue",
    "complete": "green", "failed": "red",
}

progress_app = typer.Typer(
    help="Session progress: where a long-running task stands, across context resets.",
    no_args_is_help=True,
)
features_app = typer.Typer(
    help="Feature tracking: features count as done only once verified.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``progress`` and ``features`` groups to ``app``."""
    app.add_typer(progress_app, name="progress")
    app.add_typer(features_app, name="features")


# ----------------------------------------------------------------------------- options

Namespace = Annotated[str, typer.Option(
    "--namespace", "-n", metavar="NAME", help="Namespace the sessions and features live in.")]
AgentId = Annotated[str | None, typer.Option(
    "--agent-id", metavar="AGENT",
    help="The agent acting (an agent-bound key acts as its own agent).",
    show_default=False)]
RetrievalEventId = Annotated[str | None, typer.Option(
    "--retrieval-event-id", metavar="ID",
    help="The retrieval_event_id of the query whose memories helped (links them to the "
         "outcome).", show_default=False)]
SelectedMemoryIds = Annotated[builtins.list[str] | None, typer.Option(
    "--selected-memory-ids", metavar="ID",
    help="A memory the agent actually used for this outcome (repeatable).", show_default=False)]
TaskId = Annotated[str | None, typer.Option(
    "--task-id", metavar="ID", help="The task the outcome belongs to (default: the feature name).",
    show_default=False)]


def _status(value: str | None, allowed: tuple[str, ...], as_json: bool) -> Any:
    """``value`` as one of ``allowed`` (case and ``-``/``_`` forgiven), else exit 5."""
    if value is None:
        return None
    normal = value.strip().lower().replace("-", "_")
    if normal not in allowed:
        fail(f"Unknown status '{value}'; use one of: {', '.join(allowed)}.", EXIT_VALIDATION,
             as_json=as_json, error_code="invalid_status")
    return normal


def _blocked_item(text: str, as_json: bool) -> dict[str, str]:
    """``"ITEM: reason"`` → ``{"item": ..., "reason": ...}``.

    The first ``": "`` separates the two so that items holding a bare colon (``http://...``,
    ``api:v2``) stay whole; without it the whole text is the item and no reason is recorded.
    """
    item, sep, reason = text.partition(": ")
    item, reason = item.strip(), reason.strip()
    if not sep:
        item, reason = text.strip(), ""
    if not item:
        fail(f"--blocked '{text}' names no item; write it as \"ITEM: reason\".",
             EXIT_VALIDATION, as_json=as_json, error_code="invalid_blocked")
    return {"item": item, "reason": reason} if reason else {"item": item}


# ----------------------------------------------------------------------------- rendering


def _styled(status: str, styles: dict[str, str]) -> Text:
    return Text(status, style=styles.get(status, ""))


def _when(value: datetime | None) -> str:
    """A timestamp for a panel: to the second, with its zone, since panels are for detail."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _times(*stamps: tuple[str, datetime | None]) -> builtins.list[Text]:
    """One dim line per timestamp that is set (one line each keeps panels narrow)."""
    return [Text(f"{label + ':':<11}{_when(value)}", style="dim")
            for label, value in stamps if value is not None]


def _done(session: SessionProgress) -> str:
    """``3`` or, when the session knows its size, ``3/10 (30%)``."""
    done = len(session.completed)
    if session.total_items is None:
        return str(done)
    percent = session.progress_percent if session.progress_percent is not None else 0.0
    return f"{done}/{session.total_items} ({percent:g}%)"


def _bullets(items: Sequence[str], mark: str, style: str) -> builtins.list[Text]:
    # Text objects, not markup strings: an item like "[bold]" must print as written.
    return [Text.assemble(("  " + mark + " ", style), item) for item in items]


def _heading(title: str, count: int | None = None) -> Text:
    label = title if count is None else f"{title} ({count})"
    return Text(label, style="bold")


def _sessions_table(sessions: Sequence[SessionProgress], namespace: str) -> RenderableType:
    if not sessions:
        return Text(f"No sessions in namespace '{namespace}'.")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Session", "Status", "Completed", "In progress", "Blocked", "Updated"):
        table.add_column(column, no_wrap=column != "In progress")
    for s in sessions:
        table.add_row(
            s.session_id, _styled(s.status, SESSION_STYLES), _done(s),
            truncate(s.in_progress or "", 40), str(len(s.blocked)) if s.blocked else "",
            short_time(s.updated_at),
        )
    return table


def _session_panel(session: SessionProgress) -> RenderableType:
    parts: builtins.list[RenderableType] = []
    head = Text.assemble("Status: ", _styled(session.status, SESSION_STYLES),
                         f"   Completed: {_done(session)}")
    if session.agent_id:
        head.append(f"   Agent: {session.agent_id}")
    if session.user_id:
        head.append(f"   User: {session.user_id}")
    parts.append(head)
    if session.summary:
        parts += [Text(""), Text(session.summary)]
    parts += [Text(""), _heading("Completed", len(session.completed))]
    parts += _bullets(session.completed, "✓", "green") or [Text("  (none yet)", style="dim")]
    parts += [Text(""), _heading("In progress")]
    parts += (_bullets([session.in_progress], "▶", "cyan") if session.in_progress
              else [Text("  (nothing)", style="dim")])
    if session.next_items:
        parts += [Text(""), _heading("Next", len(session.next_items))]
        parts += _bullets(session.next_items, "•", "blue")
    if session.blocked:
        parts += [Text(""), _heading("Blocked", len(session.blocked))]
        for entry in session.blocked:
            line = Text.assemble(("  ✗ ", "red"), str(entry.get("item", "")))
            if entry.get("reason"):
                line.append(f" - {entry['reason']}", style="yellow")
            parts.append(line)
    parts += [Text(""), *_times(("Created", session.created_at),
                                ("Updated", session.updated_at))]
    title = Text.assemble(("Session ", "bold"), (session.session_id, "bold"),
                          (f"  (namespace {session.namespace})", "dim"))
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


def _passes(feature: Feature) -> Text:
    return Text("✓ yes", style="green") if feature.passes else Text("✗ no", style="dim")


def _features_table(features: FeatureList) -> RenderableType:
    if not features.features:
        return Text("No features match.")
    table = Table(box=None, pad_edge=False, header_style="bold", caption_justify="left",
                  caption=f"{features.total} features: {features.passing} passing, "
                          f"{features.failing} failing, {features.in_progress} in progress")
    for column in ("Name", "Status", "Passes", "Verified by", "Updated"):
        table.add_column(column, no_wrap=True)
    for f in features.features:
        table.add_row(truncate(f.feature_id, 40), _styled(f.status, FEATURE_STYLES), _passes(f),
                      f.verified_by or "", short_time(f.updated_at))
    return table


def _feature_panel(feature: Feature) -> RenderableType:
    parts: builtins.list[RenderableType] = [
        Text.assemble("Status: ", _styled(feature.status, FEATURE_STYLES), "   Passes: ",
                      _passes(feature)),
    ]
    if feature.description:
        parts += [Text(""), Text(feature.description)]
    facts = [("Session", feature.session_id), ("Category", feature.category),
             ("Implemented by", feature.implemented_by), ("Verified by", feature.verified_by)]
    shown = [(label, value) for label, value in facts if value]
    if shown:
        parts.append(Text(""))
        parts += [Text.assemble((f"{label}: ", "bold"), value) for label, value in shown]
    if feature.failure_reason:
        parts += [Text(""), Text.assemble(("Failure: ", "bold red"), feature.failure_reason)]
    if feature.test_steps:
        parts += [Text(""), _heading("Test steps", len(feature.test_steps))]
        mark, style = ("✓", "green") if feature.passes else ("•", "blue")
        parts += _bullets(feature.test_steps, mark, style)
    parts += [Text(""), *_times(("Created", feature.created_at),
                                ("Updated", feature.updated_at),
                                ("Completed", feature.completed_at))]
    title = Text.assemble(("Feature ", "bold"), (feature.feature_id, "bold"),
                          (f"  (namespace {feature.namespace})", "dim"))
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


def _show(data: Any, as_json: bool, render: Any, message: str | None = None) -> None:
    """Print ``data``; for people, a one-line message first (on stderr, so that ``--json``
    stdout and piped tables stay clean)."""
    if message and not as_json:
        err.print(message, highlight=False)
    emit(data, as_json, render)


# ----------------------------------------------------------------------------- progress


@progress_app.command("list")
def progress_list(
    ctx: typer.Context,
    namespace: Namespace = "default",
    agent_id: Annotated[str | None, typer.Option(
        "--agent-id", metavar="AGENT",
        help="Only sessions recorded for this agent.", show_default=False)] = None,
    status: Annotated[str | None, typer.Option(
        metavar="STATUS", help=f"Only sessions with this status ({', '.join(SESSION_STATUSES)}).",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option(
        metavar="N", help=f"At most this many sessions (1-{MAX_SESSION_LIST}).")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List sessions, most recently updated first."""
    wanted = _status(status, SESSION_STATUSES, as_json)
    if not 1 <= limit <= MAX_SESSION_LIST:
        fail(f"--limit must be between 1 and {MAX_SESSION_LIST}.", EXIT_VALIDATION,
             as_json=as_json, error_code="invalid_limit")
    # The server filters by namespace and status; the agent filter is applied here, over as
    # many sessions as the server lists, so that --limit counts matching sessions.
    fetch = MAX_SESSION_LIST if agent_id is not None else limit
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        sessions = client.progress.list(namespace=namespace, status=wanted, limit=fetch)
    if agent_id is not None:
        sessions = [s for s in sessions if s.agent_id == agent_id][:limit]
    # The same shape as the server's session list, so scripts can share a parser.
    data = {"sessions": sessions, "count": len(sessions)}
    _show(data, as_json, lambda d: _sessions_table(d["sessions"], namespace))


@progress_app.command("show")
def progress_show(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="The session id.")],
    namespace: Namespace = "default",
    as_json: JsonFlag = False,
) -> None:
    """Show a session: summary, what is done, in progress, next and blocked."""
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        session = client.progress.get(session_id, namespace=namespace)
    _show(session, as_json, _session_panel)


@progress_app.command("create")
def progress_create(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="The session id (unique in its namespace).")],
    namespace: Namespace = "default",
    agent_id: AgentId = None,
    user_id: Annotated[str | None, typer.Option(
        "--user-id", metavar="USER",
        help="The user the session works for.", show_default=False)] = None,
    status: Annotated[str, typer.Option(
        metavar="STATUS", help=f"Initial status ({', '.join(SESSION_STATUSES)}).")] = "active",
    total_items: Annotated[int | None, typer.Option(
        "--total-items", metavar="N",
        help="How many items the task has (gives a progress percentage).",
        show_default=False)] = None,
    summary: Annotated[str | None, typer.Option(
        metavar="TEXT", help="What the session is about.", show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start tracking a session (optional: `progress update` creates a missing session)."""
    initial = _status(status, SESSION_STATUSES, as_json)
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        session = client.progress.create(
            session_id, namespace=namespace, agent_id=agent_id, user_id=user_id,
            status=initial, total_items=total_items,
            summary=summary,
        )
    _show(session, as_json, _session_panel, f"Session '{session.session_id}' created.")


@progress_app.command("update")
def progress_update(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="The session id (created if missing).")],
    completed: Annotated[builtins.list[str] | None, typer.Option(
        "--completed", metavar="ITEM",
        help="An item now done (repeatable; added to those already done).",
        show_default=False)] = None,
    in_progress: Annotated[str | None, typer.Option(
        "--in-progress", metavar="ITEM",
        help="The item being worked on now.", show_default=False)] = None,
    next_items: Annotated[builtins.list[str] | None, typer.Option(
        "--next", metavar="ITEM",
        help="An item to do next (repeatable; replaces the previous list).",
        show_default=False)] = None,
    clear_next: Annotated[bool, typer.Option(
        "--clear-next", help="Empty the list of next items.")] = False,
    blocked: Annotated[builtins.list[str] | None, typer.Option(
        "--blocked", metavar='"ITEM: REASON"',
        help="Something that cannot proceed, and why (repeatable; replaces the previous "
             "list). The first ': ' separates item and reason.", show_default=False)] = None,
    clear_blocked: Annotated[bool, typer.Option(
        "--clear-blocked", help="Empty the list of blocked items.")] = False,
    summary: Annotated[str | None, typer.Option(
        metavar="TEXT", help="Where things stand, in a sentence or two.",
        show_default=False)] = None,
    status: Annotated[str | None, typer.Option(
        metavar="STATUS", help=f"New status ({', '.join(SESSION_STATUSES)}).",
        show_default=False)] = None,
    total_items: Annotated[int | None, typer.Option(
        "--total-items", metavar="N",
        help="How many items the task has.", show_default=False)] = None,
    namespace: Namespace = "default",
    agent_id: AgentId = None,
    as_json: JsonFlag = False,
) -> None:
    """Record progress. Completed items accumulate; --next and --blocked replace their lists;
    completing the item in progress clears it."""
    if clear_next and next_items:
        fail("--next and --clear-next exclude each other.", EXIT_VALIDATION, as_json=as_json,
             error_code="conflicting_options")
    if clear_blocked and blocked:
        fail("--blocked and --clear-blocked exclude each other.", EXIT_VALIDATION,
             as_json=as_json, error_code="conflicting_options")
    changes: dict[str, Any] = {
        "completed": completed or None,
        "in_progress": in_progress,
        "next": [] if clear_next else (next_items or None),
        "blocked": [] if clear_blocked else (
            [_blocked_item(b, as_json) for b in blocked] if blocked else None),
        "summary": summary,
        "status": _status(status, SESSION_STATUSES, as_json),
        "total_items": total_items,
    }
    if all(value is None for value in changes.values()):
        fail("Nothing to update: give at least one of --completed, --in-progress, --next, "
             "--blocked, --summary, --status, --total-items (or use `aegis progress create`).",
             EXIT_VALIDATION, as_json=as_json, error_code="nothing_to_update")
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        session = client.progress.update(
            session_id, namespace=namespace, agent_id=agent_id, **changes
        )
    _show(session, as_json, _session_panel, f"Session '{session.session_id}' updated.")


# ----------------------------------------------------------------------------- features


@features_app.command("list")
def features_list(
    ctx: typer.Context,
    namespace: Namespace = "default",
    session_id: Annotated[str | None, typer.Option(
        "--session-id", metavar="SESSION",
        help="Only features of this session.", show_default=False)] = None,
    status: Annotated[str | None, typer.Option(
        metavar="STATUS", help=f"Only features with this status ({', '.join(FEATURE_STATUSES)}).",
        show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """List features with their status and counts (passing, failing, in progress)."""
    wanted = _status(status, FEATURE_STATUSES, as_json)
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        features = client.features.list(namespace=namespace, status=wanted,
                                        session_id=session_id)
    _show(features, as_json, _features_table)


@features_app.command("show")
def features_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The feature name (its feature_id).")],
    namespace: Namespace = "default",
    as_json: JsonFlag = False,
) -> None:
    """Show a feature: description, status, test steps, who implemented and verified it."""
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        feature = client.features.get(name, namespace=namespace)
    _show(feature, as_json, _feature_panel)


@features_app.command("create")
def features_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The feature name (unique in its namespace).")],
    description: Annotated[str | None, typer.Option(
        metavar="TEXT", help="What the feature does.", show_default=False)] = None,
    session_id: Annotated[str | None, typer.Option(
        "--session-id", metavar="SESSION",
        help="The session working on it.", show_default=False)] = None,
    category: Annotated[str | None, typer.Option(
        metavar="NAME", help="A category to group features by.", show_default=False)] = None,
    test_steps: Annotated[builtins.list[str] | None, typer.Option(
        "--test-steps", metavar="STEP", help="A step that verifies the feature (repeatable).",
        show_default=False)] = None,
    namespace: Namespace = "default",
    agent_id: AgentId = None,
    as_json: JsonFlag = False,
) -> None:
    """Track a feature (status not_started; it becomes complete only via `features verify`)."""
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        feature = client.features.create(
            name, description=description, namespace=namespace, session_id=session_id,
            category=category, test_steps=test_steps or None, agent_id=agent_id,
        )
    _show(feature, as_json, _feature_panel, f"Feature '{feature.feature_id}' created.")


@features_app.command("update")
def features_update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The feature name.")],
    status: Annotated[str | None, typer.Option(
        metavar="STATUS",
        help=f"New status ({', '.join(FEATURE_STATUSES)}); 'complete' needs --passes.",
        show_default=False)] = None,
    passes: Annotated[bool | None, typer.Option(
        "--passes/--no-passes", help="Whether its tests pass (--passes completes it).",
        show_default=False)] = None,
    failure_reason: Annotated[str | None, typer.Option(
        "--failure-reason", metavar="TEXT", help="Why it failed (alone, this marks it failed).",
        show_default=False)] = None,
    verified_by: Annotated[str | None, typer.Option(
        "--verified-by", metavar="AGENT",
        help="Who verified it (with --passes).", show_default=False)] = None,
    retrieval_event_id: RetrievalEventId = None,
    selected_memory_ids: SelectedMemoryIds = None,
    task_id: TaskId = None,
    namespace: Namespace = "default",
    agent_id: AgentId = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a feature's status, pass state or failure reason."""
    wanted = _status(status, FEATURE_STATUSES, as_json)
    if wanted is None and passes is None and failure_reason is None and verified_by is None:
        fail("Nothing to update: give --status, --passes/--no-passes, --failure-reason or "
             "--verified-by.", EXIT_VALIDATION, as_json=as_json, error_code="nothing_to_update")
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        feature = client.features.update(
            name, status=wanted, passes=passes, failure_reason=failure_reason,
            retrieval_event_id=retrieval_event_id,
            selected_memory_ids=selected_memory_ids or None, task_id=task_id,
            verified_by=verified_by, agent_id=agent_id, namespace=namespace,
        )
    _show(feature, as_json, _feature_panel, f"Feature '{feature.feature_id}' updated.")


@features_app.command("verify")
def features_verify(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The feature name.")],
    by: Annotated[str | None, typer.Option(
        "--by", metavar="AGENT", help="Who verified it (default: the agent the key is bound to).",
        show_default=False)] = None,
    retrieval_event_id: RetrievalEventId = None,
    selected_memory_ids: SelectedMemoryIds = None,
    task_id: TaskId = None,
    namespace: Namespace = "default",
    agent_id: AgentId = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark a feature complete: its tests pass (passes=true, status complete)."""
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        feature = client.features.mark_complete(
            name, verified_by=by, retrieval_event_id=retrieval_event_id,
            selected_memory_ids=selected_memory_ids or None, task_id=task_id,
            agent_id=agent_id, namespace=namespace,
        )
    _show(feature, as_json, _feature_panel, f"Feature '{feature.feature_id}' verified.")


@features_app.command("fail")
def features_fail(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The feature name.")],
    reason: Annotated[str | None, typer.Option(
        "--reason", metavar="TEXT",
        help="Why it failed verification (required).", show_default=False)] = None,
    retrieval_event_id: RetrievalEventId = None,
    selected_memory_ids: SelectedMemoryIds = None,
    task_id: TaskId = None,
    namespace: Namespace = "default",
    agent_id: AgentId = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark a feature failed (passes=false, status failed) with the reason."""
    # Checked here rather than by Click, so a missing reason exits 5 (validation), not 2.
    if reason is None or not reason.strip():
        fail("Give the reason the feature failed: --reason TEXT.", EXIT_VALIDATION,
             as_json=as_json, error_code="missing_reason")
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        feature = client.features.mark_failed(
            name, reason, retrieval_event_id=retrieval_event_id,
            selected_memory_ids=selected_memory_ids or None, task_id=task_id,
            agent_id=agent_id, namespace=namespace,
        )
    _show(feature, as_json, _feature_panel, f"Feature '{feature.feature_id}' marked failed.")
