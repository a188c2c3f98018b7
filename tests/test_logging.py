"""Structured logs (issue 10): one line per request, and no keys or memory text anywhere.

The end-to-end tests run ``aegis serve`` as a subprocess, make real requests and then read
everything the process wrote. The rest are unit tests of the redaction, the formatter and
the request-log middleware.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from aegis_memory.config import Settings
from aegis_memory.server import errors
from aegis_memory.server.logs import (
    REQUEST_LOGGER,
    Redactor,
    RequestLogMiddleware,
    build_formatter,
    configure_logging,
    json_logs,
)
from aegis_memory.server.middleware import RequestIdMiddleware
from aegis_memory.service.hashing import new_key
from tests.conftest import ADMIN_KEY, ServerProcess

# --------------------------------------------------------------------------- end to end


@dataclass(frozen=True)
class Sent:
    """One request the test made, and what its log line must say."""

    request_id: str
    method: str
    route: str
    status: int
    project: str | None
    agent: str | None


class Client:
    """Makes requests and remembers each, with the X-Request-ID the server answered with."""

    def __init__(self, server: ServerProcess) -> None:
        self.http = httpx.Client(base_url=server.base_url, timeout=60)
        self.sent: list[Sent] = []

    def call(self, method: str, path: str, key: str | None, *, route: str, status: int,
             project: str | None = None, agent: str | None = None,
             **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers |= kwargs.pop("headers", {})  # type: ignore[arg-type]
        r = self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == status, (path, r.text)
        self.sent.append(Sent(r.headers["x-request-id"], method, route, status, project, agent))
        return r


def _read_log(server: ServerProcess) -> str:
    assert server.log_path is not None
    return server.log_path.read_text(encoding="utf-8")


def test_json_log_has_one_line_per_request_and_no_secrets(tmp_path: Path) -> None:
    marker = "LOGMARK" + uuid.uuid4().hex  # memory content
    query_marker = "QRYMARK" + uuid.uuid4().hex  # search text
    url_marker = "URLMARK" + uuid.uuid4().hex  # a query string
    wrong_key = new_key()  # key-shaped, but no such key
    server = ServerProcess(tmp_path / "data", env={"LOG_FORMAT": "json"},
                           args=["--log-level", "info"])
    server.start()
    c = Client(server)
    try:
        project = "p-" + uuid.uuid4().hex[:10]
        r = c.call("POST", "/admin/projects", ADMIN_KEY, route="/admin/projects", status=201,
                   json={"name": project})
        project_key = r.json()["key"]
        p = {"project": project}
        ids = [c.call("POST", "/memories/add", project_key, route="/memories/add", status=200,
                      json={"content": f"{marker} note {i}", "agent_id": "alice"}, **p
                      ).json()["id"] for i in range(2)]
        found = c.call("POST", "/memories/query", project_key, route="/memories/query",
                       status=200, json={"query": f"{marker} {query_marker}", "top_k": 5}, **p)
        assert found.json()["memories"]
        c.call("GET", f"/memories/{ids[0]}?note={url_marker}", project_key,
               route="/memories/{memory_id}", status=200, **p)
        agent_key = c.call("POST", "/keys", project_key, route="/keys", status=201,
                           json={"agent_id": "alice", "name": "logs"}, **p).json()["key"]
        c.call("GET", f"/memories/{ids[1]}", agent_key, route="/memories/{memory_id}",
               status=200, agent="alice", **p)
        c.call("POST", "/memories/query", "dev-key", route="/memories/query", status=200,
               project="default", json={"query": query_marker})
        c.call("GET", f"/memories/{ids[0]}", wrong_key, route="/memories/{memory_id}",
               status=401)
        c.call("GET", f"/memories/{uuid.uuid4().hex}", project_key,
               route="/memories/{memory_id}", status=404, **p)
        c.call("GET", f"/no/such/{url_marker}", None, route="unmatched", status=404)
        c.call("POST", "/memories/add", project_key, route="/memories/add", status=422,
               json={"contnet": marker}, **p)
        own_id = "client-chosen-" + uuid.uuid4().hex[:8]
        r = c.call("GET", "/keys", project_key, route="/keys", status=200,
                   headers={"X-Request-ID": own_id}, **p)
        assert r.headers["x-request-id"] == own_id
        c.call("GET", "/health", None, route="/health", status=200)  # DEBUG: not at INFO
    finally:
        c.http.close()
        server.stop()

    raw = _read_log(server)
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]  # all JSON
    for line in lines:
        assert {"timestamp", "level", "logger", "event"} <= line.keys(), line
        assert datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).utcoffset() \
            is not None
    requests = [line for line in lines if line["event"] == "request"]
    expected = [s for s in c.sent if s.route != "/health"]
    assert sorted(r["request_id"] for r in requests) == sorted(s.request_id for s in expected)
    by_id = {r["request_id"]: r for r in requests}
    for sent in expected:
        line = by_id[sent.request_id]
        assert line["logger"] == "aegis_memory.requests"
        assert line["level"] == "info"
        assert (line["method"], line["route"], line["status"]) == (
            sent.method, sent.route, sent.status)
        if sent.route != "/admin/projects":  # the admin key belongs to no project
            assert (line["project"], line["agent"]) == (sent.project, sent.agent), line
        assert isinstance(line["duration_ms"], float | int) and line["duration_ms"] >= 0
        assert line["duration_ms"] == round(line["duration_ms"], 1)
        assert line["client_ip"] == "127.0.0.1"
        assert not {"query", "content", "headers", "body", "path"} & line.keys()
    # Server start-up came out through the same formatter.
    assert any(line["logger"].startswith("uvicorn") for line in lines)

    secrets = {"dev-key", ADMIN_KEY, project_key, agent_key, wrong_key, marker, query_marker,
               url_marker}
    leaked = {s for s in secrets if s in raw}
    assert not leaked, f"in the log: {leaked}"
    assert not re.search(r"aegis_[A-Za-z0-9_-]{40}", raw)


def test_console_log_is_readable_text(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"LOG_FORMAT": "console"},
                           args=["--log-level", "info"])
    server.start()
    try:
        r = httpx.get(server.base_url + f"/memories/{uuid.uuid4().hex}",
                      headers={"Authorization": "Bearer dev-key"}, timeout=30)
        assert r.status_code == 404
    finally:
        server.stop()
    raw = _read_log(server)
    request_id = r.headers["x-request-id"]
    [line] = [line for line in raw.splitlines() if request_id in line]
    assert " request " in line
    assert "route=/memories/{memory_id}" in line and "status=404" in line
    assert "method=GET" in line and "project=default" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert "\x1b[" not in raw  # no colours when the output is not a terminal
    assert "dev-key" not in raw


# --------------------------------------------------------------------------- settings


@pytest.fixture
def no_log_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("LOG_FORMAT", "AEGIS_ENV", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_json_by_default_in_production_unless_log_format_is_set(
    no_log_env: pytest.MonkeyPatch,
) -> None:
    assert not json_logs(Settings(_env_file=None))
    assert json_logs(Settings(_env_file=None, log_format="json"))
    assert json_logs(Settings(_env_file=None, aegis_env="production"))
    assert not json_logs(Settings(_env_file=None, aegis_env="production", log_format="console"))
    no_log_env.setenv("AEGIS_ENV", "production")
    no_log_env.setenv("LOG_FORMAT", "console")
    assert not json_logs(Settings(_env_file=None))


@contextlib.contextmanager
def bare_root() -> Iterator[None]:
    """The root logger as in a fresh process (no handlers), restored afterwards. A context
    manager, not a fixture: pytest adds its capture handlers for each test phase."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    ours = logging.getLogger("aegis_memory")
    ours_level = ours.level
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        ours.setLevel(ours_level)
        logging.captureWarnings(False)
        structlog.reset_defaults()


