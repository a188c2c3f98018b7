"""``aegis demo``: the README's "15-second demo", performed with real calls.

Five acts - the problem, persistent memory, smart extraction, multi-agent scopes and
self-improvement - each run against an Aegis server and narrated from what the calls returned:
every id, score, count and timing printed comes from a real response, nothing is canned.

Where it runs: the server of the usual connection settings (``--base-url``, environment,
config profile) when one answers a quick health check, otherwise an embedded server in this
process (`AegisClient.local`) over a temporary directory. So the demo works on a fresh machine
with no server, no key and no network, and against a real server it shows the real thing.
Each run writes into a namespace of its own (``demo-<time>-<random>``), so repeated demos never
see each other's memories and a user can find, inspect or clean up what one run stored.

``--log`` writes the same narration as plain text (no colour codes) to ``demo.log`` to share;
``--json`` prints a machine-readable summary of each act instead of the narration.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from aegis_memory.cli._common import (
    EXIT_ERROR,
    EXIT_VALIDATION,
    JsonFlag,
    connection,
    console,
    emit,
    err,
    fail,
    handle_errors,
    make_client,
    truncate,
)

if TYPE_CHECKING:
    from aegis_memory.client.sync_client import AegisClient
    from aegis_memory.schemas import VoteResult
    from aegis_memory.smart.memory import SmartMemory, TurnResult

#: How long the health check waits for a configured server before the demo runs embedded.
#: Short, because on a machine without a server the answer is "connection refused" at once,
#: and a server that needs more than a second for ``/health`` would not give a good demo.
PROBE_TIMEOUT = 1.0
#: A live LLM gets this long per call (no retries) so that a dead network cannot stall the
#: demo for minutes; on failure the demo falls back to the offline extractor and says so.
LLM_TIMEOUT = 10.0
ACTS = 5
#: The reasons of SmartMemory's rule filter (the turns that cost no model call).
FILTERED = ("empty", "noise", "too_short", "no_signal")
NO_LLM_KEY = "no OPENAI_API_KEY or ANTHROPIC_API_KEY set: set one for live LLM extraction"

#: The embedded server must not pick up a deployment's settings from the environment or a
#: ``.env`` file: the demo promises an in-process SQLite store with the bundled model.
EMBEDDED_SETTINGS: dict[str, Any] = {
    "database_url": None,
    "database_read_replica_url": None,
    "redis_url": None,
    "aegis_embedding_provider": "local",
    "aegis_embedding_model": None,
    "aegis_env": "development",
    "aegis_api_key": "dev-key",
    "rate_limit_per_minute": 0,
    "rate_limit_per_hour": 0,
}

# The cast and the script. Only inputs are written here; every outcome is read from responses.
USER = "alex"
ASSISTANT = "assistant"
PLANNER, EXECUTOR, REVIEWER = "planner", "executor", "reviewer"
SMART_USER = "john"
SESSION_ID = "onboarding-alex"


# ============================================================================ narration


class Narrator:
    """Prints the story to the screen and, with ``--log``, the same story as plain text.

    Two Rich consoles rather than a recording: the screen gets colour when it is a terminal,
    the log file never does (a console on a file with no terminal and no colour system
    emits no escape codes), so ``demo.log`` can be pasted anywhere.
    """

    def __init__(self, screen: Console | None, log: IO[str] | None) -> None:
        self._consoles: list[Console] = [screen] if screen is not None else []
        self._log = log
        self._buffer = io.StringIO()
        if log is not None:
            self._consoles.append(Console(
                file=self._buffer, width=100, force_terminal=False, color_system=None,
                no_color=True, highlight=False, emoji=False, soft_wrap=False,
            ))

    def print(self, renderable: RenderableType = "", *, level: int = 1) -> None:
        """Print markup text (indented by ``level``, wrapped lines too) or any renderable."""
        if isinstance(renderable, str) and renderable:
            renderable = Padding(Text.from_markup(renderable), (0, 0, 0, 2 * level),
                                 expand=False)
        for target in self._consoles:
            target.print(renderable, highlight=False)
        if self._log is not None:
            # Rich pads wrapped lines to the width; a shared text file should not carry that.
            text = self._buffer.getvalue()
            self._buffer.seek(0)
            self._buffer.truncate()
            self._log.write("".join(line.rstrip() + "\n" for line in text.splitlines()))
            self._log.flush()

    def act(self, number: int, title: str, tagline: str) -> None:
        self.print("", level=0)
        self.print(Panel(f"[italic]{tagline}[/italic]", title=f"[bold]Act {number}/{ACTS} · "
                         f"{title}[/bold]", title_align="left", border_style="cyan"),
                   level=0)

    def takeaway(self, text: str) -> None:
        self.print(f"[green]✓[/green] [bold]{text}[/bold]")


def _q(text: str) -> str:
    """User-provided or server-returned text, safe inside Rich markup."""
    return escape(text)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


@contextmanager
def _stopwatch() -> Iterator[Callable[[], float]]:
    """``with _stopwatch() as elapsed: ...; elapsed()`` gives seconds since the start."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


