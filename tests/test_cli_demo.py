"""``aegis demo``: the five acts, run for real - embedded when no server answers, against a
real server when one does - and what they leave behind.

The embedded runs are real subprocesses (start-up included in the time measured), with the
config isolated, no LLM key, and the global ``--base-url`` pointing at a closed loopback port,
so they show what a user on a fresh machine sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aegis_memory import AegisClient
from aegis_memory.cli.main import app
from tests.conftest import ServerProcess, free_port
from tests.fake_llm import ANTHROPIC_KEY, OPENAI_KEY, FakeLLM, facts_json

ACT_TITLES = ["The problem", "Aegis Memory", "Smart extraction", "Multi-agent",
              "Self-improvement"]
#: The README promises 15 seconds; the test allows slack for a busy 2-core CI machine.
TIME_LIMIT = 30.0
ANSI = "\x1b["


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment minus Aegis settings and LLM keys, with a config dir of its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AEGIS_", "DATABASE_", "OPENAI_", "ANTHROPIC_"))}
    return {**env, "AEGIS_CONFIG_DIR": str(tmp_path / "config"), "HF_HUB_OFFLINE": "1",
            **extra}


def run_demo(tmp_path: Path, *args: str, base_url: str | None = None,
             **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``aegis [--base-url URL] demo ARGS`` in ``tmp_path``; returns it and its wall time."""
    url = base_url or f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "aegis_memory.cli.main", "--base-url", url, "demo", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=clean_env(tmp_path, **env),
    )
    return result, time.perf_counter() - start


def assert_five_acts(text: str) -> None:
    for number, title in enumerate(ACT_TITLES, start=1):
        assert f"Act {number}/5 · {title}" in text, f"act {number} missing"


def act(summary: dict[str, Any], key: str) -> dict[str, Any]:
    return next(a for a in summary["acts"] if a["key"] == key)


# ============================================================================ offline


