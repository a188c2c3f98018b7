"""``aegis progress ...`` and ``aegis features ...`` against a real server.

Each test works in a namespace of its own (the ``ns`` fixture) on the shared SQLite server, and
every run isolates the CLI's configuration (``AEGIS_CONFIG_DIR`` in a temporary directory, no
``AEGIS_API_KEY`` / ``AEGIS_BASE_URL`` from the environment) so the developer's own profile can
never leak in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from aegis_memory.cli.main import app
from tests.conftest import ServerProcess, clean_env, free_port

runner = CliRunner()


class Cli:
    """Runs ``aegis`` in-process against one server, with an isolated configuration."""

    def __init__(self, server: ServerProcess, config_dir: Path) -> None:
        self.server = server
        self.env: dict[str, str | None] = {
            "AEGIS_CONFIG_DIR": str(config_dir), "AEGIS_API_KEY": None, "AEGIS_BASE_URL": None,
        }

    def __call__(self, *args: str, api_key: str | None = None,
                 base_url: str | None = None) -> Result:
        options = ["--base-url", base_url or self.server.base_url]
        if api_key is not None:
            options += ["--api-key", api_key]
        return runner.invoke(app, [*options, *args], env=self.env)

    def json(self, *args: str, code: int = 0) -> Any:
        """Run with ``--json``; check the exit code and that stdout is one JSON document."""
        result = self(*args, "--json")
        assert result.exit_code == code, (result.stdout, result.stderr)
        return json.loads(result.stdout)


@pytest.fixture
def cli(sqlite_server: ServerProcess, tmp_path: Path) -> Cli:
    return Cli(sqlite_server, tmp_path / "config")


def aegis(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``aegis`` as a user runs it: a separate process with a clean, isolated environment."""
    env = clean_env(AEGIS_CONFIG_DIR=str(tmp_path / "config"))
    return subprocess.run([sys.executable, "-m", "aegis_memory.cli.main", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------- progress


def test_progress_create_show_and_list(cli: Cli, ns: str) -> None:
    created = cli.json("progress", "create", "build-auth", "--namespace", ns,
                       "--agent-id", "planner", "--user-id", "alice", "--total-items", "4",
                       "--summary", "Build the auth flow")
    assert created["session_id"] == "build-auth" and created["namespace"] == ns
    assert created["agent_id"] == "planner" and created["user_id"] == "alice"
    assert created["status"] == "active" and created["total_items"] == 4
    assert created["completed"] == [] and created["progress_percent"] == 0.0

    shown = cli.json("progress", "show", "build-auth", "--namespace", ns)
    assert shown == created

    listed = cli.json("progress", "list", "--namespace", ns)
    assert set(listed) == {"sessions", "count"} and listed["count"] == 1
    assert listed["sessions"][0]["session_id"] == "build-auth"

    table = cli("progress", "list", "--namespace", ns)
    assert table.exit_code == 0, table.stderr
    assert "build-auth" in table.stdout and "active" in table.stdout
    assert "0/4 (0%)" in table.stdout

    human = cli("progress", "create", "paused-one", "--namespace", ns, "--status", "paused")
    assert human.exit_code == 0, human.stderr
    assert "Session 'paused-one' created." in human.stderr
    assert "paused" in human.stdout and "paused-one" in human.stdout


def test_progress_update_semantics(cli: Cli, ns: str) -> None:
    """What the server promises (SPEC §3): update creates a missing session, completed items
    accumulate without duplicates in order, next and blocked replace, completing the item in
    progress clears it."""
    first = cli.json("progress", "update", "s", "--namespace", ns,
                     "--completed", "design", "--completed", "schema",
                     "--in-progress", "login form", "--next", "tests", "--next", "docs",
                     "--blocked", "deploy: waiting on credentials", "--blocked", "http://cdn",
                     "--summary", "halfway", "--total-items", "4")
    assert first["status"] == "active"  # created by the update
    assert first["completed"] == ["design", "schema"]
    assert first["in_progress"] == "login form"
    assert first["next_items"] == ["tests", "docs"]
    assert first["blocked"] == [{"item": "deploy", "reason": "waiting on credentials"},
                                {"item": "http://cdn"}]
    assert first["progress_percent"] == 50.0

    cli.json("progress", "update", "s", "--namespace", ns, "--completed", "schema",
             "--completed", "login form", "--next", "release")
    after = cli.json("progress", "show", "s", "--namespace", ns)
    assert after["completed"] == ["design", "schema", "login form"]  # appended, no duplicate
    assert after["in_progress"] is None  # it was completed
    assert after["next_items"] == ["release"]  # replaced
    assert after["blocked"] == first["blocked"]  # untouched when not given
    assert after["summary"] == "halfway" and after["progress_percent"] == 75.0

    cli.json("progress", "update", "s", "--namespace", ns, "--blocked", "qa: no staging",
             "--in-progress", "release")
    replaced = cli.json("progress", "show", "s", "--namespace", ns)
    assert replaced["blocked"] == [{"item": "qa", "reason": "no staging"}]
    assert replaced["in_progress"] == "release"

    cli.json("progress", "update", "s", "--namespace", ns, "--clear-next", "--clear-blocked",
             "--status", "completed", "--completed", "release")
    done = cli.json("progress", "show", "s", "--namespace", ns)
    assert done["next_items"] == [] and done["blocked"] == []
    assert done["status"] == "completed" and done["in_progress"] is None
    assert done["completed"] == ["design", "schema", "login form", "release"]
    assert done["progress_percent"] == 100.0


def test_progress_show_renders_lists(cli: Cli, ns: str) -> None:
    cli.json("progress", "update", "s", "--namespace", ns, "--completed", "design",
             "--completed", "[bold]literal[/bold]", "--in-progress", "login form",
             "--next", "tests", "--blocked", "deploy: waiting on credentials",
             "--summary", "Build the auth flow", "--total-items", "4")
    result = cli("progress", "show", "s", "--namespace", ns)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Build the auth flow" in out and "2/4 (50%)" in out
    assert "✓ design" in out and "✓ [bold]literal[/bold]" in out  # markup printed as written
    assert "▶ login form" in out and "• tests" in out
    assert "✗ deploy - waiting on credentials" in out
    assert "Created:" in out and "Updated:" in out
    assert result.stderr == ""

    updated = cli("progress", "update", "s", "--namespace", ns, "--status", "paused")
    assert updated.exit_code == 0 and "Session 's' updated." in updated.stderr
    assert "paused" in updated.stdout


def test_progress_list_filters(cli: Cli, ns: str) -> None:
    cli.json("progress", "create", "a1", "--namespace", ns, "--agent-id", "alpha")
    cli.json("progress", "create", "a2", "--namespace", ns, "--agent-id", "alpha",
             "--status", "paused")
    cli.json("progress", "create", "b1", "--namespace", ns, "--agent-id", "beta")

    def ids(*args: str) -> set[str]:
        data = cli.json("progress", "list", "--namespace", ns, *args)
        assert data["count"] == len(data["sessions"])
        return {s["session_id"] for s in data["sessions"]}

    assert ids() == {"a1", "a2", "b1"}
    assert ids("--agent-id", "alpha") == {"a1", "a2"}
    assert ids("--status", "paused") == {"a2"}
    assert ids("--status", "active", "--agent-id", "beta") == {"b1"}
    assert len(ids("--limit", "2")) == 2
    assert len(ids("--agent-id", "alpha", "--limit", "1")) == 1

    empty = cli("progress", "list", "--namespace", ns, "--status", "failed")
    assert empty.exit_code == 0 and f"No sessions in namespace '{ns}'." in empty.stdout


def test_progress_errors(cli: Cli, ns: str) -> None:
    missing = cli.json("progress", "show", "nope", "--namespace", ns, code=4)
    assert missing["error"]["code"] == "session_not_found"
    assert missing["error"]["exit_code"] == 4 and "nope" in missing["error"]["message"]

    cli.json("progress", "create", "s", "--namespace", ns)
    duplicate = cli("progress", "create", "s", "--namespace", ns)
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr

    invalid = [
        ("progress", "list", "--status", "bogus"),
        ("progress", "list", "--limit", "0"),
        ("progress", "create", "x", "--status", "done"),
        ("progress", "update", "s", "--status", "finished"),
        ("progress", "update", "s"),  # nothing to update
        ("progress", "update", "s", "--next", "a", "--clear-next"),
        ("progress", "update", "s", "--blocked", "a", "--clear-blocked"),
        ("progress", "update", "s", "--blocked", ": no item"),
        ("progress", "update", "s", "--total-items", "-1"),
        ("progress", "update", "s", "--completed", "   "),
        ("progress", "show", "  "),
    ]
    for args in invalid:
        result = cli(*args, "--namespace", ns)
        assert result.exit_code == 5, (args, result.stdout, result.stderr)
        assert "Error:" in result.stderr and "Traceback" not in result.stderr

    shape = cli.json("progress", "update", "s", "--namespace", ns, "--status", "x", code=5)
    assert shape["error"]["exit_code"] == 5 and shape["error"]["code"] == "invalid_status"
    # Statuses are forgiving about case; nothing invalid reached the server.
    ok = cli.json("progress", "update", "s", "--namespace", ns, "--status", "PAUSED")
    assert ok["status"] == "paused" and ok["completed"] == [] and ok["total_items"] is None


# ----------------------------------------------------------------------------- features


def test_features_create_show_and_list(cli: Cli, ns: str) -> None:
    created = cli.json("features", "create", "login", "--namespace", ns,
                       "--description", "Users log in with email", "--session-id", "s1",
                       "--category", "auth", "--test-steps", "open /login",
                       "--test-steps", "submit the form", "--agent-id", "coder")
    assert created["feature_id"] == "login" and created["namespace"] == ns
    assert created["status"] == "not_started" and created["passes"] is False
    assert created["test_steps"] == ["open /login", "submit the form"]
    assert created["session_id"] == "s1" and created["category"] == "auth"
    assert created["implemented_by"] == "coder" and created["verified_by"] is None
    assert cli.json("features", "show", "login", "--namespace", ns) == created

    cli.json("features", "create", "signup", "--namespace", ns, "--session-id", "s2")
    cli.json("features", "update", "signup", "--namespace", ns, "--status", "in-progress")

    listed = cli.json("features", "list", "--namespace", ns)
    assert set(listed) == {"features", "total", "passing", "failing", "in_progress"}
    assert (listed["total"], listed["passing"], listed["failing"], listed["in_progress"]) == (
        2, 0, 0, 1)
    assert {f["feature_id"] for f in listed["features"]} == {"login", "signup"}
    by_session = cli.json("features", "list", "--namespace", ns, "--session-id", "s1")
    assert [f["feature_id"] for f in by_session["features"]] == ["login"]
    by_status = cli.json("features", "list", "--namespace", ns, "--status", "in_progress")
    assert [f["feature_id"] for f in by_status["features"]] == ["signup"]

    table = cli("features", "list", "--namespace", ns)
    assert table.exit_code == 0, table.stderr
    for text in ("login", "signup", "not_started", "in_progress",
                 "2 features: 0 passing, 0 failing, 1 in progress"):
        assert text in table.stdout
    none = cli("features", "list", "--namespace", ns, "--status", "blocked")
    assert none.exit_code == 0 and "No features match." in none.stdout

    panel = cli("features", "show", "login", "--namespace", ns)
    assert panel.exit_code == 0, panel.stderr
    for text in ("Users log in with email", "not_started", "Session: s1", "Category: auth",
                 "Implemented by: coder", "Test steps (2)", "• open /login"):
        assert text in panel.stdout


def test_features_verify_and_fail_transitions(cli: Cli, ns: str) -> None:
    cli.json("features", "create", "f", "--namespace", ns, "--test-steps", "run the suite")
    working = cli.json("features", "update", "f", "--namespace", ns, "--status", "testing")
    assert working["status"] == "testing" and working["passes"] is False

    verified = cli.json("features", "verify", "f", "--namespace", ns, "--by", "qa-bot")
    assert verified["status"] == "complete" and verified["passes"] is True
    assert verified["verified_by"] == "qa-bot" and verified["completed_at"] is not None
    listed = cli.json("features", "list", "--namespace", ns)
    assert listed["passing"] == 1 and listed["failing"] == 0

    failed = cli.json("features", "fail", "f", "--namespace", ns, "--reason", "500 on submit")
    assert failed["status"] == "failed" and failed["passes"] is False
    assert failed["failure_reason"] == "500 on submit" and failed["completed_at"] is None
    listed = cli.json("features", "list", "--namespace", ns)
    assert listed["passing"] == 0 and listed["failing"] == 1

    again = cli.json("features", "verify", "f", "--namespace", ns, "--by", "qa-bot")
    assert again["passes"] is True and again["failure_reason"] is None

    # Moving a complete feature back into work withdraws its pass.
    reopened = cli.json("features", "update", "f", "--namespace", ns, "--status", "in_progress")
    assert reopened["status"] == "in_progress" and reopened["passes"] is False

    # A failure reason alone marks the feature failed; --passes completes it.
    reason = cli.json("features", "update", "f", "--namespace", ns,
                      "--failure-reason", "flaky")
    assert reason["status"] == "failed" and reason["failure_reason"] == "flaky"
    passed = cli.json("features", "update", "f", "--namespace", ns, "--passes",
                      "--verified-by", "ci")
    assert passed["status"] == "complete" and passed["verified_by"] == "ci"
    not_passing = cli.json("features", "update", "f", "--namespace", ns, "--no-passes")
    assert not_passing["status"] == "failed" and not_passing["passes"] is False


def test_features_human_messages(cli: Cli, ns: str) -> None:
    created = cli("features", "create", "f", "--namespace", ns)
    assert created.exit_code == 0 and "Feature 'f' created." in created.stderr
    verified = cli("features", "verify", "f", "--namespace", ns, "--by", "qa")
    assert verified.exit_code == 0 and "Feature 'f' verified." in verified.stderr
    assert "✓ yes" in verified.stdout and "Verified by: qa" in verified.stdout
    assert "Completed:" in verified.stdout
    failed = cli("features", "fail", "f", "--namespace", ns, "--reason", "broke in prod")
    assert failed.exit_code == 0 and "Feature 'f' marked failed." in failed.stderr
    assert "Failure: broke in prod" in failed.stdout and "✗ no" in failed.stdout


def test_features_outcome_links_the_retrieval_event(cli: Cli, ns: str) -> None:
    """--retrieval-event-id, --selected-memory-ids and --task-id reach the server's event log,
    which is what ties retrieved memories to the outcome."""
    event_id = uuid.uuid4().hex
    cli.json("features", "create", "f", "--namespace", ns)
    cli.json("features", "verify", "f", "--namespace", ns, "--retrieval-event-id", event_id,
             "--selected-memory-ids", "m1", "--selected-memory-ids", "m2", "--task-id", "t-1")
    fail_event = uuid.uuid4().hex
    cli.json("features", "fail", "f", "--namespace", ns, "--reason", "regressed",
             "--retrieval-event-id", fail_event)
    rows = cli.server.sql(
        "SELECT retrieval_event_id, task_id, memory_ids FROM events "
        "WHERE namespace = :ns AND event_type = 'feature_updated' ORDER BY created_at", ns=ns)
    assert [r[0] for r in rows] == [event_id, fail_event]
    assert rows[0][1] == "t-1" and rows[1][1] == "f"
    memory_ids = rows[0][2] if isinstance(rows[0][2], list) else json.loads(rows[0][2])
    assert memory_ids == ["m1", "m2"]


def test_features_errors(cli: Cli, ns: str) -> None:
    for args in (("features", "show", "ghost"), ("features", "verify", "ghost"),
                 ("features", "fail", "ghost", "--reason", "x"),
                 ("features", "update", "ghost", "--status", "blocked")):
        result = cli.json(*args, "--namespace", ns, code=4)
        assert result["error"]["code"] == "feature_not_found", args

    cli.json("features", "create", "f", "--namespace", ns)
    duplicate = cli("features", "create", "f", "--namespace", ns)
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr

    invalid = [
        ("features", "update", "f", "--status", "complete"),  # complete needs --passes
        ("features", "update", "f", "--passes", "--status", "blocked"),
        ("features", "update", "f", "--status", "done"),
        ("features", "update", "f"),  # nothing to update
        ("features", "fail", "f"),  # --reason is required
        ("features", "fail", "f", "--reason", "  "),
        ("features", "list", "--status", "passing"),
        ("features", "create", "g", "--test-steps", ""),
        ("features", "create", "  "),
    ]
    for args in invalid:
        result = cli(*args, "--namespace", ns)
        assert result.exit_code == 5, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    premature = cli.json("features", "update", "f", "--namespace", ns, "--status", "complete",
                         code=5)
    assert premature["error"]["code"] == "premature_completion"
    # None of the refused changes reached the feature.
    unchanged = cli.json("features", "show", "f", "--namespace", ns)
    assert unchanged["status"] == "not_started" and unchanged["passes"] is False
    assert cli.json("features", "list", "--namespace", ns)["total"] == 1


# ----------------------------------------------------------------------------- connection


def test_auth_and_connection_exit_codes(cli: Cli, ns: str) -> None:
    for args in (("progress", "list"), ("progress", "show", "s"),
                 ("features", "list"), ("features", "verify", "f")):
        wrong_key = cli(*args, "--namespace", ns, api_key="not-a-key")
        assert wrong_key.exit_code == 3, (args, wrong_key.stderr)
        assert "aegis config" in wrong_key.stderr  # the fixes are printed
        closed = cli(*args, "--namespace", ns, base_url=f"http://127.0.0.1:{free_port()}")
        assert closed.exit_code == 2, (args, closed.stderr)
        assert "aegis serve" in closed.stderr
    as_json = cli("features", "list", "--namespace", ns, "--json", api_key="not-a-key")
    assert json.loads(as_json.stdout)["error"]["exit_code"] == 3
    bad_url = cli("progress", "list", "--namespace", ns, "--json", base_url="ftp://host")
    assert bad_url.exit_code == 5 and json.loads(bad_url.stdout)["error"]["exit_code"] == 5


def test_groups_show_help(cli: Cli) -> None:
    for group, commands in (("progress", ("list", "show", "create", "update")),
                            ("features", ("list", "show", "create", "update", "verify",
                                          "fail"))):
        result = runner.invoke(app, [group, "--help"], env=cli.env)
        assert result.exit_code == 0
        for command in commands:
            assert command in result.stdout


# ----------------------------------------------------------------------------- subprocess


def test_subprocess_round_trip(sqlite_server: ServerProcess, ns: str, tmp_path: Path) -> None:
    base = ("--base-url", sqlite_server.base_url)
    session = unique("sp")
    updated = aegis(*base, "progress", "update", session, "--namespace", ns,
                    "--completed", "one", "--blocked", "two: needs review", "--json",
                    tmp_path=tmp_path)
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["completed"] == ["one"]
    shown = aegis(*base, "progress", "show", session, "--namespace", ns, tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "✓ one" in shown.stdout and "✗ two - needs review" in shown.stdout

    created = aegis(*base, "features", "create", "feat", "--namespace", ns,
                    "--session-id", session, tmp_path=tmp_path)
    assert created.returncode == 0 and "Feature 'feat' created." in created.stderr
    verified = aegis(*base, "features", "verify", "feat", "--namespace", ns, "--by", "qa",
                     "--json", tmp_path=tmp_path)
    assert verified.returncode == 0 and json.loads(verified.stdout)["passes"] is True


def test_subprocess_exit_codes(sqlite_server: ServerProcess, ns: str, tmp_path: Path) -> None:
    base = ("--base-url", sqlite_server.base_url)
    missing = aegis(*base, "features", "show", "ghost", "--namespace", ns, tmp_path=tmp_path)
    assert missing.returncode == 4 and "No feature 'ghost'" in missing.stderr
    wrong = aegis(*base, "--api-key", "wrong", "progress", "list", tmp_path=tmp_path)
    assert wrong.returncode == 3 and "Traceback" not in wrong.stderr
    closed = aegis("--base-url", f"http://127.0.0.1:{free_port()}", "features", "list",
                   tmp_path=tmp_path)
    assert closed.returncode == 2 and "Traceback" not in closed.stderr
    invalid = aegis(*base, "features", "fail", "x", "--namespace", ns, "--json",
                    tmp_path=tmp_path)
    assert invalid.returncode == 5
    assert json.loads(invalid.stdout)["error"]["code"] == "missing_reason"