# ============================================================================ where it runs


@dataclass
class Target:
    """The server the demo talks to: the configured one, or an embedded one (``base_url``
    is then the URL that did not answer, and ``reason`` says why)."""

    mode: str  # "server" or "embedded"
    base_url: str
    reason: str | None = None  # why the demo runs embedded
    version: str | None = None
    data_dir: Path | None = None

    def describe(self) -> str:
        if self.mode == "server":
            version = f", version {self.version}" if self.version else ""
            return f"the Aegis server at {self.base_url}{version}"
        return ("an embedded Aegis server in this process (SQLite and the bundled embedding "
                "model, temporary data directory)")


def _probe(ctx: typer.Context, as_json: bool) -> Target:
    """Ask the configured server for ``/health`` with a short timeout."""
    from aegis_memory.client.errors import AegisError
    from aegis_memory.client.sync_client import AegisClient

    options = connection(ctx)
    try:
        probe = AegisClient(api_key=options.api_key, base_url=options.base_url,
                            timeout=PROBE_TIMEOUT)
    except ValueError as exc:  # a malformed URL is the user's to fix, not a reason to go local
        fail(str(exc), EXIT_VALIDATION, as_json=as_json)
        raise  # unreachable
    with probe:
        try:
            health = probe.health()
        except AegisError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Target("embedded", probe.base_url, reason=reason)
    return Target("server", probe.base_url, version=health.version)


