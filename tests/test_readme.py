"""Every Python snippet of the README runs as written against a real server.

The snippets name ``http://localhost:8000``; the test serves on port 8000 when it is free (so the
text runs verbatim) and otherwise points the same text at its own port.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.fake_llm import OPENAI_KEY, FakeLLM, facts_json

README = Path(__file__).resolve().parents[1] / "README.md"


def snippets() -> dict[str, str]:
    """Python code blocks keyed by the heading above them."""
    text = README.read_text()
    found: dict[str, str] = {}
    heading = ""
    for part in re.split(r"(^#+ [^\n]*$|```python\n.*?```)", text, flags=re.M | re.S):
        if part.startswith("#"):
            heading = part.lstrip("#").strip()
        elif part.startswith("```python"):
            found[heading] = part.removeprefix("```python\n").removesuffix("```")
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory):
    port = 8000 if _port_free(8000) else None
    proc = ServerProcess(tmp_path_factory.mktemp("readme") / "data")
    if port:
        proc.port = port
    proc.start()
    yield proc
    proc.stop()


def run_snippet(server: ServerProcess, code: str, epilogue: str = "", cwd: Path | None = None,
                **extra_env: str):
    code = code.replace("http://localhost:8000", server.base_url)
    program = code + "\n" + textwrap.dedent(epilogue)
    env = {"AEGIS_BASE_URL": server.base_url, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "AEGIS_CONFIG_DIR": str(cwd or Path.cwd()), **extra_env}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            env=env, timeout=180, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_has_the_snippets():
    names = set(snippets())
    assert {"Manual control: AegisClient", "Agents sharing memories",
            "Async usage (FastAPI / LangGraph / CrewAI)",
            "Without a server: local mode",
            "Smart Memory: decide what is worth remembering"} <= names


def test_manual_control(readme_server):
    out = run_snippet(readme_server, snippets()["Manual control: AegisClient"], """
        m = client.get(memories[0].id, agent_id="assistant")
        print(m.content, m.bullet_helpful)
    """)
    assert "User prefers concise responses 1" in out


def test_agents_sharing(readme_server):
    out = run_snippet(readme_server, snippets()["Agents sharing memories"])
    assert out.strip().splitlines()[0] == \
        "Task: Build login. Steps: 1) Form, 2) Validation, 3) API"
    with httpx.Client(base_url=readme_server.base_url,
                      headers={"Authorization": "Bearer dev-key"}) as c:
        r = c.post("/memories/query_cross_agent", json={
            "query": "current task", "requesting_agent_id": "outsider",
            "target_agent_ids": ["planner"]})
        assert r.json()["memories"] == []


def test_async_usage(readme_server):
    out = run_snippet(readme_server, snippets()["Async usage (FastAPI / LangGraph / CrewAI)"], """
        import asyncio
        found = asyncio.run(handle_turn("user_42", "I prefer dark mode in every editor"))
        print(found[0].content, found[0].user_id)
    """)
    assert "I prefer dark mode in every editor user_42" in out


def test_local_mode(readme_server, tmp_path):
    out = run_snippet(readme_server, snippets()["Without a server: local mode"], cwd=tmp_path)
    assert "The staging cluster is in eu-west-1" in out
    assert (tmp_path / "aegis-data" / "aegis.db").exists()


def test_ace_patterns(readme_server, tmp_path):
    out = run_snippet(readme_server, snippets()["ACE patterns: agents that learn what works"], """
        print([e.content for e in strategies])
        print(client.progress.get("build-dashboard").completed)
        print(client.playbook("pagination", agent_id="executor",
                              error_pattern="pagination_incomplete")[0].content)
    """, cwd=tmp_path)
    lines = out.strip().splitlines()
    assert "For API pagination, follow the next cursor until it is empty" in lines[0]
    assert lines[1] == "['auth', 'routing']"
    assert lines[2] == "Always use while True for pagination, not range(n)"


SMART = "Smart Memory: decide what is worth remembering"


def test_smart_memory_offline(readme_server):
    """No OPENAI_API_KEY in the environment: the rule extractor gives the README's facts."""
    out = run_snippet(readme_server, snippets()[SMART], """
        print(memory.extractor)
        found = memory.client.query("user", user_id="user_123", top_k=10)
        print(sorted(m.content for m in found))
    """)
    lines = out.strip().splitlines()
    assert lines[0] == "- User prefers dark mode"
    assert lines[1] == "rules"
    assert lines[2] == str(sorted(["User's name is John", "User is a Python developer",
                                   "User is based in Manchester", "User prefers dark mode"]))


