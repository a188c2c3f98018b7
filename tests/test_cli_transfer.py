"""``aegis export`` / ``aegis import`` against real servers.

The source data lives in a fresh namespace of the shared SQLite server; every round trip goes
into a server of its own over an empty data directory, so "every field survived" is checked
against a database that held nothing before. Most cases drive the CLI in-process
(``CliRunner``); the ones about what a user's shell sees (stdout as a data stream, progress
bars on a terminal next to ``--json``) run it as a real process.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from aegis_memory.cli import transfer
from aegis_memory.cli.main import app
from aegis_memory.client.sync_client import AegisClient
from tests.conftest import ServerProcess, clean_env, free_port

UNICODE = "Grüße aus Köln: naïve café, 日本語のメモ, emoji 🚀✓"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str | None]:
    """An isolated config and no inherited key/URL, for in-process runs."""
    return {"AEGIS_CONFIG_DIR": str(tmp_path / "config"), "AEGIS_API_KEY": None,
            "AEGIS_BASE_URL": None}


def cli(url: str, *args: str, env: dict[str, str | None], key: str = "dev-key") -> Result:
    return CliRunner().invoke(app, ["--base-url", url, "--api-key", key, *args], env=env)


def aegis(*args: str, tmp_path: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a real process, with an isolated config."""
    env = clean_env(AEGIS_CONFIG_DIR=str(tmp_path / "config"), **extra_env)
    return subprocess.run([sys.executable, "-m", "aegis_memory.cli.main", *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def client_for(server: ServerProcess) -> AegisClient:
    return AegisClient(api_key=server.api_key, base_url=server.base_url, timeout=120)


def exported(server: ServerProcess, namespace: str | None = None,
             embeddings: bool = False) -> list[dict[str, Any]]:
    """Every memory of a server (or one namespace) as plain dicts, sorted by id."""
    with client_for(server) as client:
        items = client.export(namespace=namespace, include_embeddings=embeddings)
        return sorted((m.model_dump(mode="json") for m in items), key=lambda m: m["id"])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def seed_variety(server: ServerProcess, ns: str) -> list[str]:
    """A bit of everything export/import must carry: owners, scopes, ACLs, every memory type,
    metadata with unicode, votes, a deprecated memory and a TTL. Returns the ids."""
    with client_for(server) as c:
        strategy = c.add(f"Deploy via blue/green. {UNICODE}", agent_id="planner", namespace=ns,
                         memory_type="strategy", scope="global",
                         metadata={"note": UNICODE, "nested": {"list": [1, 2.5, "ü"], "ok": True}})
        shared = c.add("The staging DB password rotates weekly.", agent_id="coder",
                       namespace=ns, shared_with_agents=["reviewer", "planner"])
        private = c.add("I keep my scratch notes in /tmp/coder.", agent_id="coder", namespace=ns,
                        user_id="user-7")
        reflection = c.add("Never retry a 409 blindly; re-read the resource first.",
                           agent_id="reviewer", namespace=ns, memory_type="reflection",
                           shared_with_agents=["planner"],
                           error_pattern="retry-409", derived_from_agents=["coder", "planner"],
                           coordination_metadata={"handoff": "h-1", "ünïcode": UNICODE})
        ttl = c.add("The demo environment is up until tonight.", namespace=ns, ttl_seconds=7200,
                    user_id="user-7")
        old = c.add("Use Python 3.10 for the worker image.", agent_id="planner", namespace=ns)
        new = c.add("Use Python 3.12 for the worker image.", agent_id="planner", namespace=ns)
        batch = c.add_batch([
            {"content": "Session 12: login feature half done.", "namespace": ns,
             "agent_id": "planner", "memory_type": "progress"},
            {"content": "Feature checkout: passes its tests.", "namespace": ns,
             "memory_type": "feature", "metadata": {"feature_id": "checkout"}},
            {"content": "User prefers dark mode.", "namespace": ns, "user_id": "user-9"},
        ])
        c.vote(strategy.id, "helpful", voter_agent_id="reviewer", task_id="T-1")
        c.vote(strategy.id, "helpful", voter_agent_id="coder", task_id="T-2")
        c.vote(strategy.id, "harmful", voter_agent_id="planner")
        c.vote(reflection.id, "helpful", voter_agent_id="planner", task_id="T-3")
        c.deprecate(old.id, superseded_by=new.id, reason="Python 3.10 is end of life")
        return [strategy.id, shared.id, private.id, reflection.id, ttl.id, old.id, new.id,
                *(r.id for r in batch)]


def assert_variety(records: list[dict[str, Any]]) -> None:
    """The seed really exercises what the round trip claims to preserve."""
    assert {r["scope"] for r in records} == {"global", "agent-shared", "agent-private"}
    assert {r["memory_type"] for r in records} >= {"standard", "strategy", "reflection",
                                                  "progress", "feature"}
    assert any(r["votes"] for r in records) and any(r["bullet_harmful"] for r in records)
    assert any(r["is_deprecated"] and r["superseded_by"] and r["deprecation_reason"]
               for r in records)
    assert any(r["expires_at"] for r in records)
    assert any(r["shared_with_agents"] for r in records)
    assert any(UNICODE in json.dumps(r["metadata"], ensure_ascii=False) for r in records)
    assert len({r["agent_id"] for r in records}) >= 4  # three agents and no agent


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_round_trip_into_an_empty_server_preserves_every_field(
    fmt, sqlite_server, start_server, ns, tmp_path, cli_env
):
    ids = seed_variety(sqlite_server, ns)
    source = exported(sqlite_server, ns)
    assert sorted(ids) == [r["id"] for r in source]
    assert_variety(source)

    backup = tmp_path / f"backup.{fmt}"
    result = cli(sqlite_server.base_url, "export", "--output", str(backup), "--format", fmt,
                 "--namespace", ns, "--json", env=cli_env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == len(ids) and summary["file"] == str(backup)
    assert summary["bytes"] == backup.stat().st_size and summary["format"] == fmt
    assert summary["seconds"] >= 0
    if fmt == "json":
        assert isinstance(json.loads(backup.read_text("utf-8")), list)
    else:
        assert len(read_jsonl(backup)) == len(ids)
    assert not list(tmp_path.glob("*.part"))  # the temporary file was renamed, not left

    target = start_server(tmp_path / "b")
    assert exported(target) == []
    result = cli(target.base_url, "import", str(backup), "--json", env=cli_env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["imported"] == len(ids) and summary["skipped"] == 0
    assert summary["reembedded"] == len(ids)  # no vectors in the file: the target embeds
    assert summary["format"] == fmt  # detected from the first character

    restored = exported(target)
    assert [r["id"] for r in restored] == [r["id"] for r in source]
    for before, after in zip(source, restored, strict=True):
        for name in before:
            assert after[name] == before[name], (before["id"], name)

    # The restored copy answers searches (it was embedded) and keeps its ACL.
    with client_for(target) as c:
        found = c.query("blue/green deployment", namespace=ns, agent_id="reviewer")
        assert found and found[0].id == ids[0]
        assert ids[2] not in {m.id for m in c.query("scratch notes", namespace=ns,
                                                     agent_id="reviewer")}

    # Importing again changes nothing: every record is known.
    again = cli(target.base_url, "import", str(backup), "--json", env=cli_env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) | {"seconds": 0} == summary | {
        "imported": 0, "skipped": len(ids), "reembedded": 0, "seconds": 0}
    assert exported(target) == restored

    # The human summary says the same in a sentence.
    human = cli(target.base_url, "import", str(backup), env=cli_env)
    assert human.exit_code == 0, human.output
    assert f"Imported 0 of {len(ids)} memories" in human.stdout
    assert f"{len(ids)} skipped" in human.stdout


def test_round_trip_with_embeddings_needs_no_reembedding(
    sqlite_server, start_server, ns, tmp_path
):
    seed_variety(sqlite_server, ns)
    source = exported(sqlite_server, ns, embeddings=True)
    assert all(r["embedding"] and r["embedding_model"] for r in source)

    backup = tmp_path / "with-vectors.jsonl"
    out = aegis("--base-url", sqlite_server.base_url, "export", "-o", str(backup),
                "--namespace", ns, "--include-embeddings", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["count"] == len(source)
    assert json.loads(out.stdout)["embedding_encoding"] == "base64"
    # The compact form by default: base64 of the little-endian float32 bytes.
    by_id = {r["id"]: r["embedding"] for r in source}
    for row in read_jsonl(backup):
        vector = np.frombuffer(base64.b64decode(row["embedding"], validate=True), "<f4")
        assert vector.tolist() == by_id[row["id"]]

    target = start_server(tmp_path / "b")
    out = aegis("--base-url", target.base_url, "import", str(backup), "--batch-size", "3",
                "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["imported"] == len(source) and summary["reembedded"] == 0
    assert summary["batches"] == -(-len(source) // 3)
    restored = exported(target, embeddings=True)
    assert [r["id"] for r in restored] == [r["id"] for r in source]
    for before, after in zip(source, restored, strict=True):
        # The server re-normalises every stored vector; for an already unit-length float32
        # vector that can move the last bit, hence approx for the vector and == for the rest.
        assert after.pop("embedding") == pytest.approx(before.pop("embedding"), abs=1e-6)
        assert after == before


def test_float_embeddings_on_request_and_bad_base64_is_caught_before_sending(
    sqlite_server, ns, tmp_path
):
    """``--embedding-encoding float`` writes lists of numbers (for older servers and other
    tools); a file whose base64 embedding is broken is refused with its line, nothing sent."""
    with client_for(sqlite_server) as c:
        c.add("The release train leaves on Thursdays.", agent_id="a", namespace=ns)
    backup = tmp_path / "floats.jsonl"
    out = aegis("--base-url", sqlite_server.base_url, "export", "-o", str(backup),
                "--namespace", ns, "--include-embeddings", "--embedding-encoding", "float",
                "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    [row] = read_jsonl(backup)
    assert isinstance(row["embedding"], list) and len(row["embedding"]) > 0

    broken = tmp_path / "broken.jsonl"
    fresh = {**row, "id": uuid.uuid4().hex, "embedding": "bm90IGZsb2F0cw=="}  # 10 bytes
    broken.write_text(json.dumps({**row, "id": uuid.uuid4().hex}) + "\n"
                      + json.dumps(fresh) + "\n", "utf-8")
    out = aegis("--base-url", sqlite_server.base_url, "import", str(broken), "--json",
                tmp_path=tmp_path)
    assert out.returncode == 5, out.stdout + out.stderr
    [problem] = json.loads(out.stdout)["invalid"]
    assert problem["line"] == 2 and "embedding" in problem["error"], problem
    assert "float32" in problem["error"], problem
    assert len(exported(sqlite_server, ns)) == 1


# ----------------------------------------------------------------------------- export


def test_export_to_stdout_is_valid_jsonl_and_json(sqlite_server, ns, tmp_path):
    ids = seed_variety(sqlite_server, ns)
    out = aegis("--base-url", sqlite_server.base_url, "export", "--output", "-",
                "--namespace", ns, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(ids)
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(ids)
    assert f"Exported {len(ids)} memories to -" in out.stderr  # the summary keeps off stdout
    assert not list(tmp_path.glob("aegis-export-*"))

    out = aegis("--base-url", sqlite_server.base_url, "export", "-o", "-", "--format", "json",
                "--namespace", ns, "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted(m["id"] for m in json.loads(out.stdout)) == sorted(ids)
    assert json.loads(out.stderr)["count"] == len(ids)  # --json summary, on stderr here

    empty = CliRunner().invoke(app, ["--base-url", sqlite_server.base_url, "export", "-o", "-",
                                     "--format", "json", "--namespace", ns + "-empty"],
                               env={"AEGIS_CONFIG_DIR": str(tmp_path / "config"),
                                    "AEGIS_API_KEY": None, "AEGIS_BASE_URL": None})
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout) == []


def test_export_default_name_filters_and_directory_target(
    sqlite_server, ns, tmp_path, cli_env, monkeypatch
):
    ids = seed_variety(sqlite_server, ns)
    monkeypatch.chdir(tmp_path)
    result = cli(sqlite_server.base_url, "export", "--namespace", ns, env=cli_env)
    assert result.exit_code == 0, result.output
    [default] = tmp_path.glob("aegis-export-*.jsonl")
    assert default.name.endswith("Z.jsonl") and len(read_jsonl(default)) == len(ids)
    assert f"Exported {len(ids)} memories to {default.name}" in result.stdout

    folder = tmp_path / "backups"
    folder.mkdir()
    result = cli(sqlite_server.base_url, "export", "-o", str(folder), "--namespace", ns,
                 "--no-deprecated", "--format", "json", "--json", env=cli_env)
    assert result.exit_code == 0, result.output
    [written] = folder.glob("aegis-export-*.json")
    assert json.loads(result.stdout)["file"] == str(written)
    records = json.loads(written.read_text("utf-8"))
    assert len(records) == len(ids) - 1 and not any(r["is_deprecated"] for r in records)

    # As an agent: only what that agent may see (not coder's private note).
    result = cli(sqlite_server.base_url, "export", "-o", str(tmp_path / "reviewer.jsonl"),
                 "--namespace", ns, "--agent-id", "reviewer", env=cli_env)
    assert result.exit_code == 0, result.output
    seen = {r["id"] for r in read_jsonl(tmp_path / "reviewer.jsonl")}
    assert ids[1] in seen and ids[2] not in seen and ids[0] in seen

    result = cli(sqlite_server.base_url, "export", "-o", str(tmp_path / "u.jsonl"),
                 "--namespace", ns, "--user-id", "user-7", env=cli_env)
    assert result.exit_code == 0, result.output
    assert {r["user_id"] for r in read_jsonl(tmp_path / "u.jsonl")} == {"user-7"}


def test_failed_export_leaves_no_file_and_keeps_the_old_one(tmp_path, cli_env):
    closed = f"http://127.0.0.1:{free_port()}"
    target = tmp_path / "backup.jsonl"
    result = cli(closed, "export", "-o", str(target), env=cli_env)
    assert result.exit_code == 2
    assert "Cannot connect" in result.stderr
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .part file

    target.write_text("previous good backup\n")
    result = cli(closed, "export", "-o", str(target), "--json", env=cli_env)
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["exit_code"] == 2
    assert target.read_text() == "previous good backup\n"
    assert [p.name for p in tmp_path.iterdir()] == ["backup.jsonl"]

    # As an agent there is no up-front count, so the failure happens while the temporary
    # file is open: it is removed too.
    result = cli(closed, "export", "-o", str(target), "--agent-id", "a", "--format", "json",
                 env=cli_env)
    assert result.exit_code == 2
    assert [p.name for p in tmp_path.iterdir()] == ["backup.jsonl"]
    assert target.read_text() == "previous good backup\n"

    # A destination that cannot be created: a plain error, no traceback.
    result = cli(closed, "export", "-o", str(target / "nested.jsonl"), env=cli_env)
    assert result.exit_code == 1 and "Cannot write" in result.stderr
    assert "Traceback" not in result.output


def test_connection_and_auth_errors(sqlite_server, tmp_path, cli_env):
    backup = tmp_path / "one.jsonl"
    backup.write_text(json.dumps({"id": "c0ffee", "content": "x"}) + "\n")
    closed = f"http://127.0.0.1:{free_port()}"
    out = aegis("--base-url", closed, "import", str(backup), "--json", tmp_path=tmp_path)
    assert out.returncode == 2
    assert json.loads(out.stdout)["error"]["exit_code"] == 2
    assert "Cannot connect" in out.stderr and "Traceback" not in out.stderr

    # Exporting to stdout, stdout is for data only: the error stays on stderr even with --json.
    out = aegis("--base-url", closed, "export", "-o", "-", "--format", "json", "--json",
                tmp_path=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "Cannot connect" in out.stderr

    result = cli(sqlite_server.base_url, "export", "-o", str(tmp_path / "x.jsonl"),
                 env=cli_env, key="wrong-key")
    assert result.exit_code == 3
    result = cli(sqlite_server.base_url, "import", str(backup), env=cli_env, key="wrong-key")
    assert result.exit_code == 3


def test_import_stopped_half_way_says_how_to_finish(sqlite_server, ns, tmp_path, cli_env):
    """A key bound to one agent may import only that agent's memories; the server refuses the
    batch holding someone else's. The batches before it are stored, and the message says so."""
    with client_for(sqlite_server) as c:
        agent_key = c.keys.create(agent_id="planner", name=f"import-{ns}").key
    records = [{"id": f"{ns}-{i}", "content": f"planner fact {i}", "namespace": ns,
                "agent_id": "planner"} for i in range(2)]
    records.append({"id": f"{ns}-x", "content": "coder fact", "namespace": ns,
                    "agent_id": "coder"})
    backup = tmp_path / "mixed.jsonl"
    backup.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    result = cli(sqlite_server.base_url, "import", str(backup), "--batch-size", "2",
                 "--agent-id", "planner", env=cli_env, key=agent_key)
    assert result.exit_code == 3, result.output
    assert "2 of 3 memories were sent before the error (2 imported)" in result.stderr
    assert "run the same command again" in result.stderr and "coder" in result.stderr
    assert [r["id"] for r in exported(sqlite_server, ns)] == [f"{ns}-0", f"{ns}-1"]


# ----------------------------------------------------------------------------- import checks


def test_dry_run_sends_nothing_and_reports_the_plan(sqlite_server, ns, tmp_path, cli_env):
    records = [
        {"id": f"dry-{ns}-{i}", "content": f"dry run memory {i}", "namespace": ns,
         "agent_id": ["alpha", "beta"][i % 2], "scope": "agent-private",
         "memory_type": ["standard", "strategy", "reflection"][i % 3],
         "is_deprecated": i == 4, "votes": [{"voter_agent_id": "gamma", "vote": "helpful"}]}
        for i in range(6)
    ]
    backup = tmp_path / "plan.jsonl"
    backup.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")

    result = cli(sqlite_server.base_url, "import", str(backup), "--dry-run", "--json",
                 env=cli_env)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["would_import"] == 6 and plan["records"] == 6
    assert plan["invalid_count"] == 0 and plan["invalid"] == []
    assert plan["namespaces"] == {ns: 6}
    assert plan["agents"] == {"alpha": 3, "beta": 3}
    assert plan["memory_types"] == {"standard": 2, "strategy": 2, "reflection": 2}
    assert plan["deprecated"] == 1 and plan["votes"] == 6 and plan["with_embeddings"] == 0
    assert exported(sqlite_server, ns) == []  # nothing reached the server

    human = cli(sqlite_server.base_url, "import", str(backup), "--dry-run", env=cli_env)
    assert human.exit_code == 0, human.output
    assert "nothing was sent" in human.stdout and "6 memories would be imported" in human.stdout
    assert "alpha 3" in human.stdout

    # It does not even need a server.
    closed = f"http://127.0.0.1:{free_port()}"
    assert cli(closed, "import", str(backup), "--dry-run", env=cli_env).exit_code == 0
    assert exported(sqlite_server, ns) == []


def test_invalid_records_import_nothing_and_name_their_lines(
    sqlite_server, ns, tmp_path, cli_env
):
    good = [{"id": f"ok-{ns}-{i}", "content": f"fine memory {i}", "namespace": ns}
            for i in range(4)]
    lines = [json.dumps(good[0]), json.dumps(good[1]),
             json.dumps({"id": f"bad-{ns}", "namespace": ns, "scope": "everyone"}),  # line 3
             "", json.dumps(good[2]),
             "{not json",  # line 6
             json.dumps(good[0]),  # line 7: the same id again
             json.dumps({"id": f"own-{ns}", "content": "x", "scope": "agent-private"}),
             json.dumps(good[3])]
    backup = tmp_path / "broken.jsonl"
    backup.write_text("\n".join(lines) + "\n", "utf-8")

    result = cli(sqlite_server.base_url, "import", str(backup), env=cli_env)
    assert result.exit_code == 5, result.output
    assert "4 of 8 record(s)" in result.stderr and "nothing was imported" in result.stderr
    assert "content: Field required" in result.stderr
    assert exported(sqlite_server, ns) == []  # not even the valid records before line 3

    result = cli(sqlite_server.base_url, "import", str(backup), "--json", env=cli_env)
    assert result.exit_code == 5
    report = json.loads(result.stdout)
    assert report["error"]["code"] == "invalid_records" and report["invalid_count"] == 4
    by_line = {item["line"]: item["error"] for item in report["invalid"]}
    assert set(by_line) == {3, 6, 7, 8}
    assert "content: Field required" in by_line[3] and "scope" in by_line[3]
    assert "not valid JSON" in by_line[6]
    assert "already appears on line 1" in by_line[7]
    assert "needs an owner" in by_line[8]

    result = cli(sqlite_server.base_url, "import", str(backup), "--dry-run", "--json",
                 env=cli_env)
    assert result.exit_code == 5 and json.loads(result.stdout)["valid"] == 4
    assert exported(sqlite_server, ns) == []


def test_invalid_json_array_reports_lines(sqlite_server, ns, tmp_path, cli_env):
    backup = tmp_path / "broken.json"
    backup.write_text(
        "[\n"
        f'  {{"id": "a-{ns}", "content": "one", "namespace": "{ns}"}},\n'
        f'  {{"id": "b-{ns}", "namespace": "{ns}",\n'
        '    "votes": [{"vote": "maybe", "voter_agent_id": "x"}]},\n'
        f'  {{"id": "c-{ns}", "content": "three", "namespace": "{ns}"}}\n', "utf-8")
    result = cli(sqlite_server.base_url, "import", str(backup), "--json", env=cli_env)
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "json" and report["records"] == 3
    [bad, truncated] = report["invalid"]
    assert bad["line"] == 3 and bad["record"] == 2
    assert "content: Field required" in bad["error"] and "votes.0.vote" in bad["error"]
    assert truncated["line"] == 6 and "not closed" in truncated["error"]
    assert exported(sqlite_server, ns) == []


def test_file_problems_and_bad_options(tmp_path, cli_env):
    url = f"http://127.0.0.1:{free_port()}"  # none of these reach a server
    result = cli(url, "import", str(tmp_path / "missing.jsonl"), env=cli_env)
    assert result.exit_code == 1 and "No such file" in result.stderr
    result = cli(url, "import", str(tmp_path / "missing.jsonl"), "--json", env=cli_env)
    assert json.loads(result.stdout)["error"]["code"] == "file_not_found"
    assert cli(url, "import", str(tmp_path), env=cli_env).exit_code == 1

    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")
    result = cli(url, "import", str(text), env=cli_env)
    assert result.exit_code == 5 and "does not look like an Aegis export" in result.stderr
    result = cli(url, "import", str(text), "--format", "json", "--json", env=cli_env)
    assert result.exit_code == 5
    assert "JSON array" in json.loads(result.stdout)["invalid"][0]["error"]

    result = cli(url, "import", str(text), "--batch-size", "1001", env=cli_env)
    assert result.exit_code == 5 and "--batch-size" in result.stderr

    empty = tmp_path / "empty.json"
    empty.write_text(" [ ] \n")
    result = cli(url, "import", str(empty), "--json", env=cli_env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records"] == 0  # nothing to send: no server needed


def test_json_array_reader_across_chunk_boundaries(tmp_path, monkeypatch):
    """Records longer than the read size, split at every possible place, keep their lines."""
    records = [{"id": f"m{i}", "content": f'content {i} "q" \\ ' + "ü" * i,
                "metadata": {"i": i, "f": i / 3, "t": True, "n": None, "no": False}}
               for i in range(12)]
    path = tmp_path / "a.json"
    # Odd records with \\uXXXX escapes, even ones with raw UTF-8: cuts land inside both.
    path.write_text("\ufeff  [\n" + ",\n\n".join(json.dumps(r, ensure_ascii=bool(i % 2))
                                               for i, r in enumerate(records)) + "\n]\n",
                    "utf-8")
    assert transfer._detect_format(path) is transfer.ImportFormat.json
    for size in (1, 2, 3, 7, 13, 1 << 16):
        monkeypatch.setattr(transfer, "_CHUNK", size)
        read = list(transfer._RecordReader(path, transfer.ImportFormat.json))
        assert [r.data for r in read] == records, size
        assert [r.line for r in read] == [2 + 2 * i for i in range(12)], size
        assert all(r.error is None for r in read), size
    monkeypatch.setattr(transfer, "_CHUNK", 7)

    # A real syntax error is reported where it is, without reading on to the end.
    broken = tmp_path / "broken.json"
    broken.write_text("[\n" + json.dumps(records[0]) + "\n" + json.dumps(records[1]) + ",\n"
                      + ",\n".join(json.dumps(r) for r in records * 50) + "\n]\n")
    reader = transfer._RecordReader(broken, transfer.ImportFormat.json)
    [first, error] = list(reader)
    assert first.data == records[0] and error.fatal and error.line == 3
    assert "line 2" in error.error
    assert reader.bytes_read < broken.stat().st_size / 10


# ----------------------------------------------------------------------------- scale


def test_large_export_and_import_with_progress_on_a_terminal(sqlite_server, ns, tmp_path):
    count = 2_000
    with client_for(sqlite_server) as c:
        added = c.add_batch([{"content": f"bulk memory {i}: service {i % 37} uses port "
                                         f"{8000 + i}", "namespace": ns,
                              "agent_id": f"agent-{i % 4}", "scope": "global"}
                             for i in range(count)])
    assert len({r.id for r in added}) == count
    backup = tmp_path / "big.jsonl"
    # FORCE_COLOR makes Rich treat stderr as a terminal, so the bars are really drawn there.
    out = aegis("--base-url", sqlite_server.base_url, "export", "-o", str(backup),
                "--namespace", ns, "--json", tmp_path=tmp_path, FORCE_COLOR="1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["count"] == count  # stdout is nothing but the summary
    assert "Exporting" in out.stderr
    assert len(read_jsonl(backup)) == count

    out = aegis("--base-url", sqlite_server.base_url, "import", str(backup), "--json",
                tmp_path=tmp_path, FORCE_COLOR="1")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["records"] == count and summary["skipped"] == count
    assert summary["imported"] == 0 and summary["batches"] == 4
    assert "Importing" in out.stderr and "Checking" in out.stderr
