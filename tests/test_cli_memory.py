"""``aegis add | query | get | delete | vote | playbook | stats`` against a real server.

Driven in-process with Typer's runner (fast, and the exit code, stdout and stderr are separate),
plus a few runs as a real subprocess, the way a user or a script calls the command. Every test
works in its own namespace (or its own project) of the shared SQLite server, and with a config
directory of its own so nothing on the machine running the tests leaks in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aegis_memory.cli.main import app
from aegis_memory.client.sync_client import AegisClient
from tests.conftest import ServerProcess, clean_env, free_port, new_project

Run = Callable[..., Result]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "aegis-config"


@pytest.fixture
def run(sqlite_server: ServerProcess, config_dir: Path) -> Run:
    """``run("query", "x", ...)``: the CLI in-process against the shared server.

    ``base_url`` / ``api_key`` replace the global options (``api_key=None`` leaves the key to the
    default resolution); ``input`` is stdin.
    """
    runner = CliRunner()
    env = {"AEGIS_CONFIG_DIR": str(config_dir), "AEGIS_API_KEY": None, "AEGIS_BASE_URL": None,
           "AEGIS_PROFILE": None}

    def _run(*args: str, input: str | None = None, base_url: str | None = None,
             api_key: str | None = "dev-key") -> Result:
        argv = ["--base-url", base_url or sqlite_server.base_url]
        if api_key is not None:
            argv += ["--api-key", api_key]
        result = runner.invoke(app, [*argv, *args], input=input, env=env)
        # Whatever the outcome, never a traceback: only a clean exit.
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception, result.stdout, result.stderr)
        return result

    return _run


def ok_json(result: Result) -> object:
    """The JSON document on stdout of a successful ``--json`` run."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def add_id(run: Run, *args: str, **options: str) -> str:
    """Add a memory through the CLI and return its id (``options``: those of `run`)."""
    return ok_json(run("add", *args, "--json", **options))["id"]