def test_smart_memory_with_an_openai_key(readme_server):
    """With a key the same text calls the model (a fake OpenAI server found through the
    ``openai`` library's own OPENAI_BASE_URL) and gives the same context."""
    fake = FakeLLM().start()
    fake.responder = lambda _prompt: facts_json(
        {"content": "User's name is John", "category": "personal_fact", "key": "name"},
        {"content": "User is a Python developer", "category": "personal_fact",
         "key": "profession"},
        {"content": "User is based in Manchester", "category": "personal_fact",
         "key": "location"},
        {"content": "User prefers dark mode", "category": "preference"},
    )
    try:
        out = run_snippet(readme_server, snippets()[SMART], "print(memory.extractor)",
                          OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=fake.openai_url)
    finally:
        fake.stop()
    assert out.strip().splitlines() == ["- User prefers dark mode", "openai:gpt-4o-mini"]
    assert fake.calls == 1
    assert "I'm John, a Python developer" in str(fake.requests[0]["json"]["messages"])


def bash_snippet(heading: str) -> list[str]:
    """The commands of the ``bash`` block under ``heading``, comments stripped."""
    text = README.read_text().split(f"## {heading}\n", 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_command_line_section_runs_as_written(readme_server, tmp_path):
    """Each line of the README's "Command line" block, in order, against a real server."""
    import json
    import shlex

    from aegis_memory import AegisClient

    with AegisClient(api_key="dev-key", base_url=readme_server.base_url) as client:
        # What the commands refer to: the session and feature of the ACE snippet.
        client.progress.update(session_id="build-dashboard", completed=["auth", "routing"],
                               in_progress="api-client",
                               blocked=[{"item": "payments", "reason": "Waiting for API keys"}])
        try:
            client.features.get("checkout")
        except Exception:
            client.features.create("checkout", description="Checkout flow")
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "AEGIS_CONFIG_DIR": str(tmp_path),
           "AEGIS_BASE_URL": readme_server.base_url, "COLUMNS": "120"}

    def aegis(args: list[str], stdin: str = "") -> str:
        done = subprocess.run([sys.executable, "-m", "aegis_memory.cli.main", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              input=stdin, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    lines = bash_snippet("Command line")
    assert lines[0].startswith("aegis demo") and len(lines) >= 10
    memory_id = None
    outputs: dict[str, str] = {}
    for line in lines:
        args = shlex.split(line)
        assert args[0] == "aegis"
        if "<id>" in args:
            args[args.index("<id>")] = memory_id
        stdin = "\n\n" if args[1:3] == ["config", "init"] else ""  # accept the defaults
        outputs[args[1]] = aegis(args[1:], stdin)
        if args[1] == "add":
            found = json.loads(aegis(["query", args[2], "--agent-id", "ops", "--json"]))
            memory_id = found["memories"][0]["id"]
    assert (tmp_path / "backup.jsonl").exists() and (tmp_path / "config.json").exists()
    assert "Deploys happen on Tuesdays" in outputs["query"]
    assert "Act 5/5" in outputs["demo"]
    with AegisClient(api_key="dev-key", base_url=readme_server.base_url) as client:
        assert client.get(memory_id).bullet_helpful >= 1
        assert client.features.get("checkout").status == "complete"


def test_framework_integrations(readme_server, tmp_path):
    out = run_snippet(readme_server, snippets()["Framework integrations"], cwd=tmp_path)
    lines = out.strip().splitlines()
    assert lines[0] == "['Ann is vegetarian']"
    assert lines[1] == "Ann's standup is at 9:30"