def test_configure_logging_installs_one_handler_and_formats_everyone(
    no_log_env: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    settings = Settings(_env_file=None, log_format="json", log_level="info")
    with bare_root():
        assert configure_logging(settings, stream=out)
        assert configure_logging(settings, stream=out)  # again (the app after `aegis serve`)
        assert len(logging.getLogger().handlers) == 1
        logging.getLogger("aegis_memory.test").info("ours")
        logging.getLogger("uvicorn.error").warning("theirs")
        logging.getLogger("some.library").info("chatter")  # libraries: WARNING and up
        structlog.get_logger("aegis_memory.test").info("native", n=1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["logger"], x["event"]) for x in lines] == [
        ("aegis_memory.test", "ours"), ("uvicorn.error", "theirs"), ("aegis_memory.test", "native")]
    assert lines[2]["n"] == 1


def test_configure_logging_leaves_a_configured_host_alone(no_log_env: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    if not root.handlers:  # pytest normally has its own handlers on the root logger
        pytest.skip("no host handler to leave alone")
    before, ours = root.handlers[:], logging.getLogger("aegis_memory")
    level = ours.level
    try:
        assert not configure_logging(Settings(_env_file=None, log_level="debug"),
                                     stream=io.StringIO())
        assert root.handlers == before
        assert ours.level == logging.DEBUG  # our own loggers' level is still ours to set
    finally:
        ours.setLevel(level)


# --------------------------------------------------------------------------- redaction


def _redact(**fields: object) -> dict[str, object]:
    return Redactor(secrets=["dev-key", "hunter22"])(None, "info", dict(fields))


def test_redactor_masks_keys_and_drops_content_fields() -> None:
    key = new_key()
    out = _redact(event=f"auth with {key} failed", note={"k": [key, "ok"], "Content": "x"},
                  content="secret text", Text="t", query="q", api_key="a", Authorization="b",
                  header=f"Bearer {key}", db="postgresql://aegis:hunter22@db/aegis",
                  other="dev-key in a sentence")
    assert out == {
        "event": "auth with aegis_*** failed",
        "note": {"k": ["aegis_***", "ok"]},
        "header": "Bearer ***",
        "db": "postgresql://aegis:***@db/aegis",
        "other": "*** in a sentence",
    }


def test_redactor_keeps_ordinary_names() -> None:
    text_ = "aegis_http_request_duration_seconds from aegis_memory.server, aegis_ab12cd34ef56"
    assert _redact(event=text_) == {"event": text_}


def test_redactor_strips_sql_parameters_from_database_errors() -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as conn, pytest.raises(SQLAlchemyError) as caught:
        conn.execute(text("INSERT INTO nowhere VALUES (:content)"), {"content": "MARK secret"})
    message = str(caught.value)
    assert "MARK secret" in message  # what SQLAlchemy would print
    out = _redact(event="failed", exception=f"Traceback ...\n{message}\n\nDuring handling ...")
    assert "MARK secret" not in str(out["exception"])
    assert "[parameters: redacted]" in str(out["exception"])
    assert "INSERT INTO nowhere" in str(out["exception"])


def test_formatter_redacts_extras_and_tracebacks() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(build_formatter(as_json=True, secrets=["dev-key"]))
    logger = logging.getLogger("tests.logging.formatter")
    logger.addHandler(handler)
    logger.propagate = False
    key = new_key()
    try:
        logger.warning("saw %s", key, extra={"content": "MARK", "agent": "alice"})
        try:
            raise ValueError(f"bad key {key}")
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "saw aegis_***" and first["agent"] == "alice"
    assert "content" not in first
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert "ValueError: bad key aegis_***" in second["exception"]
    assert key not in out.getvalue()


# --------------------------------------------------------------------------- middleware


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom/{thing}")
    async def boom(thing: str) -> None:
        raise RuntimeError("exploded")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/teapot")
    async def teapot() -> None:
        from fastapi import HTTPException
        raise HTTPException(503, "later")

    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app


def test_unhandled_errors_are_logged_once_at_error_with_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(_app(), raise_server_exceptions=False) as client:
        r = client.post("/boom/secret-id-123", content=b"BODYMARK")
        assert r.status_code == 405
        r = client.get("/boom/secret-id-123?q=QSMARK", headers={"X-Request-ID": "rid-1"})
        assert r.status_code == 500
        assert client.get("/health").status_code == 200
        assert client.get("/teapot").status_code == 503
    lines = [rec for rec in caplog.records if rec.name == REQUEST_LOGGER]
    assert [(rec.route, rec.status, rec.levelno) for rec in lines] == [  # type: ignore[attr-defined]
        ("/boom/{thing}", 405, logging.INFO),
        ("/boom/{thing}", 500, logging.ERROR),
        ("/health", 200, logging.DEBUG),
        ("/teapot", 503, logging.ERROR),
    ]
    assert lines[1].request_id == "rid-1"  # type: ignore[attr-defined]
    [handled] = [rec for rec in caplog.records if rec.name == "aegis_memory.server"]
    assert handled.levelno == logging.ERROR and handled.exc_info is not None
    assert handled.getMessage() == "unhandled error on GET /boom/{thing}"
    assert handled.request_id == "rid-1"  # type: ignore[attr-defined]
    ours = "\n".join(caplog.handler.format(rec) for rec in caplog.records
                     if rec.name.startswith("aegis_memory"))
    assert "RuntimeError: exploded" in ours
    assert "secret-id-123" not in ours and "QSMARK" not in ours and "BODYMARK" not in ours
