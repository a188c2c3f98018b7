"""Memory commands: ``add``, ``query``, ``get``, ``delete``, ``vote``, ``playbook``, ``stats``.

Each one is a thin layer over one SDK call (`AegisClient` from `make_client`), so the CLI
resolves keys, URLs and errors exactly like Python code does. What this module adds is what a
person at a terminal needs and the SDK cannot know: reading content from stdin, checking option
values before any round trip (so the message names the option and lists what it accepts, with
exit code 5), a confirmation before deleting, and tables that fit the terminal.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, get_args

import typer
from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from aegis_memory.cli._common import (
    EXIT_ERROR,
    EXIT_VALIDATION,
    JsonFlag,
    console,
    emit,
    err,
    fail,
    handle_errors,
    make_client,
    short_time,
    truncate,
)
from aegis_memory.client.errors import AegisValidationError
from aegis_memory.schemas import MemoryScope, MemoryType, SearchMode, VoteKind

if TYPE_CHECKING:
    from aegis_memory.schemas import DashboardStats, Memory, PlaybookEntry

SCOPES: tuple[str, ...] = get_args(MemoryScope)
MEMORY_TYPES: tuple[str, ...] = get_args(MemoryType)
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
VOTES: tuple[str, ...] = get_args(VoteKind)

#: Characters of content shown per row of a wide result table: enough to recognise a memory,
#: short enough that every row stays one line (`get` shows the whole text).
CONTENT_WIDTH = 60
#: Terminal width from which result tables get one column per field (see `_wide`).
WIDE_TERMINAL = 120

# Options shared by several commands, declared once so their help texts cannot drift apart.
AgentOpt = Annotated[str | None, typer.Option(
    "--agent-id", metavar="AGENT", show_default=False,
    help="Act as this agent (what it may see; without it a project key sees everything).")]
UserOpt = Annotated[str | None, typer.Option(
    "--user-id", metavar="USER", help="The user the memories are about.", show_default=False)]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", metavar="NAME", help="Namespace.")]
TypesOpt = Annotated[list[str] | None, typer.Option(
    "--type", metavar="TYPE", show_default=False,
    help=f"Only these memory types (repeatable): {', '.join(MEMORY_TYPES)}.")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (top level: ``aegis add``, ``aegis query``...)."""
    app.command("add")(add)
    app.command("query")(query)
    app.command("get")(get)
    app.command("delete")(delete)
    app.command("vote")(vote)
    app.command("playbook")(playbook)
    app.command("stats")(stats)


# ----------------------------------------------------------------------------- input checks


