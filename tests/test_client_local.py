"""Local-mode plumbing, against a tiny stand-in ASGI app (not the real server).

What is checked: the app's lifespan runs in its own task (startup before the first request,
state handed to requests, shutdown on close), the sync client drives it from a private loop
thread, errors and auth behave as over the network, and settings are passed through.
The real server in local mode is covered by tests/test_client_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aegis_memory import (
    AegisAuthError,
    AegisClient,
    AegisServerError,
    AsyncAegisClient,
)
from aegis_memory.client import Call

fastapi = pytest.importorskip("fastapi")


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AEGIS_API_KEY", "AEGIS_BASE_URL", "AEGIS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AEGIS_CONFIG_DIR", str(tmp_path / "aegis-config"))
    monkeypatch.chdir(tmp_path)  # no stray .env is read by Settings


def memory_json(memory_id: str, content: str = "fact") -> dict[str, Any]:
    return {"id": memory_id, "content": content, "scope": "global"}


def make_stand_in_app(events: list[str], *, fail_startup: bool = False) -> Any:
    """A tiny app with a lifespan that yields state, standing in for the real server."""

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("startup")
        if fail_startup:
            raise RuntimeError("cannot open the store")
        yield {"store": "open"}
        events.append("shutdown")

    app = fastapi.FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health(request: fastapi.Request) -> dict[str, Any]:
        return {"status": "healthy", "version": request.state.store}

    @app.post("/memories/add")
    async def add(request: fastapi.Request) -> dict[str, Any]:
        if request.headers.get("authorization") != "Bearer dev-key":
            return fastapi.responses.JSONResponse(
                {"detail": "Authentication failed: Invalid API key", "code": "invalid_api_key"},
                status_code=401,
            )
        body = await request.json()
        return {"id": "m-" + body["content"], "scope": "global"}

    @app.post("/memories/export")
    async def export() -> Any:
        async def lines() -> Any:
            for i in range(3):
                yield json.dumps(memory_json(f"m{i}")) + "\n"

        return fastapi.responses.StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("server bug")

    return app


@pytest.fixture
def fake_server_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Install the stand-in app as ``aegis_memory.server.app`` for `AegisClient.local`."""
    events: list[str] = []
    seen: dict[str, Any] = {}

    def create_app(settings: Any = None, *, configure_logging: bool = True,
                   serve_mcp: bool = True) -> Any:
        seen["settings"] = settings
        events.append(f"data_dir={settings.aegis_data_dir}")
        return make_stand_in_app(events)

    module = types.ModuleType("aegis_memory.server.app")
    module.create_app = create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aegis_memory.server.app", module)
    yield events


def test_local_sync_client_runs_lifespan_and_requests(
    fake_server_module: list[str], tmp_path: Path
) -> None:
    events = fake_server_module
    client = AegisClient.local(tmp_path / "data")
    assert events == [f"data_dir={tmp_path / 'data'}", "startup"]  # started eagerly
    with client:
        assert client.health().version == "open"  # lifespan state reaches requests
        assert client.add("hello").id == "m-hello"
        assert [m.id for m in client.export()] == ["m0", "m1", "m2"]
        with pytest.raises(AegisServerError):
            client._send(Call("GET", "/boom", lambda data: data))
    assert events[-1] == "shutdown"
    client.close()  # idempotent
    assert events.count("shutdown") == 1


async def test_local_async_client_runs_lifespan_and_requests(
    fake_server_module: list[str], tmp_path: Path
) -> None:
    events = fake_server_module
    client = AsyncAegisClient.local(tmp_path, rate_limit_per_minute=5)
    assert events == [f"data_dir={tmp_path}"]  # starts on first use
    async with client:
        assert events[-1] == "startup"
        assert (await client.health()).version == "open"
        assert (await client.add("hi")).id == "m-hi"
        assert [m.id async for m in client.export()] == ["m0", "m1", "m2"]
    assert events[-1] == "shutdown"


