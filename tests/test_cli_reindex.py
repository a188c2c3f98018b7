"""``aegis reindex``: data embedded with one model, served with another after re-embedding.

Real servers and a real CLI process on real databases (SQLite and PostgreSQL). The second
model is the fake OpenAI-protocol server of ``test_embeddings`` (deterministic 8-dimensional
vectors: a text finds itself with score 1.0), the first (or the other way round) the bundled
local model, whose vectors make paraphrases find their memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aegis_memory.cli.main import app
from aegis_memory.embeddings import LOCAL_MODEL_NAME
from tests.conftest import ServerProcess, clean_env, database_rows, fresh_database, new_project
from tests.test_embeddings import API_KEY, FakeOpenAI

FAKE_MODEL = "fake-model"  # 8 dims, learned from the fake server's first answer
MARKER = f"(unfinished `aegis reindex` to {FAKE_MODEL})"

#: (memory, a paraphrase that should find it with the local model)
FACTS = [
    ("The deployment pipeline ships the web app to the Kubernetes cluster every night.",
     "how is the application deployed to kubernetes"),
    ("Alice prefers a dark colour theme in every code editor she uses.",
     "which editor theme does Alice like"),
    ("Invoices of the billing service are stored in the PostgreSQL database.",
     "where are invoices kept"),
    ("The office cat is called Whiskers and loves eating tuna.",
     "what is the name of the cat"),
    ("The public API allows at most 100 requests per minute for each key.",
     "what is the rate limit of the api"),
    ("The quarterly financial report is due on the first Friday of April.",
     "when is the quarterly report deadline"),
]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def openai_env(fake: FakeOpenAI) -> dict[str, str]:
    return {"AEGIS_EMBEDDING_PROVIDER": "openai", "AEGIS_EMBEDDING_MODEL": FAKE_MODEL,
            "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url}


def slow_down(fake: FakeOpenAI, seconds: float) -> None:
    """Make every embedding request take ``seconds``, so a run can be interrupted midway."""
    handler = fake.server.RequestHandlerClass
    original = handler.do_POST  # type: ignore[attr-defined]

    def slow(self: Any) -> None:
        time.sleep(seconds)
        original(self)

    handler.do_POST = slow  # type: ignore[attr-defined]


def settled(fake: FakeOpenAI, quiet: float = 0.8) -> int:
    """The number of requests the fake has recorded, once none arrived for ``quiet`` s."""
    count, since = len(fake.requests), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.05)
        if len(fake.requests) != count:
            count, since = len(fake.requests), time.monotonic()
    return count


def command_env(tmp_path: Path, data: Path, **extra: str) -> dict[str, str]:
    return clean_env(AEGIS_DATA_DIR=str(data), AEGIS_CONFIG_DIR=str(tmp_path / "cfg"), **extra)


def reindex_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aegis_memory.cli.main", "reindex", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True,
    )


def reindex(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aegis_memory.cli.main", "reindex", *args],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )


def cli(env: dict[str, str], *args: str, input: str | None = None) -> Any:
    """The CLI in process, with exactly ``env`` for Aegis and database settings."""
    unset = {k: None for k in os.environ if k.startswith(("AEGIS_", "DATABASE_", "OPENAI_"))}
    ours = {k: v for k, v in env.items() if k.startswith(("AEGIS_", "DATABASE_", "OPENAI_"))}
    return CliRunner().invoke(app, list(args), env={**unset, **ours}, input=input)


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> Any:
    return cli(env, "reindex", *args, input=input)


def meta(url: str) -> dict[str, str]:
    return dict(database_rows(url, "SELECT key, value FROM store_meta"))


def models(url: str) -> dict[str | None, int]:
    return dict(database_rows(
        url, "SELECT embedding_model, count(*) FROM memories GROUP BY embedding_model"))


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60.0
             ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"reindex ended early: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("condition not reached")


def client(server: ServerProcess, key: str = "dev-key") -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"},
                        timeout=60)


def add_all(server: ServerProcess, texts: list[str], key: str = "dev-key") -> list[str]:
    with client(server, key) as c:
        r = c.post("/memories/add_batch", json={"items": [{"content": t} for t in texts]})
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["results"]]


def top_hit(server: ServerProcess, query: str, key: str = "dev-key") -> dict[str, Any]:
    with client(server, key) as c:
        # Vector mode: these tests check the embeddings themselves (score = cosine).
        r = c.post("/memories/query", json={"query": query, "top_k": 3, "mode": "vector"})
        assert r.status_code == 200, r.text
        return r.json()["memories"][0]


def refusal(start: Callable[..., ServerProcess], data: Path, **env: str) -> str:
    with pytest.raises(RuntimeError) as refused:
        start(data, **env)
    return str(refused.value)


def test_sqlite_openai_data_served_with_the_local_model_after_reindex(
    start_server, tmp_path, fake_openai
):
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'aegis.db'}"
    a = openai_env(fake_openai)
    server = start_server(data, **a)
    ids = add_all(server, [text for text, _ in FACTS])
    project, key = new_project(server)
    other_ids = add_all(server, ["Project two keeps its backups in an S3 bucket in Frankfurt.",
                                 "Project two's on-call rotation changes every Monday."], key)
    assert top_hit(server, FACTS[2][0])["id"] == ids[2]  # exact text, fake vectors
    server.stop()
    assert (data / "index" / "meta.json").exists()  # the old model's index snapshot

    message = refusal(start_server, data)
    assert f"embedded with model '{FAKE_MODEL}'" in message and "aegis reindex" in message

    # Declining the confirmation changes nothing.
    env = command_env(tmp_path, data)
    declined = invoke(env, input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "Re-embed 8 of 8 memories with 'all-MiniLM-L6-v2-int8' (384 dims)" in declined.stderr
    assert "Cancelled; nothing was changed." in declined.stderr
    assert meta(url)["embedding_model"] == FAKE_MODEL and models(url) == {FAKE_MODEL: 8}

    done = reindex(env, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "done" and summary["model"] == LOCAL_MODEL_NAME
    assert summary["dim"] == 384 and summary["previous_model"] == FAKE_MODEL
    assert (summary["reembedded"], summary["skipped"], summary["total"]) == (8, 0, 8)
    assert isinstance(summary["seconds"], float) and summary["database"] == str(data)
    assert "Re-embedded" in done.stderr and "8/8" in done.stderr  # the progress bar
    assert models(url) == {LOCAL_MODEL_NAME: 8}
    stored = meta(url)
    assert (stored["embedding_model"], stored["embedding_dim"]) == (LOCAL_MODEL_NAME, "384")
    assert not [k for k in stored if k.startswith("reindex_")]
    assert not (data / "index" / "meta.json").exists()  # rebuilt from the new vectors

    server = start_server(data)
    for (_, paraphrase), memory_id in zip(FACTS, ids, strict=True):
        hit = top_hit(server, paraphrase)
        assert hit["id"] == memory_id, (paraphrase, hit["content"])
        assert hit["score"] > 0.4
    assert top_hit(server, "where are the backups stored", key)["id"] == other_ids[0]
    assert top_hit(server, "who is on call this week", key)["id"] == other_ids[1]
    with client(server) as c:  # the other project's memories stay invisible
        found = c.post("/memories/query", json={"query": "backups in Frankfurt"}).json()
        assert other_ids[0] not in [m["id"] for m in found["memories"]]
    server.stop()
    assert project

    message = refusal(start_server, data, **a)  # now the old model is the wrong one
    assert f"embedded with model '{LOCAL_MODEL_NAME}'" in message

    again = invoke(env, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {**json.loads(again.stdout), "status": "nothing_to_do",
                                        "reembedded": 0, "skipped": 8, "total": 8}
    human = invoke(env)
    assert human.exit_code == 0
    assert "Nothing to do: all 8 memories are already embedded with 'all-MiniLM-L6-v2-int8'" \
        in " ".join(human.stdout.split())


def test_interrupted_reindex_resumes_without_embedding_rows_twice(
    start_server, tmp_path, fake_openai
):
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'aegis.db'}"
    texts = [f"Note {i}: the build server number {i} runs job {i * 7}." for i in range(30)]
    server = start_server(data)  # the local model
    ids = dict(zip(texts, add_all(server, texts), strict=True))
    server.stop()
    slow_down(fake_openai, 0.2)
    env = command_env(tmp_path, data, **openai_env(fake_openai))

    # Ctrl-C after the first committed batch.
    first = reindex_process(env, "--yes", "--batch-size", "3")
    wait_for(lambda: "reindex_checkpoint" in meta(url)
             and meta(url)["reindex_checkpoint"] != "null", first)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "Interrupted; progress is saved" in stderr
    assert "run `aegis reindex` again to continue" in stderr
    assert "Traceback" not in stderr
    moved = models(url).get(FAKE_MODEL, 0)
    assert 3 <= moved < 30

    # The provider fails midway (a 400 is not retried): the same, as an error.
    failing = reindex_process(env, "--yes", "--json", "--batch-size", "3")
    wait_for(lambda: models(url).get(FAKE_MODEL, 0) > moved, failing)
    fake_openai.failures.append((400, {}))
    stdout, stderr = failing.communicate(timeout=60)
    assert failing.returncode == 1, stderr
    assert json.loads(stdout)["error"]["code"] == "reindex_failed"
    assert "Cannot reindex: OpenAI embeddings" in stderr and "fake 400" in stderr
    assert "progress is saved" in stderr and "Traceback" not in stderr
    moved = models(url)[FAKE_MODEL]
    stored = meta(url)
    assert stored["embedding_model"] == f"{LOCAL_MODEL_NAME} {MARKER}"
    assert stored["reindex_model"] == FAKE_MODEL

    # Half-done, no server starts: with neither the old nor the new model.
    assert MARKER in refusal(start_server, data)
    assert MARKER in refusal(start_server, data, **openai_env(fake_openai))

    # A crash (SIGKILL) after a few more batches.
    second = reindex_process(env, "--yes", "--batch-size", "3")
    wait_for(lambda: models(url).get(FAKE_MODEL, 0) >= moved + 6, second)
    second.kill()
    second.wait(timeout=30)
    done_before = {row[0] for row in database_rows(
        url, "SELECT content FROM memories WHERE embedding_model = :m", m=FAKE_MODEL)}
    assert len(done_before) < 30
    seen = settled(fake_openai)  # the killed run's last request is recorded too

    final = reindex(env, "--yes", "--json", "--batch-size", "3")
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["status"] == "done" and summary["model"] == FAKE_MODEL and summary["dim"] == 8
    assert summary["previous_model"] == LOCAL_MODEL_NAME
    assert summary["skipped"] == len(done_before)
    assert summary["reembedded"] == 30 - len(done_before)
    embedded = [text for r in fake_openai.requests[seen:] for text in r["json"]["input"]
                if text != "dimension probe"]
    assert sorted(embedded) == sorted(set(texts) - done_before)  # each remaining row once
    assert models(url) == {FAKE_MODEL: 30}
    stored = meta(url)
    assert (stored["embedding_model"], stored["embedding_dim"]) == (FAKE_MODEL, "8")
    assert not [k for k in stored if k.startswith("reindex_")]

    server = start_server(data, **openai_env(fake_openai))
    for text in (texts[0], texts[14], texts[29]):
        hit = top_hit(server, text)
        # SQLite's index scores float16 copies of the vectors: 1 within ~1e-4.
        assert hit["id"] == ids[text] and hit["score"] == pytest.approx(1.0, abs=1e-3)


def test_an_unfinished_reindex_can_be_undone_with_the_old_model(
    start_server, tmp_path, fake_openai
):
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'aegis.db'}"
    texts = [f"Recipe {i}: bake the bread for {20 + i} minutes at 220 degrees." for i in range(12)]
    server = start_server(data)  # the local model
    ids = dict(zip(texts, add_all(server, texts), strict=True))
    server.stop()
    slow_down(fake_openai, 0.2)
    to_fake = reindex_process(
        command_env(tmp_path, data, **openai_env(fake_openai)), "--yes", "--batch-size", "2")
    wait_for(lambda: models(url).get(FAKE_MODEL, 0) >= 4, to_fake)
    to_fake.kill()
    to_fake.wait(timeout=30)
    moved = models(url)[FAKE_MODEL]

    # Back to the local model: only the rows that had moved are embedded again.
    back = invoke(command_env(tmp_path, data), "--json", input="y\n")
    assert back.exit_code == 0, back.output
    assert "An unfinished reindex to 'fake-model' is replaced by this one" in back.stderr
    assert f"Re-embed {moved} of 12 memories" in back.stderr
    # (CliRunner echoes the typed answer to stdout; a terminal shows it on the tty instead.)
    summary = json.loads(back.stdout.removeprefix("y\n"))
    assert (summary["reembedded"], summary["skipped"]) == (moved, 12 - moved)
    assert summary["previous_model"] == LOCAL_MODEL_NAME
    assert models(url) == {LOCAL_MODEL_NAME: 12}
    stored = meta(url)
    assert (stored["embedding_model"], stored["embedding_dim"]) == (LOCAL_MODEL_NAME, "384")
    assert not [k for k in stored if k.startswith("reindex_")]

    server = start_server(data)
    for text in texts:
        hit = top_hit(server, text)
        assert hit["id"] == ids[text] and hit["score"] == pytest.approx(1.0, abs=1e-3)


def test_postgres_reindex_to_another_dimension_resumes_and_retypes_the_column(
    start_server, tmp_path, fake_openai, postgres
):
    from tests.test_postgres import _schema_facts

    url = fresh_database(postgres)
    data = tmp_path / "data"
    texts = [f"Service {i} listens on port {8000 + i} and logs to stream {i}." for i in range(12)]
    server = start_server(data, backend="postgres", DATABASE_URL=url)  # local model, 384
    ids = dict(zip(texts, add_all(server, texts), strict=True))
    server.stop()
    before = _schema_facts(url)
    assert before["column"] == "vector(384)"

    slow_down(fake_openai, 0.2)
    env = command_env(tmp_path, data, DATABASE_URL=url, **openai_env(fake_openai))
    crashed = reindex_process(env, "--yes", "--batch-size", "2")
    wait_for(lambda: models(url).get(FAKE_MODEL, 0) >= 2, crashed)
    crashed.kill()
    crashed.wait(timeout=30)
    facts = _schema_facts(url)
    assert facts["column"] == "vector"  # both sizes side by side while unfinished
    assert "ix_memories_embedding_hnsw" not in facts["indexes"]
    moved = models(url)[FAKE_MODEL]
    assert MARKER in refusal(start_server, data, backend="postgres", DATABASE_URL=url)

    done = reindex(env, "--yes", "--json", "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["reembedded"], summary["skipped"]) == (12 - moved, moved)
    assert summary["database"].startswith("postgresql://")
    facts = _schema_facts(url)
    assert facts["column"] == "vector(8)"
    assert facts["indexes"] == before["indexes"]  # the HNSW index as migration 0002 made it
    assert models(url) == {FAKE_MODEL: 12}
    assert meta(url)["embedding_dim"] == "8"

    server = start_server(data, backend="postgres", DATABASE_URL=url, **openai_env(fake_openai))
    for text in (texts[0], texts[7], texts[11]):
        hit = top_hit(server, text)
        assert hit["id"] == ids[text] and hit["score"] == pytest.approx(1.0, abs=1e-5)
    new_id = add_all(server, ["A memory written after the switch."])[0]
    assert top_hit(server, "A memory written after the switch.")["id"] == new_id
    server.stop()

    # And back to the local model (8 -> 384 dims), in process this time.
    back = invoke(command_env(tmp_path, data, DATABASE_URL=url), "--yes", "--json")
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout)["reembedded"] == 13
    assert _schema_facts(url) == before
    server = start_server(data, backend="postgres", DATABASE_URL=url)
    hit = top_hit(server, texts[7])
    assert hit["id"] == ids[texts[7]] and hit["score"] == pytest.approx(1.0, abs=1e-3)


def test_reindex_command_errors_and_empty_database(tmp_path):
    data = tmp_path / "empty"
    env = command_env(tmp_path, data)
    missing = invoke(env, "--yes")  # a wrong data dir is reported, not filled with a new file
    assert missing.exit_code == 4 and "There is no Aegis database at" in missing.stderr
    assert not data.exists()
    created = cli(env, "migrate")
    assert created.exit_code == 0, created.output
    empty = invoke(env, "--json")
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout) == {
        "status": "nothing_to_do", "model": LOCAL_MODEL_NAME, "dim": 384,
        "previous_model": None, "reembedded": 0, "skipped": 0, "total": 0, "seconds": 0.0,
        "database": str(data),
    }
    assert "no memories yet" in " ".join(invoke(env).stdout.split())

    bad_size = invoke(env, "--batch-size", "0")
    assert bad_size.exit_code == 5 and "--batch-size must be between 1" in bad_size.stderr

    unreachable = reindex(command_env(tmp_path, data, DATABASE_URL="postgresql://127.0.0.1:1/x"),
                          "--yes", "--json")
    assert unreachable.returncode == 1
    assert json.loads(unreachable.stdout)["error"]["code"] == "reindex_failed"
    assert "Cannot reindex: Cannot use the PostgreSQL database" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    no_key = invoke(command_env(tmp_path, data, AEGIS_EMBEDDING_PROVIDER="openai"), "--yes")
    assert no_key.exit_code == 1 and "OPENAI_API_KEY is required" in no_key.stderr