def _open_client(ctx: typer.Context, target: Target, as_json: bool) -> AegisClient:
    """A new client for ``target``: a new connection, or a (re)started embedded server."""
    if target.mode == "server":
        return make_client(ctx)
    from aegis_memory.client.sync_client import AegisClient

    try:
        return AegisClient.local(path=target.data_dir, **EMBEDDED_SETTINGS)
    except ImportError as exc:
        message = (f"No Aegis server answered at {target.base_url} ({target.reason}), and the "
                   f"embedded server cannot run here: {exc}")
        fixes = ("Fix:\n  1. Install the server components: pip install 'aegis-memory[server]'\n"
                 "  2. Or start a server (`aegis serve`, `docker compose up -d`) and point the "
                 "demo at it: `aegis --base-url http://host:8000 demo`")
        # Printed here rather than by `fail`: the text holds "[server]", which Rich markup
        # would swallow as a style tag.
        if as_json:
            typer.echo(json.dumps({"error": {"message": message, "code": "server_extra_missing",
                                             "exit_code": EXIT_ERROR}}))
        err.print(f"Error: {message}\n{fixes}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from exc


# ============================================================================ the acts


@dataclass
class Demo:
    """One run of the demo: the target, the namespace and what each act found."""

    ctx: typer.Context
    target: Target
    namespace: str
    say: Narrator
    as_json: bool
    client: AegisClient | None = None
    acts: list[dict[str, Any]] = field(default_factory=list)
    extractor: str = "rules"
    startup_seconds: float = 0.0

    @property
    def aegis(self) -> AegisClient:
        assert self.client is not None
        return self.client

    def run(self) -> None:
        with _stopwatch() as elapsed:
            self.client = _open_client(self.ctx, self.target, self.as_json)
        self.startup_seconds = round(elapsed(), 3)
        try:
            for number, act in enumerate((self.problem, self.memory, self.smart,
                                          self.multi_agent, self.learning), start=1):
                with _stopwatch() as elapsed:
                    summary = act()
                self.acts.append({"act": number, **summary, "seconds": round(elapsed(), 3)})
        finally:
            self.aegis.close()

    # ------------------------------------------------------------------ act 1

    def problem(self) -> dict[str, Any]:
        say = self.say
        say.act(1, "The problem", "Agents forget everything between sessions.")
        context = [
            f"user: I'm {USER.capitalize()}. I'm allergic to peanuts.",
            "agent: Got it, no peanuts in any recipe I suggest.",
        ]
        say.print(f"Session 1: a stateless agent holds the conversation in its context window "
                  f"({len(context)} messages):")
        for line in context:
            say.print(f"[dim]{_q(line)}[/dim]", level=2)
        before_reset = len(context)
        context = []  # the context window is reset: a new session, a new process
        say.print(f"Session 2: the context was reset; it now holds {len(context)} messages.")
        question = "What is the user allergic to?"
        found = self.aegis.query(question, user_id=USER, agent_id=ASSISTANT,
                                 namespace=self.namespace, top_k=5)
        say.print(f"Asking the memory store \"{_q(question)}\" in the fresh namespace: "
                  f"[bold]{len(found)}[/bold] memories ({found.query_time_ms:.0f} ms).")
        say.print("[red]✗[/red] The agent has to ask again, or worse, guesses.")
        return {"key": "problem", "title": "The problem",
                "context_messages_before_reset": before_reset,
                "context_messages_after_reset": len(context),
                "query": question, "memories_found": len(found),
                "query_ms": found.query_time_ms}

    # ------------------------------------------------------------------ act 2

    def memory(self) -> dict[str, Any]:
        say, ns = self.say, self.namespace
        say.act(2, "Aegis Memory", "Persistent memory that survives context resets.")
        facts = [
            f"{USER.capitalize()} is allergic to peanuts",
            f"{USER.capitalize()} prefers dark mode in every app",
            f"{USER.capitalize()}'s team deploys to production only on Tuesdays",
        ]
        with _stopwatch() as elapsed:
            added = self.aegis.add_batch([
                {"content": fact, "user_id": USER, "agent_id": ASSISTANT, "namespace": ns}
                for fact in facts
            ])
        say.print(f"Session 1: stored {len(added)} memories in {_ms(elapsed()):.0f} ms "
                  f"(scope [bold]{added[0].scope}[/bold], agent '{ASSISTANT}'):")
        for result, fact in zip(added, facts, strict=True):
            say.print(f"[dim]{result.id[:8]}[/dim]  {_q(fact)}", level=2)
        session = self.aegis.progress.update(
            SESSION_ID, namespace=ns, agent_id=ASSISTANT,
            completed=["collect requirements", "draft the schema"],
            in_progress="write the migrations", next=["review with Alex", "deploy"],
            total_items=5, summary="Onboarding Alex's project",
        )
        say.print(f"Session progress '{SESSION_ID}': {len(session.completed)} items done, "
                  f"working on '{_q(session.in_progress or '')}'.")

        self.aegis.close()
        with _stopwatch() as elapsed:
            self.client = _open_client(self.ctx, self.target, self.as_json)
        if self.target.mode == "embedded":
            reset = "embedded server stopped and restarted over the same data"
        else:
            reset = "client closed; a new client opened a new connection"
        say.print(f"[yellow]⟳ Context reset:[/yellow] {reset} ({_ms(elapsed()):.0f} ms).")

        recalls = []
        for question, expected in (
            ("Which foods must I avoid recommending?", added[0].id),
            ("What color scheme should the UI use?", added[1].id),
            ("When can we ship the release?", added[2].id),
        ):
            found = self.aegis.query(question, user_id=USER, agent_id=ASSISTANT,
                                     namespace=ns, top_k=3)
            top = found[0] if found else None
            recalled = top is not None and top.id == expected
            mark = "[green]✓[/green]" if recalled else "[red]✗[/red]"
            answer = (f"\"{_q(top.content)}\" (score {top.score or 0:.2f}, "
                      f"{found.query_time_ms:.0f} ms)" if top else "nothing")
            say.print(f"{mark} \"{_q(question)}\" → {answer}")
            recalls.append({"query": question, "expected_id": expected, "recalled": recalled,
                            "top_id": top.id if top else None,
                            "top_content": top.content if top else None,
                            "score": top.score if top else None,
                            "query_ms": found.query_time_ms})
        session = self.aegis.progress.get(SESSION_ID, namespace=ns)
        percent = (f" ({session.progress_percent:.0f}%)"
                   if session.progress_percent is not None else "")
        say.print(f"{'[green]✓[/green]'} Session progress after the reset{percent}: done "
                  f"{_q(', '.join(session.completed))}; in progress "
                  f"'{_q(session.in_progress or '')}'; next {_q(', '.join(session.next_items))}.")
        hits = sum(r["recalled"] for r in recalls)
        say.takeaway(f"{hits} of {len(recalls)} facts recalled by meaning after the reset; "
                     "the task picks up where it stopped.")
        return {"key": "memory", "title": "Aegis Memory", "reset": reset,
                "stored": [{"id": r.id, "content": c, "scope": r.scope}
                           for r, c in zip(added, facts, strict=True)],
                "recalls": recalls, "recalled": hits,
                "progress": {"session_id": session.session_id, "completed": session.completed,
                             "in_progress": session.in_progress,
                             "next_items": session.next_items,
                             "progress_percent": session.progress_percent}}

    # ------------------------------------------------------------------ act 3

    def _smart_memory(self, provider: str) -> SmartMemory:
        from aegis_memory.smart.memory import SmartMemory

        return SmartMemory(client=self.aegis, namespace=self.namespace,
                           llm_provider=provider,  # type: ignore[arg-type]
                           llm_timeout=LLM_TIMEOUT, llm_max_retries=0)

    def _choose_extractor(self) -> tuple[SmartMemory, str | None]:
        """SmartMemory with the live LLM a key is configured for, else the offline rules;
        returns it and, for the rules, why no LLM runs."""
        if os.environ.get("OPENAI_API_KEY", "").strip():
            provider = "openai"
        elif os.environ.get("ANTHROPIC_API_KEY", "").strip():
            provider = "anthropic"
        else:
            return self._smart_memory("rules"), NO_LLM_KEY
        try:
            return self._smart_memory(provider), None
        except (ImportError, ValueError) as exc:  # e.g. the client library is not installed
            return self._smart_memory("rules"), f"the {provider} extractor is unavailable: {exc}"

    def smart(self) -> dict[str, Any]:
        from aegis_memory.smart.llm import LLMError

        say = self.say
        say.act(3, "Smart extraction", "Automatic extraction of what is worth remembering.")
        memory, why_rules = self._choose_extractor()
        live = why_rules is None
        fallback: str | None = None
        failed_calls = 0

        def announce() -> None:
            why = f" ({_q(why_rules)})" if memory.extractor == "rules" and why_rules else ""
            say.print(f"Extractor: [bold]{_q(extractor_label(memory.extractor))}[/bold]{why}.")

        announce()
        turns = [
            ("Hi there!", "Hello! How can I help you today?"),
            (f"I'm {SMART_USER.capitalize()}, a Python developer from Manchester. "
             "I prefer dark mode.", f"Nice to meet you, {SMART_USER.capitalize()}!"),
            ("By the way, I moved to Leeds last month.", "Leeds is lovely!"),
            ("Thanks!", "Anytime."),
        ]
        turn_summaries = []
        try:
            for user_input, ai_response in turns:
                try:
                    result = memory.process_turn(user_input, ai_response, user_id=SMART_USER)
                except LLMError as exc:
                    failed_calls += 1
                    fallback = f"live extraction failed ({exc}); used the offline rules"
                    memory.close()
                    memory = self._smart_memory("rules")
                    why_rules = "live extraction failed"
                    say.print(f"[yellow]![/yellow] {_q(fallback)}.")
                    announce()
                    result = memory.process_turn(user_input, ai_response, user_id=SMART_USER)
                self._narrate_turn(user_input, result)
                turn_summaries.append(self._turn_summary(user_input, result))
            question = "What theme should I use?"
            context = memory.get_context(question, user_id=SMART_USER)
            say.print(f"get_context(\"{_q(question)}\") →")
            for line in context.context_string.splitlines() or ["(nothing)"]:
                say.print(f"[bold]{_q(line)}[/bold]", level=2)
            self.extractor = memory.extractor
        finally:
            memory.close()
        # Counted from the turns rather than `get_stats()`: after a fallback the work was
        # split between two SmartMemory instances, and the failed model call counts too.
        stats = {
            "turns": len(turn_summaries),
            "facts_stored": sum(len(t["stored_ids"]) for t in turn_summaries),
            "superseded": sum(len(t["superseded_ids"]) for t in turn_summaries),
            "llm_calls": sum(t["llm_calls"] for t in turn_summaries) + failed_calls,
            "llm_calls_saved": sum(t["skipped_reason"] in FILTERED for t in turn_summaries),
        }
        say.takeaway(f"{_plural(stats['turns'], 'turn')}: "
                     f"{_plural(stats['facts_stored'], 'fact')} stored, "
                     f"{_plural(stats['llm_calls_saved'], 'turn')} filtered out without a model "
                     f"call ({_plural(stats['llm_calls'], 'LLM call')} made).")
        return {"key": "smart", "title": "Smart extraction", "extractor": self.extractor,
                "live": live and fallback is None, "fallback": fallback,
                "rules_reason": why_rules, "turns": turn_summaries,
                "context": {"query": question, "context_string": context.context_string,
                            "token_count": context.token_count},
                "stats": stats}

    def _narrate_turn(self, user_input: str, result: TurnResult) -> None:
        say = self.say
        say.print(f"[cyan]user:[/cyan] {_q(user_input)}")
        calls = _plural(result.llm_calls, "LLM call")
        if result.skipped_reason in FILTERED:
            say.print(f"[dim]filtered out ({result.skipped_reason}), {calls}[/dim]", level=2)
            return
        say.print(f"extracted {_plural(len(result.extracted), 'fact')}, stored "
                  f"{len(result.stored_ids)} ({calls}):", level=2)
        for fact in result.extracted:
            say.print(f"- {_q(fact.content)} [dim]({fact.category}, "
                      f"confidence {fact.confidence:.2f})[/dim]", level=3)
        if result.superseded_ids:
            say.print(f"[yellow]superseded {_plural(len(result.superseded_ids), 'older fact')}"
                      "[/yellow] (deprecated, pointing at the new one)", level=2)
        if result.skipped_reason:
            say.print(f"[dim]nothing stored: {result.skipped_reason}[/dim]", level=2)

    @staticmethod
    def _turn_summary(user_input: str, result: TurnResult) -> dict[str, Any]:
        return {"user_input": user_input, "skipped_reason": result.skipped_reason,
                "llm_calls": result.llm_calls,
                "extracted": [{"content": f.content, "category": f.category,
                               "confidence": f.confidence} for f in result.extracted],
                "stored_ids": result.stored_ids, "superseded_ids": result.superseded_ids}

    # ------------------------------------------------------------------ act 4

    def multi_agent(self) -> dict[str, Any]:
        say, ns = self.say, self.namespace
        say.act(4, "Multi-agent", "Agents share knowledge, with scope control.")
        plan = [
            ("The payments API allows 100 requests per minute: batch the invoice sync",
             "agent-shared", [EXECUTOR]),
            ("Private doubt: the invoice sync estimate may be too optimistic",
             "agent-private", None),
            ("All services must log in JSON format", "global", None),
        ]
        stored = []
        for content, scope, shared in plan:
            result = self.aegis.add(content, agent_id=PLANNER, namespace=ns, scope=scope,
                                    shared_with_agents=shared)
            stored.append({"id": result.id, "content": content, "scope": result.scope})
        say.print(f"The '{PLANNER}' agent stored {len(stored)} memories "
                  f"(one shared with '{EXECUTOR}', one private, one global).")
        question = "What should I know before running the invoice sync?"
        seen: dict[str, set[str]] = {}
        for agent in (EXECUTOR, REVIEWER):
            found = self.aegis.query_cross_agent(question, requesting_agent_id=agent,
                                                 target_agent_ids=[PLANNER], namespace=ns,
                                                 top_k=10)
            seen[agent] = {m.id for m in found}
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        table.add_column("scope", no_wrap=True)
        table.add_column(f"{PLANNER}'s memory")
        table.add_column(f"{EXECUTOR} sees", justify="center", no_wrap=True)
        table.add_column(f"{REVIEWER} sees", justify="center", no_wrap=True)
        for item in stored:
            item["visible_to"] = {agent: item["id"] in ids for agent, ids in seen.items()}
            table.add_row(item["scope"], _cell(item["content"]),
                          *("[green]yes[/green]" if item["visible_to"][a] else "[red]no[/red]"
                            for a in (EXECUTOR, REVIEWER)))
        say.print(f"query_cross_agent(\"{_q(question)}\") as each agent:")
        say.print(Panel(table, border_style="dim", expand=False))
        private_leaked = any(item["visible_to"][a] for item in stored
                             if item["scope"] == "agent-private" for a in seen)
        if private_leaked:
            say.print("[red]✗ The private memory was visible to another agent.[/red]")
        else:
            say.takeaway(f"{EXECUTOR} sees {len(seen[EXECUTOR])}, {REVIEWER} sees "
                         f"{len(seen[REVIEWER])} of {PLANNER}'s {len(stored)}: the private "
                         "one stays private.")
        return {"key": "multi_agent", "title": "Multi-agent", "query": question,
                "memories": stored,
                "found": {agent: len(ids) for agent, ids in seen.items()},
                "private_leaked": private_leaked}

    # ------------------------------------------------------------------ act 5

    def learning(self) -> dict[str, Any]:
        say, ns = self.say, self.namespace
        say.act(5, "Self-improvement", "Agents learn what works over time.")
        strategies = [
            "For paginated APIs, request a fixed number of pages (10 is usually enough)",
            "For paginated APIs, keep following the next-page cursor until has_more is false",
        ]
        ids = [self.aegis.add(text, agent_id=EXECUTOR, namespace=ns,
                              memory_type="strategy").id for text in strategies]
        task = "How do I fetch every invoice from a paginated API?"
        before = self.aegis.playbook(task, agent_id=EXECUTOR, namespace=ns, top_k=5)
        say.print(f"The '{EXECUTOR}' agent stored {len(ids)} strategies; the playbook ranks "
                  f"them by relevance alone at first.")
        votes = []
        latest: dict[str, VoteResult] = {}
        for memory_id, vote, task_id in ((ids[1], "helpful", "sync-1"),
                                         (ids[1], "helpful", "sync-2"),
                                         (ids[0], "harmful", "sync-1")):
            latest[memory_id] = self.aegis.vote(memory_id, vote,  # type: ignore[arg-type]
                                                voter_agent_id=EXECUTOR, task_id=task_id)
            votes.append({"memory_id": memory_id, "vote": vote, "task_id": task_id,
                          "effectiveness_score": latest[memory_id].effectiveness_score})
        for name, memory_id in (("cursor", ids[1]), ("fixed-pages", ids[0])):
            counts = latest[memory_id]
            say.print(f"Votes from real tasks on the {name} strategy: [green]"
                      f"{counts.bullet_helpful} helpful[/green], [red]{counts.bullet_harmful} "
                      "harmful[/red] → "
                      f"effectiveness {counts.effectiveness_score:+.2f}.")
        reflection = self.aegis.add_reflection(
            "The invoice sync missed records because it assumed the results fit in 10 pages",
            agent_id=EXECUTOR, namespace=ns, error_pattern="incomplete_pagination",
            correct_approach="Follow next-page cursors until has_more is false",
        )
        say.print(f"A failure became a reflection ({reflection.scope}, error pattern "
                  "'incomplete_pagination').")
        after = self.aegis.playbook(task, agent_id=EXECUTOR, namespace=ns, top_k=5)
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column, justify in (("#", "right"), ("type", "left"), ("+/-", "center"),
                                ("effect.", "right"), ("score", "right")):
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        table.add_column("playbook entry")
        for rank, entry in enumerate(after, start=1):
            table.add_row(str(rank), entry.memory_type,
                          f"{entry.bullet_helpful}/{entry.bullet_harmful}",
                          f"{entry.effectiveness_score:+.2f}", f"{entry.score:.2f}",
                          _cell(entry.content))
        say.print(f"playbook(\"{_q(task)}\"):")
        say.print(Panel(table, border_style="dim", expand=False))
        rank_before = _rank(before, ids[1])
        rank_after = _rank(after, ids[1])
        if rank_after == 1:
            moved = (f"moved from #{rank_before} to #1" if rank_before not in (None, 1)
                     else "ranks #1")
            say.takeaway(f"The voted-up strategy {moved}; the next agent starts with what "
                         "worked.")
        else:
            say.print(f"[yellow]![/yellow] The voted-up strategy ranks #{rank_after}.")
        if _rank(after, ids[0]) is None:
            say.takeaway("The strategy voted harmful dropped out of the playbook.")
        return {"key": "learning", "title": "Self-improvement",
                "strategies": [{"id": i, "content": c} for i, c in zip(ids, strategies,
                                                                        strict=True)],
                "votes": votes, "reflection_id": reflection.id,
                "playbook_before": [e.id for e in before],
                "playbook": [{"id": e.id, "content": e.content, "memory_type": e.memory_type,
                              "helpful": e.bullet_helpful, "harmful": e.bullet_harmful,
                              "effectiveness_score": e.effectiveness_score, "score": e.score}
                             for e in after],
                "voted_strategy_rank_before": rank_before,
                "voted_strategy_rank": rank_after}


def extractor_label(extractor: str) -> str:
    """``rules`` → "offline rule extractor"; ``openai:gpt-4o-mini`` → "live LLM extraction
    (openai:gpt-4o-mini)": the words the narration and the tests look for."""
    return "offline rule extractor" if extractor == "rules" else \
        f"live LLM extraction ({extractor})"


def _cell(text: str) -> Text:
    """A table cell that takes the room the other (fixed) columns leave, on one line, cut with
    an ellipsis on a narrow screen: the column wraps, so the table shrinks it first; the text
    itself does not, so it is cut rather than spread over lines."""
    return Text(truncate(text, 80), no_wrap=True, overflow="ellipsis")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _rank(entries: list[Any], memory_id: str) -> int | None:
    return next((i for i, e in enumerate(entries, start=1) if e.id == memory_id), None)


# ============================================================================ the command


def _namespace() -> str:
    """``demo-20250101-120000-a1b2``: sortable, readable, unique per run."""
    return f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def demo(
    ctx: typer.Context,
    log: Annotated[bool, typer.Option(
        "--log", help="Also write the narration as plain text to demo.log (to share).")] = False,
    log_file: Annotated[Path | None, typer.Option(
        "--log-file", help="Write the plain-text narration to this file (implies --log).",
        dir_okay=False, show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Five acts in about 15 seconds: what Aegis Memory does, shown with real calls.

    Runs against the configured server if one answers, otherwise against an embedded server
    in this process (temporary data), so it works offline. Everything is stored in a new
    namespace ``demo-<time>-<id>``.
    """
    with _stopwatch() as elapsed:
        log_path = log_file or (Path("demo.log") if log else None)
        handle: IO[str] | None = None
        if log_path is not None:
            try:
                handle = log_path.expanduser().open("w", encoding="utf-8")
            except OSError as exc:
                fail(f"Cannot write the log file {log_path}: {exc.strerror or exc}",
                     EXIT_VALIDATION, as_json=as_json)
        try:
            summary = _run(ctx, Narrator(None if as_json else console, handle), as_json,
                           elapsed, log_path)
        finally:
            if handle is not None:
                handle.close()
    if as_json:
        emit(summary, True, lambda data: data)


def _run(ctx: typer.Context, say: Narrator, as_json: bool, elapsed: Callable[[], float],
         log_path: Path | None) -> dict[str, Any]:
    """Pick the target, perform the acts, close with a summary; returns the JSON summary."""
    target = _probe(ctx, as_json)
    namespace = _namespace()
    lines = [f"Target: [bold]{_q(target.describe())}[/bold]"]
    if target.mode == "embedded":
        lines.append(f"  [dim](no server answered at {_q(target.base_url)}: "
                     f"{_q(target.reason or '')})[/dim]")
    lines.append(f"Namespace: [bold]{namespace}[/bold] (new for this run)")
    say.print(Panel("\n".join(lines), title="[bold]Aegis Memory · 15-second demo[/bold]",
                    border_style="magenta"), level=0)

    with tempfile.TemporaryDirectory(prefix="aegis-demo-") as data_dir:
        if target.mode == "embedded":
            target.data_dir = Path(data_dir)
        run = Demo(ctx, target, namespace, say, as_json)
        with handle_errors(as_json):
            run.run()
        total = _count_memories(ctx, namespace) if target.mode == "server" else None

    seconds = round(elapsed(), 2)
    closing = [f"All {ACTS} acts ran in [bold]{seconds:.1f} s[/bold] against "
               f"{_q(target.describe())}, {_q(extractor_label(run.extractor))}."]
    if target.mode == "server":
        stored = f"{total} memories are" if total is not None else "Everything it stored is"
        closing.append(f"{stored} in namespace [bold]{namespace}[/bold] on "
                       f"{_q(target.base_url)}. Inspect it with `aegis stats --namespace "
                       f"{namespace}` or `aegis export --namespace {namespace}`.")
    else:
        closing.append(f"The embedded server's data (namespace {namespace}) was in a temporary "
                       "directory and is gone. Start a server (`aegis serve`) and run "
                       "`aegis demo` again to keep it.")
    if log_path is not None:
        closing.append(f"Narration saved to {_q(str(log_path))}.")
    say.print("", level=0)
    say.print(Panel("\n".join(closing), title="[bold]Done[/bold]", border_style="green"),
              level=0)
    return {"target": {"mode": target.mode, "base_url": target.base_url,
                       "reason": target.reason, "version": target.version,
                       "startup_seconds": run.startup_seconds},
            "namespace": namespace, "extractor": run.extractor, "acts": run.acts,
            "memories_in_namespace": total, "total_seconds": seconds,
            "log_file": str(log_path) if log_path is not None else None}


def _count_memories(ctx: typer.Context, namespace: str) -> int | None:
    """How many memories the demo left on the server (None if the key may not ask)."""
    from aegis_memory.client.errors import AegisError

    try:
        with make_client(ctx) as client:
            return client.dashboard_stats(namespace=namespace).memories_total
    except AegisError:
        return None


def register(app: typer.Typer) -> None:
    """Add ``aegis demo`` to ``app``."""
    app.command("demo")(demo)