def test_offline_demo_runs_embedded_and_logs_plain_text(tmp_path: Path) -> None:
    # FORCE_COLOR gives the screen colour codes even through a pipe: the log must still have
    # none.
    result, seconds = run_demo(tmp_path, "--log", FORCE_COLOR="1")
    print(f"\naegis demo (embedded, subprocess, start-up included): {seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    screen = result.stdout
    assert ANSI in screen
    assert_five_acts(screen)
    assert "embedded Aegis server" in screen and "offline rule extractor" in screen
    assert "Traceback" not in result.stderr
    assert seconds < TIME_LIMIT

    log = (tmp_path / "demo.log").read_text(encoding="utf-8")
    assert ANSI not in log and "\x1b" not in log
    assert all(line == line.rstrip() for line in log.splitlines())  # no padding to share
    assert_five_acts(log)
    assert "offline rule extractor" in log and "embedded Aegis server" in log
    # The same narration as the screen, with real results in it.
    assert "User prefers dark mode" in log and "Narration saved to demo.log" in log


def test_json_summary_of_an_embedded_run(tmp_path: Path) -> None:
    result, seconds = run_demo(tmp_path, "--json")
    print(f"\naegis demo --json (embedded): {seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # nothing but the JSON document on stdout
    assert summary["target"]["mode"] == "embedded"
    assert summary["target"]["reason"].startswith("Cannot connect")
    assert summary["namespace"].startswith("demo-")
    assert summary["extractor"] == "rules"
    assert summary["log_file"] is None and summary["memories_in_namespace"] is None
    assert [a["act"] for a in summary["acts"]] == [1, 2, 3, 4, 5]
    assert [a["title"] for a in summary["acts"]] == ACT_TITLES
    assert all(a["seconds"] >= 0 for a in summary["acts"])
    assert 0 < summary["total_seconds"] < TIME_LIMIT

    assert act(summary, "problem")["memories_found"] == 0
    memory = act(summary, "memory")
    assert len(memory["stored"]) == 3 and memory["recalled"] == 3
    assert "restarted" in memory["reset"]
    assert memory["progress"]["in_progress"] == "write the migrations"
    assert memory["progress"]["completed"] == ["collect requirements", "draft the schema"]

    smart = act(summary, "smart")
    assert smart["extractor"] == "rules" and smart["live"] is False
    skipped = [t["skipped_reason"] for t in smart["turns"]]
    assert skipped == ["noise", None, None, "noise"]
    assert all(t["llm_calls"] == 0 for t in smart["turns"])
    assert [f["content"] for f in smart["turns"][1]["extracted"]] == [
        "User's name is John", "User is a Python developer", "User is based in Manchester",
        "User prefers dark mode"]
    assert len(smart["turns"][2]["superseded_ids"]) == 1  # Leeds replaced Manchester
    assert smart["context"]["context_string"] == "- User prefers dark mode"
    assert smart["stats"]["llm_calls_saved"] == 2

    multi = act(summary, "multi_agent")
    visible = {m["scope"]: m["visible_to"] for m in multi["memories"]}
    assert visible == {"agent-shared": {"executor": True, "reviewer": False},
                       "agent-private": {"executor": False, "reviewer": False},
                       "global": {"executor": True, "reviewer": True}}
    assert multi["private_leaked"] is False

    learning = act(summary, "learning")
    assert learning["voted_strategy_rank"] == 1
    assert learning["playbook"][0]["id"] == learning["strategies"][1]["id"]
    assert learning["playbook"][0]["helpful"] == 2
    assert learning["reflection_id"] in {e["id"] for e in learning["playbook"]}


def test_log_file_option(tmp_path: Path) -> None:
    target = tmp_path / "shared" / "story.txt"
    target.parent.mkdir()
    result, _ = run_demo(tmp_path, "--log-file", str(target), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["log_file"] == str(target)
    log = target.read_text(encoding="utf-8")
    assert_five_acts(log)
    assert ANSI not in log
    assert not (tmp_path / "demo.log").exists()


def test_unwritable_log_file_is_a_validation_error(tmp_path: Path) -> None:
    result, _ = run_demo(tmp_path, "--log-file", str(tmp_path / "missing" / "demo.log"))
    assert result.returncode == 5
    assert "Cannot write the log file" in result.stderr and "Traceback" not in result.stderr


def test_without_the_server_extra_it_says_how_to_install_it(tmp_path: Path) -> None:
    # A module named like the server's web framework that refuses to import, first on the
    # path: to local mode, the [server] extra is missing.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "fastapi.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'fastapi'\", name='fastapi')\n")
    result, _ = run_demo(tmp_path, PYTHONPATH=str(shadow))
    assert result.returncode == 1
    assert "pip install 'aegis-memory[server]'" in result.stderr
    assert "--base-url" in result.stderr and "Traceback" not in result.stderr


# ============================================================================ a real server


def test_demo_against_a_real_server_stores_its_data_there(
    tmp_path: Path, sqlite_server: ServerProcess
) -> None:
    result, seconds = run_demo(tmp_path, "--json", base_url=sqlite_server.base_url)
    print(f"\naegis demo --json (against a running server): {seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["target"] == {"mode": "server", "base_url": sqlite_server.base_url,
                                 "reason": None, "version": summary["target"]["version"],
                                 "startup_seconds": summary["target"]["startup_seconds"]}
    assert summary["target"]["version"]
    ns = summary["namespace"]
    assert "new client" in act(summary, "memory")["reset"]

    # The data is on the server, in the demo's namespace, where a user can inspect it.
    with AegisClient(api_key=sqlite_server.api_key, base_url=sqlite_server.base_url) as client:
        exported = list(client.export(namespace=ns))
        contents = {m.content for m in exported}
        assert "Alex is allergic to peanuts" in contents
        assert "User prefers dark mode" in contents
        assert "All services must log in JSON format" in contents
        for stored in act(summary, "memory")["stored"]:
            assert client.get(stored["id"]).namespace == ns
        assert client.dashboard_stats(namespace=ns).memories_total == \
            summary["memories_in_namespace"] > 0
        session = client.progress.get("onboarding-alex", namespace=ns)
        assert session.in_progress == "write the migrations"
        strategy = act(summary, "learning")["strategies"][1]["id"]
        assert client.get(strategy).bullet_helpful == 2
    rows = sqlite_server.sql("SELECT count(*) FROM memories WHERE namespace = :ns", ns=ns)
    assert rows[0][0] == len(exported)


def test_two_runs_do_not_collide(tmp_path: Path, sqlite_server: ServerProcess) -> None:
    first, _ = run_demo(tmp_path, "--json", base_url=sqlite_server.base_url)
    second, _ = run_demo(tmp_path, "--json", base_url=sqlite_server.base_url)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["namespace"] != two["namespace"]
    # Same story, same numbers: the second run did not see the first run's memories.
    assert one["memories_in_namespace"] == two["memories_in_namespace"]
    assert act(two, "problem")["memories_found"] == 0


def test_narration_names_the_server_and_namespace(tmp_path: Path,
                                                  sqlite_server: ServerProcess) -> None:
    result, _ = run_demo(tmp_path, base_url=sqlite_server.base_url, COLUMNS="200")
    assert result.returncode == 0, result.stderr
    assert_five_acts(result.stdout)
    assert f"the Aegis server at {sqlite_server.base_url}" in result.stdout
    assert "aegis stats --namespace demo-" in result.stdout
    assert not (tmp_path / "demo.log").exists()


def test_wrong_key_on_a_real_server_exits_3(tmp_path: Path,
                                            sqlite_server: ServerProcess) -> None:
    result, _ = run_demo(tmp_path, base_url=sqlite_server.base_url, AEGIS_API_KEY="wrong-key")
    assert result.returncode == 3
    assert "aegis config" in result.stderr and "Traceback" not in result.stderr


# ============================================================================ live extraction


def responder(prompt: str) -> str:
    turn = prompt.split("User said:", 1)[-1]
    if "I'm John" in turn:
        return facts_json(
            {"content": "User's name is John", "category": "personal_fact", "key": "name",
             "confidence": 0.98},
            {"content": "User prefers dark mode", "category": "preference",
             "confidence": 0.95},
        )
    if "Leeds" in turn:
        return facts_json({"content": "User lives in Leeds", "category": "personal_fact",
                           "key": "location", "confidence": 0.95})
    return '{"facts": []}'


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    fake.responder = responder
    yield fake
    fake.stop()


def invoke_demo(tmp_path: Path, base_url: str, **env: str) -> Any:
    """The demo in-process (CliRunner): an OpenAI-protocol fake needs only environment.
    JSON on stdout, the narration in ``tmp_path / "demo.log"``."""
    environment = {"AEGIS_CONFIG_DIR": str(tmp_path / "config"), "AEGIS_API_KEY": None,
                   "AEGIS_BASE_URL": None, "OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None,
                   "OPENAI_BASE_URL": None, "ANTHROPIC_BASE_URL": None, **env}
    return CliRunner().invoke(app, ["--base-url", base_url, "demo", "--json", "--log-file",
                                    str(tmp_path / "demo.log")], env=environment)


def test_live_llm_extraction_when_a_key_is_set(tmp_path: Path, sqlite_server: ServerProcess,
                                               fake_llm: FakeLLM) -> None:
    result = invoke_demo(tmp_path, sqlite_server.base_url, OPENAI_API_KEY=OPENAI_KEY,
                         OPENAI_BASE_URL=fake_llm.openai_url)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    smart = act(summary, "smart")
    assert summary["extractor"] == smart["extractor"] == "openai:gpt-4o-mini"
    assert smart["live"] is True and smart["fallback"] is None
    # Greeting and thanks never reached the model: two calls for four turns.
    assert fake_llm.calls == 2
    assert [t["llm_calls"] for t in smart["turns"]] == [0, 1, 1, 0]
    assert [f["content"] for f in smart["turns"][1]["extracted"]] == [
        "User's name is John", "User prefers dark mode"]
    assert smart["context"]["context_string"] == "- User prefers dark mode"
    log = (tmp_path / "demo.log").read_text(encoding="utf-8")
    assert "Extractor: live LLM extraction (openai:gpt-4o-mini)." in log
    assert "offline rule extractor" not in log


def test_anthropic_key_alone_selects_claude(tmp_path: Path, sqlite_server: ServerProcess,
                                            fake_llm: FakeLLM) -> None:
    result = invoke_demo(tmp_path, sqlite_server.base_url, ANTHROPIC_API_KEY=ANTHROPIC_KEY,
                         ANTHROPIC_BASE_URL=fake_llm.url)
    assert result.exit_code == 0, result.output
    smart = act(json.loads(result.stdout), "smart")
    assert smart["extractor"].startswith("anthropic:") and smart["live"] is True
    assert {r["protocol"] for r in fake_llm.requests} == {"anthropic"}
    assert fake_llm.calls == 2


def test_a_failing_llm_falls_back_to_the_rules_and_says_so(
    tmp_path: Path, sqlite_server: ServerProcess, fake_llm: FakeLLM
) -> None:
    result = invoke_demo(tmp_path, sqlite_server.base_url, OPENAI_API_KEY="sk-wrong",
                         OPENAI_BASE_URL=fake_llm.openai_url)
    assert result.exit_code == 0, result.output
    smart = act(json.loads(result.stdout), "smart")
    assert smart["extractor"] == "rules" and smart["live"] is False
    assert "401" in smart["fallback"] and "Incorrect API key" in smart["fallback"]
    assert fake_llm.calls == 1  # one failed call, then the rules for the rest
    assert len(smart["turns"][1]["extracted"]) == 4
    assert smart["stats"]["llm_calls"] == 1 and smart["stats"]["facts_stored"] == 5
    log = (tmp_path / "demo.log").read_text(encoding="utf-8")
    assert "live extraction failed" in log and "offline rule extractor" in log


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--log", "--log-file", "--json"):
        assert option in result.output
