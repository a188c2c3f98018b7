"""Shared fixtures: real servers on loopback, started as separate processes like a user would.

No mocks of our own storage or service: tests talk HTTP to ``aegis serve`` over a real SQLite
file in a temporary directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ADMIN_KEY = "test-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    api_key: str = "dev-key"

    def start(self, timeout: float = 90.0) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "DATABASE_"))}
        env.update({
            "AEGIS_ADMIN_KEY": ADMIN_KEY,
            "LOG_LEVEL": "warning",
            "HF_HUB_OFFLINE": "1",
            **self.env,
        })
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aegis_memory.cli.main", "serve",
             "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)],
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data").start()
    yield proc
    proc.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Factory for servers a test owns (restarts, special settings)."""
    started: list[ServerProcess] = []

    def _start(data_dir: Path | None = None, **env: str) -> ServerProcess:
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