def aegis(*args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a real process, with an environment holding no Aegis settings but ``env``."""
    return subprocess.run([sys.executable, "-m", "aegis_memory.cli.main", *args], input=input,
                          capture_output=True, text=True, timeout=120,
                          env=clean_env(**env))


def sdk(server: ServerProcess, api_key: str = "dev-key") -> AegisClient:
    """The SDK, for setting up states the commands under test only read (deprecation...)."""
    return AegisClient(api_key=api_key, base_url=server.base_url)


# ----------------------------------------------------------------------------- add


def test_add_prints_id_and_chosen_scope(run: Run, ns: str):
    result = run("add", "User prefers concise responses", "--agent-id", "assistant",
                 "--namespace", ns)
    assert result.exit_code == 0, result.stderr
    assert "Added memory" in result.stdout and "agent-private" in result.stdout
    memory_id = result.stdout.split("Added memory", 1)[1].split()[0]
    got = ok_json(run("get", memory_id, "--json"))
    assert got["content"] == "User prefers concise responses"
    assert got["agent_id"] == "assistant" and got["namespace"] == ns


def test_add_json_with_every_option(run: Run, ns: str):
    added = ok_json(run(
        "add", "Cursor pagination works for the orders API", "--agent-id", "planner",
        "--user-id", "u1", "--namespace", ns, "--share-with", "executor", "--share-with",
        "reviewer", "--type", "strategy", "--ttl", "3600", "--metadata",
        '{"source": "incident-42", "tags": ["api"]}', "--error-pattern", "timeout", "--json"))
    assert set(added) >= {"id", "scope", "namespace", "memory_type", "deduped_from", "deduped"}
    assert added["scope"] == "agent-shared" and added["memory_type"] == "strategy"
    assert added["namespace"] == ns and added["deduped"] is False
    got = ok_json(run("get", added["id"], "--json"))
    assert got["shared_with_agents"] == ["executor", "reviewer"]
    assert got["metadata"] == {"source": "incident-42", "tags": ["api"]}
    assert got["user_id"] == "u1" and got["error_pattern"] == "timeout"
    assert got["expires_at"] is not None


def test_add_explicit_scope_wins(run: Run, ns: str):
    added = ok_json(run("add", "Deploys happen on Tuesdays", "--agent-id", "ops",
                        "--scope", "global", "--namespace", ns, "--json"))
    assert added["scope"] == "global"


def test_add_same_content_again_says_deduplicated(run: Run, ns: str):
    first = add_id(run, "The staging database is read-only", "--agent-id", "a", "--namespace", ns)
    again = run("add", "The staging database is read-only", "--agent-id", "a", "--namespace", ns)
    assert again.exit_code == 0
    assert f"deduplicated: same as {first}" in " ".join(again.stdout.split())
    as_json = ok_json(run("add", "The staging database is read-only", "--agent-id", "a",
                          "--namespace", ns, "--json"))
    assert as_json["deduped"] is True and as_json["deduped_from"] == first


def test_add_reads_content_from_stdin(run: Run, ns: str):
    text = "Line one of a note\n  indented second line"
    memory_id = add_id(run, "-", "--namespace", ns, input=text + "\n")
    assert ok_json(run("get", memory_id, "--json"))["content"] == text


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["x", "--metadata", "{bad json"], None, "--metadata is not valid JSON"),
    (["x", "--metadata", "[1, 2]"], None, "--metadata must be a JSON object"),
    (["x", "--scope", "everyone"], None, "--scope must be one of"),
    (["x", "--type", "opinion"], None, "--type must be one of"),
    (["   "], None, "Nothing to remember"),
    (["-"], "\n", "stdin was empty"),
    (["x", "--ttl", "0"], None, "ttl_seconds"),
], ids=["metadata-syntax", "metadata-not-object", "scope", "type", "empty", "empty-stdin", "ttl"])
def test_add_rejects_bad_input_with_exit_5(run: Run, ns: str, args, stdin, message):
    result = run("add", *args, "--namespace", ns, input=stdin)
    assert result.exit_code == 5
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_validation_error_as_json(run: Run, ns: str):
    result = run("add", "x", "--metadata", "{oops", "--namespace", ns, "--json")
    assert result.exit_code == 5
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 5 and "--metadata" in error["message"]


# ----------------------------------------------------------------------------- query


def test_query_table_and_json(run: Run, ns: str):
    wanted = add_id(run, "The user prefers dark mode in every editor", "--namespace", ns)
    add_id(run, "Invoices are sent on the first business day", "--namespace", ns)
    strategy = add_id(run, "Ask for the editor theme before configuring it", "--type",
                      "strategy", "--namespace", ns)

    table = run("query", "does the user prefer dark mode", "--namespace", ns)
    assert table.exit_code == 0, table.stderr
    assert "result(s)" in table.stdout and wanted in table.stdout
    assert "The user prefers dark mode" in table.stdout
    assert "retrieval_event_id" in table.stdout

    found = ok_json(run("query", "does the user prefer dark mode", "--namespace", ns,
                        "--top-k", "2", "--json"))
    assert set(found) == {"memories", "retrieval_event_id", "query_time_ms"}
    assert isinstance(found["retrieval_event_id"], str) and found["retrieval_event_id"]
    assert len(found["memories"]) == 2
    assert found["memories"][0]["id"] == wanted
    assert all(isinstance(m["score"], float) for m in found["memories"])
    assert {"id", "content", "agent_id", "scope", "memory_type"} <= set(found["memories"][0])

    only = ok_json(run("query", "editor theme", "--namespace", ns, "--type", "strategy",
                       "--json"))
    assert [m["id"] for m in only["memories"]] == [strategy]

    high = ok_json(run("query", "editor theme", "--namespace", ns, "--min-score", "0.99",
                       "--json"))
    assert high["memories"] == []
    assert "No memories found" in run("query", "editor theme", "--namespace", ns,
                                      "--min-score", "0.99").stdout


@pytest.mark.parametrize("args", [["--type", "opinion"], ["--top-k", "0"],
                                  ["--top-k", "many"]], ids=["type", "top-k", "top-k-not-int"])
def test_query_rejects_bad_options_with_exit_5(run: Run, ns: str, args):
    result = run("query", "anything", "--namespace", ns, *args)
    assert result.exit_code == 5, result.stderr
    assert "Error" in result.stderr and "Traceback" not in result.stderr


def test_scope_enforcement_through_the_cli(run: Run, ns: str):
    private = add_id(run, "Agent A's private scratch note about the migration", "--agent-id",
                     "agent-a", "--namespace", ns)
    shared = add_id(run, "Agent A shares the migration plan with B", "--agent-id", "agent-a",
                    "--share-with", "agent-b", "--namespace", ns)

    as_b = ok_json(run("query", "migration", "--agent-id", "agent-b", "--namespace", ns,
                       "--json"))
    assert [m["id"] for m in as_b["memories"]] == [shared]
    as_a = ok_json(run("query", "migration", "--agent-id", "agent-a", "--namespace", ns,
                       "--json"))
    assert {m["id"] for m in as_a["memories"]} == {private, shared}
    as_c = ok_json(run("query", "migration", "--agent-id", "agent-c", "--namespace", ns,
                       "--json"))
    assert as_c["memories"] == []

    assert run("get", private, "--agent-id", "agent-b").exit_code == 4
    assert run("get", private, "--agent-id", "agent-a").exit_code == 0
    assert run("get", shared, "--agent-id", "agent-b").exit_code == 0
    assert run("delete", private, "--agent-id", "agent-b", "-y").exit_code == 4
    assert run("vote", private, "helpful", "--voter", "agent-b").exit_code == 4
    assert ok_json(run("get", private, "--json"))["bullet_helpful"] == 0  # nothing happened


def test_brackets_in_data_and_input_are_shown_as_typed(run: Run, ns: str):
    """Rich reads ``[...]`` as markup; stored text and typed values must never be."""
    text = "Config lives in [/etc/app] and [bold]is not[/bold] markup"
    memory_id = add_id(run, text, "--agent-id", "[/agent]", "--type", "strategy",
                       "--namespace", ns)
    for args, expected in ((["query", "config", "--namespace", ns], "[/agent]"),
                           (["get", memory_id], "[/agent]"),
                           (["playbook", "config", "--namespace", ns], "[/etc/app]"),
                           (["stats", "--namespace", ns], "[/agent]")):
        shown = run(*args)
        assert shown.exit_code == 0, (args, shown.stderr)
        assert expected in shown.stdout, args
    assert text in run("get", memory_id).stdout
    bad = run("add", "x", "--scope", "[/red]", "--namespace", ns)
    assert bad.exit_code == 5 and "[/red]" in bad.stderr


# ----------------------------------------------------------------------------- get


def test_get_shows_every_field(run: Run, sqlite_server: ServerProcess, ns: str):
    long_text = ("When the payments API answers 429, wait for the Retry-After header and retry "
                 "with exponential backoff; never retry more than five times in one task.")
    memory_id = add_id(run, long_text, "--agent-id", "executor", "--share-with", "planner",
                       "--type", "reflection", "--metadata", '{"incident": 42}', "--namespace",
                       ns)
    run("vote", memory_id, "helpful", "--voter", "planner")
    shown = run("get", memory_id)
    assert shown.exit_code == 0, shown.stderr
    flat = " ".join(shown.stdout.replace("│", " ").split())
    assert " ".join(long_text.split()) in flat  # the content in full, not truncated
    for expected in (memory_id, "reflection", "agent-shared", "planner", "executor", ns,
                     '"incident": 42', "+1/-0", "effectiveness", "Deprecated no"):
        assert expected in flat, expected

    with sdk(sqlite_server) as client:
        newer = client.add("Use the payments client's built-in retry", namespace=ns).id
        client.deprecate(memory_id, superseded_by=newer, reason="the client retries now")
    flat = " ".join(run("get", memory_id).stdout.replace("│", " ").split())
    assert "Deprecated yes" in flat and newer in flat and "the client retries now" in flat
    got = ok_json(run("get", memory_id, "--json"))
    assert got["is_deprecated"] is True and got["superseded_by"] == newer


# ----------------------------------------------------------------------------- delete


def test_delete_asks_first(run: Run, ns: str):
    memory_id = add_id(run, "A memory to delete", "--namespace", ns)

    kept = run("delete", memory_id, input="n\n")
    assert kept.exit_code == 1
    assert "A memory to delete" in kept.stderr  # the question shows what would go
    assert "kept" in kept.stderr
    assert run("get", memory_id).exit_code == 0

    no_stdin = run("delete", memory_id)  # a script that forgot -y: nothing is deleted
    assert no_stdin.exit_code == 1 and "kept" in no_stdin.stderr
    assert run("get", memory_id).exit_code == 0

    confirmed = run("delete", memory_id, input="y\n")
    assert confirmed.exit_code == 0 and "Deleted memory" in confirmed.stdout
    assert run("get", memory_id).exit_code == 4


def test_delete_yes_json(run: Run, ns: str):
    memory_id = add_id(run, "Another memory to delete", "--namespace", ns)
    assert ok_json(run("delete", memory_id, "-y", "--json")) == {"id": memory_id,
                                                                "deleted": True}
    assert run("get", memory_id, "--json").exit_code == 4


# ----------------------------------------------------------------------------- not found


@pytest.mark.parametrize("args", [
    ["get", "no-such-id"],
    ["delete", "no-such-id", "-y"],
    ["delete", "no-such-id"],  # reported before any question is asked
    ["vote", "no-such-id", "helpful", "--voter", "someone"],
], ids=["get", "delete-y", "delete-ask", "vote"])
def test_unknown_id_exits_4(run: Run, args):
    result = run(*args)
    assert result.exit_code == 4
    assert "not found" in result.stderr.lower()
    assert "[y/N]" not in result.stderr


def test_not_found_as_json(run: Run):
    result = run("get", "no-such-id", "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"]["exit_code"] == 4


# ----------------------------------------------------------------------------- vote


def test_vote_prints_new_counts(run: Run, ns: str):
    memory_id = add_id(run, "Batch writes in groups of 100", "--type", "strategy",
                       "--namespace", ns)
    first = run("vote", memory_id, "helpful", "--voter", "executor", "--context", "it worked")
    assert first.exit_code == 0, first.stderr
    assert "+1/-0" in first.stdout and "effectiveness" in first.stdout

    result = ok_json(run("vote", memory_id, "harmful", "--voter", "reviewer", "--task-id",
                         "task-7", "--json"))
    assert result["memory_id"] == memory_id and result["vote"] == "harmful"
    assert (result["bullet_helpful"], result["bullet_harmful"]) == (1, 1)
    assert isinstance(result["effectiveness_score"], float)

    again = ok_json(run("vote", memory_id, "helpful", "--voter", "reviewer", "--task-id",
                        "task-7", "--json"))  # the same voter and task: replaces the vote
    assert (again["bullet_helpful"], again["bullet_harmful"]) == (2, 0)
    assert again["effectiveness_score"] > result["effectiveness_score"]


def test_vote_rejects_bad_input_with_exit_5(run: Run, ns: str):
    memory_id = add_id(run, "Something to vote on", "--namespace", ns)
    bad = run("vote", memory_id, "meh", "--voter", "a")
    assert bad.exit_code == 5 and "helpful, harmful" in bad.stderr
    no_voter = run("vote", memory_id, "helpful")  # a project key acts as no agent
    assert no_voter.exit_code == 5 and "--voter" in no_voter.stderr


# ----------------------------------------------------------------------------- playbook


def test_playbook(run: Run, ns: str):
    proven = add_id(run, "Paginate the orders API with cursors, not offsets", "--type",
                    "strategy", "--namespace", ns)
    lesson = add_id(run, "Offset pagination on the orders API timed out after page 50",
                    "--type", "reflection", "--error-pattern", "orders-timeout",
                    "--namespace", ns)
    plain = add_id(run, "The orders API lives at /v2/orders", "--namespace", ns)
    run("vote", proven, "helpful", "--voter", "executor")

    table = run("playbook", "orders API pagination", "--namespace", ns)
    assert table.exit_code == 0, table.stderr
    assert "Playbook for" in table.stdout and proven in table.stdout and lesson in table.stdout
    assert "+1/-0" in table.stdout and "strategy" in table.stdout

    book = ok_json(run("playbook", "orders API pagination", "--namespace", ns, "--json"))
    assert {"entries", "retrieval_event_id"} <= set(book)
    ids = [e["id"] for e in book["entries"]]
    assert set(ids) == {proven, lesson} and plain not in ids
    entry = book["entries"][ids.index(proven)]
    assert entry["bullet_helpful"] == 1 and entry["effectiveness_score"] > 0

    def entry_ids(*args: str) -> list[str]:
        found = ok_json(run("playbook", "orders API pagination", "--namespace", ns, "--json",
                            *args))
        return [e["id"] for e in found["entries"]]

    assert entry_ids("--type", "strategy") == [proven]
    assert entry_ids("--min-effectiveness", "0.3") == [proven]
    assert entry_ids("--error-pattern", "orders-timeout") == [lesson]
    assert entry_ids("--top-k", "1") == [proven]  # votes rank a proven strategy first
    assert entry_ids("--agent-id", "someone") == ids  # global entries: visible to any agent
    assert run("playbook", "x", "--namespace", ns, "--type", "opinion").exit_code == 5
    empty = run("playbook", "orders", "--namespace", ns, "--min-effectiveness", "0.99")
    assert empty.exit_code == 0 and "No playbook entries" in empty.stdout


# ----------------------------------------------------------------------------- stats


def test_stats(run: Run, sqlite_server: ServerProcess, ns: str):
    add_id(run, "Private note of the planner", "--agent-id", "planner", "--namespace", ns)
    add_id(run, "Second private note of the planner", "--agent-id", "planner",
           "--namespace", ns)
    shared = add_id(run, "Executor shares the runbook", "--agent-id", "executor",
                    "--share-with", "planner", "--type", "strategy", "--namespace", ns)
    add_id(run, "A fact everyone may read", "--type", "reflection", "--namespace", ns)
    run("vote", shared, "helpful", "--voter", "planner")
    run("vote", shared, "harmful", "--voter", "executor")

    stats = ok_json(run("stats", "--namespace", ns, "--json"))
    assert stats["namespace"] == ns
    assert stats["memories_total"] == 4 and stats["deprecated"] == 0
    assert stats["by_scope"] == {"agent-private": 2, "agent-shared": 1, "global": 1}
    assert stats["by_type"] == {"standard": 2, "strategy": 1, "reflection": 1}
    agents = {a["agent_id"]: a["memories"] for a in stats["top_agents"]}
    assert agents["planner"] == 2 and agents["executor"] == 1
    assert (stats["helpful_votes"], stats["harmful_votes"], stats["voters"]) == (1, 1, 2)

    shown = run("stats", "--namespace", ns)
    assert shown.exit_code == 0, shown.stderr
    for expected in ("By scope", "By type", "Top agents", "agent-private", "agent-shared",
                     "planner", "executor", "(no agent)", "memories", "deprecated", "2 voters",
                     "+1/-1", "50%", ns):
        assert expected in shown.stdout, expected


def test_stats_of_a_project_and_agent_keys(run: Run, sqlite_server: ServerProcess):
    _, project_key = new_project(sqlite_server)
    empty = ok_json(run("stats", "--json", api_key=project_key))
    assert empty["memories_total"] == 0 and empty["namespace"] is None
    assert "none" in run("stats", api_key=project_key).stdout  # empty tables say so

    add_id(run, "Only in the new project", "--agent-id", "solo", api_key=project_key)
    assert ok_json(run("stats", "--json", api_key=project_key))["memories_total"] == 1

    with sdk(sqlite_server, project_key) as client:
        agent_key = client.keys.create(agent_id="solo").key
    denied = run("stats", api_key=agent_key)  # the numbers cover every agent: project keys
    assert denied.exit_code == 3, (denied.stdout, denied.stderr)


# ----------------------------------------------------------------------------- failures


COMMANDS = [
    ["add", "x"],
    ["query", "x"],
    ["get", "some-id"],
    ["delete", "some-id", "-y"],
    ["vote", "some-id", "helpful", "--voter", "a"],
    ["playbook", "x"],
    ["stats"],
]
COMMAND_IDS = [args[0] + ("-y" if "-y" in args else "") for args in COMMANDS]


@pytest.mark.parametrize("args", COMMANDS, ids=COMMAND_IDS)
def test_connection_refused_exits_2(run: Run, args):
    url = f"http://127.0.0.1:{free_port()}"
    result = run(*args, base_url=url)
    assert result.exit_code == 2
    assert "Cannot connect to Aegis server" in result.stderr and url in result.stderr
    assert "aegis serve" in result.stderr  # the fixes a person can act on


@pytest.mark.parametrize("args", COMMANDS, ids=COMMAND_IDS)
def test_wrong_api_key_exits_3(run: Run, args):
    result = run(*args, api_key="not-a-real-key")
    assert result.exit_code == 3
    assert "Invalid API key" in result.stderr and "aegis config" in result.stderr


def test_connection_error_as_json(run: Run):
    result = run("query", "x", "--json", base_url=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["exit_code"] == 2


# ----------------------------------------------------------------------------- real processes


def test_subprocess_pipe_add_then_query(sqlite_server: ServerProcess, ns: str, tmp_path: Path):
    env = {"AEGIS_CONFIG_DIR": str(tmp_path / "cfg"), "AEGIS_BASE_URL": sqlite_server.base_url,
           "AEGIS_API_KEY": "dev-key"}
    added = aegis("add", "-", "--namespace", ns, "--agent-id", "piper", "--json",
                  input="Piped from another program\n", **env)
    assert added.returncode == 0, added.stderr
    memory_id = json.loads(added.stdout)["id"]

    found = aegis("query", "another program", "--namespace", ns, "--agent-id", "piper",
                  "--json", **env)
    assert found.returncode == 0, found.stderr
    memories = json.loads(found.stdout)["memories"]
    assert memories[0]["id"] == memory_id
    assert memories[0]["content"] == "Piped from another program"

    wide = aegis("query", "another program", "--namespace", ns, "--agent-id", "piper",
                 COLUMNS="160", **env)
    assert wide.returncode == 0, wide.stderr
    header = next(line for line in wide.stdout.splitlines() if "Score" in line)
    assert header.split() == ["Score", "ID", "Agent", "Scope", "Type", "Content"]
    assert memory_id in wide.stdout and "agent-private" in wide.stdout


def test_subprocess_failures(sqlite_server: ServerProcess, tmp_path: Path):
    env = {"AEGIS_CONFIG_DIR": str(tmp_path / "cfg")}
    url = f"http://127.0.0.1:{free_port()}"
    refused = aegis("--base-url", url, "stats", **env)
    assert refused.returncode == 2
    assert "Cannot connect to Aegis server" in refused.stderr and url in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""

    bad_json = aegis("--base-url", sqlite_server.base_url, "add", "x", "--metadata", "{",
                     **env)
    assert bad_json.returncode == 5 and "Traceback" not in bad_json.stderr

    missing = aegis("--base-url", sqlite_server.base_url, "get", "no-such-id", **env)
    assert missing.returncode == 4 and "not found" in missing.stderr.lower()

    refused_delete = aegis("--base-url", sqlite_server.base_url, "delete", "no-such-id",
                           input="y\n", **env)
    assert refused_delete.returncode == 4