def _invalid(message: str, as_json: bool) -> NoReturn:
    """Exit 5 with ``message``, printed like `fail` prints it but as plain text.

    These messages quote what the user typed, and `fail` renders its message as Rich markup,
    so a value such as ``[/x]`` would crash it with a traceback instead of being reported.
    """
    if as_json:
        typer.echo(json.dumps({"error": {"message": message, "code": "invalid_arguments",
                                         "exit_code": EXIT_VALIDATION}}, indent=2))
    err.print(Text.assemble(("Error:", "red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_VALIDATION)


def _choice(value: str, choices: tuple[str, ...], option: str, as_json: bool) -> str:
    """``value`` if it is one of ``choices``; else exit 5 with a message naming the option.

    Checked here rather than left to the SDK, whose message names the wire field
    (``memory_types``) rather than the option the user typed (``--type``).
    """
    if value not in choices:
        _invalid(f"{option} must be one of {', '.join(choices)} (got {value!r}).", as_json)
    return value


def _choices(values: list[str] | None, choices: tuple[str, ...], option: str,
             as_json: bool) -> list[str] | None:
    """Every value of a repeatable option checked with `_choice`; None when none was given."""
    if not values:
        return None
    return [_choice(value, choices, option, as_json) for value in values]


def _metadata(raw: str | None, as_json: bool) -> dict[str, Any] | None:
    """The ``--metadata`` option as a JSON object, or exit 5 saying what is wrong with it."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        _invalid(f"--metadata is not valid JSON ({reason}). Give an object, like "
                 '--metadata \'{"source": "chat"}\'.', as_json)
    if not isinstance(value, dict):
        _invalid(f"--metadata must be a JSON object, like '{{\"source\": \"chat\"}}' "
                 f"(got a {type(value).__name__}).", as_json)
    return value


def _content(raw: str, as_json: bool) -> str:
    """The memory text: the argument itself, or stdin when it is ``-`` (for pipes and files).

    Trailing line breaks of piped text are dropped (``echo`` adds one, and they would make the
    same note a different memory to deduplication); inner layout stays, since it may be part
    of what is worth remembering.
    """
    text = raw
    if raw == "-":
        if sys.stdin.isatty():
            err.print("Reading the memory from stdin; end with Ctrl-D.")
        text = sys.stdin.read().rstrip("\r\n")
    if not text.strip():
        where = "stdin was empty" if raw == "-" else "CONTENT is empty"
        _invalid(f"Nothing to remember: {where}. Give the text as an argument, or '-' to read "
                 "it from stdin.", as_json)
    return text


# ----------------------------------------------------------------------------- small renderers


def _effectiveness(value: float) -> Text:
    """Effectiveness (-1..1) coloured so proven and harmful entries stand out in a column."""
    style = "green" if value >= 0.3 else "red" if value < 0 else ""
    return Text(f"{value:+.2f}", style=style)


def _votes(helpful: int, harmful: int) -> Text:
    """Vote counters as ``+3/-1``: compact enough for a table column."""
    text = Text()
    text.append(f"+{helpful}", style="green" if helpful else "dim")
    text.append("/")
    text.append(f"-{harmful}", style="red" if harmful else "dim")
    return text


def _plain(value: object) -> Text:
    """A table cell holding stored data (content, agent and namespace names) as plain text:
    a string cell would be read as Rich markup, and a memory mentioning ``[/x]`` would crash
    the table. ``-`` stands for "not set", since an empty cell reads as a rendering glitch."""
    return Text("-" if value in (None, "", [], {}) else str(value))


# ----------------------------------------------------------------------------- add


def add(
    ctx: typer.Context,
    content: Annotated[str, typer.Argument(
        metavar="CONTENT", show_default=False,
        help="The text to remember; '-' reads it from stdin.")],
    agent_id: Annotated[str | None, typer.Option(
        "--agent-id", metavar="AGENT", show_default=False,
        help="The agent that owns the memory.")] = None,
    user_id: UserOpt = None,
    namespace: NamespaceOpt = "default",
    scope: Annotated[str | None, typer.Option(
        "--scope", metavar="SCOPE", show_default=False,
        help=f"{' | '.join(SCOPES)}. Default: agent-shared with --share-with, agent-private "
             "with --agent-id, else global.")] = None,
    share_with: Annotated[list[str] | None, typer.Option(
        "--share-with", metavar="AGENT", help="Another agent that may see it (repeatable).",
        show_default=False)] = None,
    memory_type: Annotated[str, typer.Option(
        "--type", metavar="TYPE", help=f"Memory type: {', '.join(MEMORY_TYPES)}.")] = "standard",
    ttl: Annotated[int | None, typer.Option(
        "--ttl", metavar="SECONDS", show_default=False,
        help="Forget it after this many seconds.")] = None,
    metadata: Annotated[str | None, typer.Option(
        "--metadata", metavar="JSON", show_default=False,
        help='A JSON object stored with it, e.g. \'{"source": "chat"}\'.')] = None,
    error_pattern: Annotated[str | None, typer.Option(
        "--error-pattern", metavar="TEXT", show_default=False,
        help="For reflections: the error this lesson is about (playbooks filter on it).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store a memory and print its id (adding the same text again returns the same id)."""
    if scope is not None:
        _choice(scope, SCOPES, "--scope", as_json)
    _choice(memory_type, MEMORY_TYPES, "--type", as_json)
    meta = _metadata(metadata, as_json)
    text = _content(content, as_json)
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        result = client.add(
            text, agent_id=agent_id, user_id=user_id, namespace=namespace, scope=scope,
            shared_with_agents=share_with or None, memory_type=memory_type,  # type: ignore[arg-type]
            ttl_seconds=ttl, metadata=meta, error_pattern=error_pattern,
        )
    if as_json:
        emit({**result.model_dump(mode="json"), "deduped": result.deduped}, True, str)
        return
    where = f"scope {result.scope}, namespace {result.namespace}, type {result.memory_type}"
    if result.deduped:
        emit(result, False, lambda r: Text.assemble(
            "Already stored, ", ("deduplicated: same as ", "yellow"), (r.deduped_from, "bold"),
            f" ({where})."))
    else:
        emit(result, False, lambda r: Text.assemble(
            "Added memory ", (r.id, "bold"), f" ({where})."))


# ----------------------------------------------------------------------------- query


def _wide() -> bool:
    """Whether the terminal fits one column per field; else tables stack id and details under
    the content, since a full id (32 characters, needed to copy into `get` or `vote`) next to
    six other columns leaves no room for the content in 80 columns."""
    return console.width >= WIDE_TERMINAL


def _content_width(wide: bool, other_columns: int) -> int:
    """How much content a row shows: a fixed excerpt in wide tables; in stacked ones, what is
    left of the line after the ``other_columns`` characters of score/vote columns, so the
    excerpt stays on one line."""
    return CONTENT_WIDTH if wide else max(30, console.width - other_columns)


def _results_table(memories: list[Memory], title: str, caption: str | None) -> RenderableType:
    if not memories:
        return Text("No memories found.", style="yellow")
    table = Table(title=Text(title), caption=caption, box=box.SIMPLE_HEAD,
                  title_justify="left", caption_justify="left")
    table.add_column("Score", justify="right", no_wrap=True)
    wide = _wide()
    if wide:
        table.add_column("ID", no_wrap=True, style="cyan")
        table.add_column("Agent", no_wrap=True, max_width=16)
        table.add_column("Scope", no_wrap=True)
        table.add_column("Type", no_wrap=True)
    table.add_column("Content" if wide else "Memory", overflow="fold")
    width = _content_width(wide, 14)
    for memory in memories:
        score = "-" if memory.score is None else f"{memory.score:.3f}"
        content = truncate(memory.content, width)
        if wide:
            table.add_row(score, _plain(memory.id), _plain(memory.agent_id),
                          _plain(memory.scope), _plain(memory.memory_type), _plain(content))
        else:
            details = f"{memory.agent_id or '-'} · {memory.scope} · {memory.memory_type}"
            table.add_row(score, Text.assemble(
                content, "\n", (memory.id, "cyan"), "  ", (details, "dim")))
    return table


def query(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(
        metavar="TEXT", help="What to search for.", show_default=False)],
    agent_id: AgentOpt = None,
    user_id: UserOpt = None,
    namespace: NamespaceOpt = "default",
    top_k: Annotated[int, typer.Option(
        "--top-k", "-k", metavar="N", help="How many results.")] = 10,
    min_score: Annotated[float | None, typer.Option(
        "--min-score", metavar="SCORE",
        help="Drop results scoring below this (the mode's score: 0..1, cosine -1..1 for vector).",
        show_default=False)] = None,
    memory_types: TypesOpt = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", metavar="MODE",
        help=f"Ranking: {', '.join(SEARCH_MODES)} (the server's default: hybrid, meaning and "
             "shared words).", show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search the memories the agent may see, best match first."""
    types = _choices(memory_types, MEMORY_TYPES, "--type", as_json)
    search_mode = None if mode is None else _choice(mode, SEARCH_MODES, "--mode", as_json)
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        found = client.query(
            text, agent_id=agent_id, user_id=user_id, namespace=namespace, top_k=top_k,
            min_score=min_score, memory_types=types,  # type: ignore[arg-type]
            mode=search_mode,  # type: ignore[arg-type]
        )
    data = {
        "memories": list(found),
        "retrieval_event_id": found.retrieval_event_id,
        "query_time_ms": found.query_time_ms,
    }
    caption = f"retrieval_event_id {found.retrieval_event_id}" if found.retrieval_event_id \
        else None
    emit(data, as_json, lambda d: _results_table(
        d["memories"], f"{len(d['memories'])} result(s) for {truncate(text, 40)!r}", caption))


# ----------------------------------------------------------------------------- get


def _memory_panel(memory: Memory) -> RenderableType:
    """Every field of a memory: content in full, metadata as JSON, votes, deprecation."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("ID", _plain(memory.id))
    grid.add_row("Content", _plain(memory.content))
    grid.add_row("Type", _plain(memory.memory_type))
    grid.add_row("Scope", _plain(memory.scope))
    if memory.scope == "agent-shared" or memory.shared_with_agents:
        grid.add_row("Shared with", _plain(", ".join(memory.shared_with_agents)))
    grid.add_row("Agent", _plain(memory.agent_id))
    grid.add_row("User", _plain(memory.user_id))
    grid.add_row("Namespace", _plain(memory.namespace))
    grid.add_row("Votes", Text.assemble(
        _votes(memory.bullet_helpful, memory.bullet_harmful), "  effectiveness ",
        _effectiveness(memory.effectiveness_score)))
    grid.add_row("Created", _plain(short_time(memory.created_at)))
    grid.add_row("Updated", _plain(short_time(memory.updated_at)))
    grid.add_row("Expires", short_time(memory.expires_at) or "never")
    if memory.error_pattern:
        grid.add_row("Error pattern", _plain(memory.error_pattern))
    if memory.derived_from_agents:
        grid.add_row("Derived from", _plain(", ".join(memory.derived_from_agents)))
    grid.add_row("Metadata", JSON.from_data(memory.metadata) if memory.metadata else "-")
    if memory.coordination_metadata:
        grid.add_row("Coordination", JSON.from_data(memory.coordination_metadata))
    if memory.is_deprecated:
        grid.add_row("Deprecated", Text("yes", style="red"))
        grid.add_row("Deprecated by", _plain(memory.deprecated_by))
        grid.add_row("Superseded by", _plain(memory.superseded_by))
        grid.add_row("Reason", _plain(memory.deprecation_reason))
    else:
        grid.add_row("Deprecated", "no")
    return Panel(grid, title=Text(f"Memory {memory.id}"), title_align="left", expand=False)


def get(
    ctx: typer.Context,
    memory_id: Annotated[str, typer.Argument(metavar="ID", help="The memory id.",
                                             show_default=False)],
    agent_id: AgentOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Show one memory with every field (exit 4 if it is unknown or not visible)."""
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        memory = client.get(memory_id, agent_id=agent_id)
    emit(memory, as_json, _memory_panel)


# ----------------------------------------------------------------------------- delete


def delete(
    ctx: typer.Context,
    memory_id: Annotated[str, typer.Argument(metavar="ID", help="The memory id.",
                                             show_default=False)],
    agent_id: AgentOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a memory for good (asks first unless --yes; exit 4 if it is unknown)."""
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        if not yes:
            # Fetch first: an unknown id fails before the question, and the question can show
            # what is about to go, which is what a person needs to answer it.
            memory = client.get(memory_id, agent_id=agent_id)
            question = f"Delete memory {memory.id} ({truncate(memory.content, 50)!r})?"
            try:
                # On stderr, so that --json output on stdout stays one parseable document.
                confirmed = typer.confirm(question, default=False, err=True)
            except typer.Abort:  # stdin closed (a script forgot -y): treat as "no"
                confirmed = False
            if not confirmed:
                fail(f"Not deleted: memory {memory_id} is kept.", EXIT_ERROR, as_json=as_json,
                     error_code="cancelled")
        client.delete(memory_id, agent_id=agent_id)
    emit({"id": memory_id, "deleted": True}, as_json,
         lambda d: Text.assemble("Deleted memory ", (d["id"], "bold"), "."))


# ----------------------------------------------------------------------------- vote


def vote(
    ctx: typer.Context,
    memory_id: Annotated[str, typer.Argument(metavar="ID", help="The memory id.",
                                             show_default=False)],
    kind: Annotated[str, typer.Argument(
        metavar="helpful|harmful", help="Whether the memory helped or hurt the task.",
        show_default=False)],
    voter: Annotated[str | None, typer.Option(
        "--voter", metavar="AGENT", help="The agent voting (defaults to the key's agent).",
        show_default=False)] = None,
    task_id: Annotated[str | None, typer.Option(
        "--task-id", metavar="TASK", show_default=False,
        help="The task (or feature id) the vote is about; voting again for the same task "
             "replaces the vote.")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", metavar="TEXT", show_default=False,
        help="Why: what happened in the task.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record that a memory was helpful or harmful; prints the new counts and effectiveness."""
    _choice(kind, VOTES, "The vote", as_json)
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        try:
            result = client.vote(memory_id, kind, voter_agent_id=voter,  # type: ignore[arg-type]
                                 task_id=task_id, context=context)
        except AegisValidationError as exc:
            if exc.code != "voter_required":
                raise
            # The server's sentence names the SDK argument; a CLI user needs the option.
            fail("Say which agent votes: --voter AGENT (a project key acts as no agent, and "
                 "votes are counted once per voting agent).", EXIT_VALIDATION,
                 as_json=as_json, error_code=exc.code)
    emit(result, as_json, lambda r: Text.assemble(
        f"Voted {kind} on ", (r.memory_id, "bold"), ": ",
        _votes(r.bullet_helpful, r.bullet_harmful),
        ", effectiveness ", _effectiveness(r.effectiveness_score), "."))


# ----------------------------------------------------------------------------- playbook


def _playbook_table(entries: list[PlaybookEntry], title: str) -> RenderableType:
    if not entries:
        return Text("No playbook entries found. Strategies and reflections are what a playbook "
                    "holds: add one with `aegis add --type strategy ...`.", style="yellow")
    table = Table(title=Text(title), box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("Effect.", justify="right", no_wrap=True)
    table.add_column("Votes", no_wrap=True)
    wide = _wide()
    if wide:
        table.add_column("Type", no_wrap=True)
        table.add_column("ID", no_wrap=True, style="cyan")
    table.add_column("Content" if wide else "Entry", overflow="fold")
    width = _content_width(wide, 22)
    for entry in entries:
        content = Text(truncate(entry.content, width))
        if entry.error_pattern:
            content.append(f"  (error: {truncate(entry.error_pattern, 30)})", style="dim")
        effect = _effectiveness(entry.effectiveness_score)
        votes = _votes(entry.bullet_helpful, entry.bullet_harmful)
        if wide:
            table.add_row(effect, votes, _plain(entry.memory_type), _plain(entry.id), content)
        else:
            table.add_row(effect, votes, Text.assemble(
                content, "\n", (entry.id, "cyan"), "  ", (entry.memory_type, "dim")))
    return table


def playbook(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(
        metavar="QUERY", help="The task to find strategies for.", show_default=False)],
    agent_id: AgentOpt = None,
    user_id: UserOpt = None,
    namespace: NamespaceOpt = "default",
    top_k: Annotated[int, typer.Option(
        "--top-k", "-k", metavar="N", help="How many entries.")] = 20,
    min_effectiveness: Annotated[float, typer.Option(
        "--min-effectiveness", metavar="SCORE",
        help="Only entries at least this effective (-1..1).")] = 0.0,
    memory_types: Annotated[list[str] | None, typer.Option(
        "--type", metavar="TYPE", help="Entry types (repeatable); default strategy and reflection.",
        show_default=False)] = None,
    error_pattern: Annotated[str | None, typer.Option(
        "--error-pattern", metavar="TEXT", help="Only lessons about this error pattern.",
        show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Strategies and reflections that worked for a task, ranked by relevance and votes."""
    types = _choices(memory_types, MEMORY_TYPES, "--type", as_json)
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        response = client.query_playbook(
            text, agent_id=agent_id, user_id=user_id, namespace=namespace, top_k=top_k,
            min_effectiveness=min_effectiveness, include_types=types,  # type: ignore[arg-type]
            error_pattern=error_pattern,
        )
    emit(response, as_json, lambda r: _playbook_table(
        r.entries, f"Playbook for {truncate(text, 40)!r}: {len(r.entries)} entr"
                   f"{'y' if len(r.entries) == 1 else 'ies'}"))


# ----------------------------------------------------------------------------- stats


def _share_table(title: str, counts: dict[str, int] | list[tuple[str, int]],
                 total: int | None = None) -> Table:
    """A small "name, count, share" table with a bar, so proportions read at a glance."""
    rows = sorted(counts.items(), key=lambda kv: -kv[1]) if isinstance(counts, dict) \
        else list(counts)
    whole = total if total else sum(count for _, count in rows)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    table.add_column("", no_wrap=True)
    table.add_column("Count", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, style="cyan")
    if not rows:
        table.add_row(Text("none", style="dim"), "", "")
    for name, count in rows:
        share = count / whole if whole else 0.0
        table.add_row(_plain(name), str(count), "█" * max(1 if count else 0, round(share * 12))
                      + f" {share:.0%}")
    return table


def _stats_view(stats: DashboardStats) -> RenderableType:
    active = stats.memories_total - stats.deprecated
    votes = stats.helpful_votes + stats.harmful_votes
    summary = Table.grid(padding=(0, 3))
    for _ in range(4):
        summary.add_column(justify="center")
    summary.add_row(
        Text(str(stats.memories_total), style="bold"), Text(str(active), style="bold green"),
        Text(str(stats.deprecated), style="bold yellow" if stats.deprecated else "bold"),
        Text.assemble(_votes(stats.helpful_votes, stats.harmful_votes),
                      f"  from {stats.voters} voter{'s' if stats.voters != 1 else ''}"),
    )
    summary.add_row(*(Text(label, style="dim") for label in
                      ("memories", "active", "deprecated",
                       f"{votes} vote{'s' if votes != 1 else ''}")))
    namespace = stats.namespace or "all namespaces"
    parts: list[RenderableType] = [
        Panel(summary, title=Text(f"Aegis Memory: {namespace}"), title_align="left",
              expand=False),
    ]
    tables = [
        _share_table("By scope", stats.by_scope, stats.memories_total),
        _share_table("By type", stats.by_type, stats.memories_total),
        _share_table("Top agents", [(a.agent_id or "(no agent)", a.memories)
                                    for a in stats.top_agents], stats.memories_total),
    ]
    if stats.sessions_by_status:
        tables.append(_share_table("Sessions", stats.sessions_by_status))
    if stats.features_by_status:
        tables.append(_share_table("Features", stats.features_by_status))
    parts.append(Columns(tables, padding=(0, 4)))
    return Group(*parts)


def stats(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", metavar="NAME", help="Only this namespace (default: all).",
        show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Counts at a glance: memories by scope, type and agent, votes, sessions, features.

    Needs a project key: the numbers cover every agent of the project.
    """
    with handle_errors(as_json), make_client(ctx, as_json) as client:
        result = client.dashboard_stats(namespace=namespace)
    emit(result, as_json, _stats_view)