async def test_local_async_client_starts_lazily(fake_server_module: list[str]) -> None:
    client = AsyncAegisClient.local(aegis_api_key="dev-key")
    assert (await client.health()).status == "healthy"
    assert fake_server_module[-1] == "startup"
    await client.aclose()
    assert fake_server_module[-1] == "shutdown"


def test_local_mode_refuses_unknown_settings(fake_server_module: list[str]) -> None:
    with pytest.raises(TypeError, match="aegis_dta_dir"):
        AegisClient.local(aegis_dta_dir="/tmp/x")


def test_local_mode_uses_the_settings_key(fake_server_module: list[str], tmp_path: Path) -> None:
    with AegisClient.local(tmp_path, aegis_api_key="other") as client:
        # The client sends the key the embedded server was configured with ...
        assert client.config.api_key == "other"
        # ... which the stand-in app (hard-wired to dev-key) rejects: auth is not bypassed.
        with pytest.raises(AegisAuthError, match="Invalid API key"):
            client.add("x")


def test_local_startup_failure_raises_the_apps_error() -> None:
    from aegis_memory.client._local import LocalTransport

    events: list[str] = []
    with pytest.raises(RuntimeError, match="cannot open the store"):
        LocalTransport(make_stand_in_app(events, fail_startup=True))


async def test_local_async_startup_failure_raises_the_apps_error() -> None:
    from aegis_memory.client._local import AsyncLocalTransport

    app = make_stand_in_app([], fail_startup=True)
    client = AsyncAegisClient(transport=AsyncLocalTransport(app))
    with pytest.raises(RuntimeError, match="cannot open the store"):
        await client.health()
    await client.aclose()


def test_local_sync_client_closes_at_garbage_collection(fake_server_module: list[str]) -> None:
    client = AegisClient.local()
    client.health()
    del client  # no reference cycle: freed at once, and the finalizer shuts the server down
    assert fake_server_module[-1] == "shutdown"


async def test_local_sync_client_inside_a_running_loop(fake_server_module: list[str]) -> None:
    # A notebook or an async app may use the sync client: its server has its own loop/thread.
    with AegisClient.local() as client:
        assert client.health().status == "healthy"
    await asyncio.sleep(0)


def test_with_api_key_shares_the_embedded_server(fake_server_module: list[str]) -> None:
    with AegisClient.local() as client:
        with client.with_api_key("wrong") as other, pytest.raises(AegisAuthError):
            other.add("x")
        assert fake_server_module[-1] == "startup"  # closing the borrower left it running
        assert client.add("y").id == "m-y"
    assert fake_server_module[-1] == "shutdown"


async def test_async_with_api_key_shares_the_embedded_server(
    fake_server_module: list[str],
) -> None:
    async with AsyncAegisClient.local() as client:
        async with client.with_api_key("wrong") as other:
            with pytest.raises(AegisAuthError):
                await other.add("x")
        assert fake_server_module[-1] == "startup"
        assert (await client.add("y")).id == "m-y"
    assert fake_server_module[-1] == "shutdown"


def test_unclosed_local_client_shuts_down_at_exit(tmp_path: Path) -> None:
    # The server saves its index via asyncio.to_thread on shutdown; that must still work when
    # the user never closed the client and the interpreter is exiting.
    script = tmp_path / "unclosed.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from contextlib import asynccontextmanager
            import fastapi
            from aegis_memory import AegisClient
            from aegis_memory.client._local import LocalTransport

            @asynccontextmanager
            async def lifespan(app):
                yield
                await asyncio.to_thread(print, "index saved", flush=True)

            app = fastapi.FastAPI(lifespan=lifespan)

            @app.get("/health")
            async def health():
                return {"status": "healthy"}

            client = AegisClient(base_url="http://aegis.local", transport=LocalTransport(app))
            print(client.health().status, flush=True)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["healthy", "index", "saved"], result.stderr
