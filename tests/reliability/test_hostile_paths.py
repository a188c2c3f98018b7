"""Paths (issue 12, "Hostile input: path traversal"): where a name could become a file or a URL.

What exists: the server takes no file paths at all (every API input is JSON or a path/query
value); it serves a fixed list of static files; ids travel in URL paths (``/memories/{id}``);
and the CLI's ``export``/``import`` read and write the files their user names. Each is tested
here against a real server: no file outside the named one is ever read or written, symlinks
are not written through, and an id that is URL path syntax is refused, not stored unreachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from aegis_memory.cli.main import app
from aegis_memory.client import AegisClient
from aegis_memory.client.errors import AegisNotFoundError, AegisValidationError
from tests.conftest import ServerProcess, clean_env

FILE_WORDS = {"path", "file", "filename", "filepath", "file_path", "dir", "directory", "folder",
              "output", "input", "location", "url", "uri"}


def _names(schema: Any) -> set[str]:
    """Every property and parameter name anywhere in an OpenAPI document."""
    names: set[str] = set()
    if isinstance(schema, dict):
        names.update(schema.get("properties", {}))
        if "in" in schema and "name" in schema:
            names.add(schema["name"])
        for value in schema.values():
            names |= _names(value)
    elif isinstance(schema, list):
        for value in schema:
            names |= _names(value)
    return names


def test_the_api_takes_no_file_paths(sqlite_server: ServerProcess) -> None:
    document = httpx.get(sqlite_server.base_url + "/openapi.json", timeout=30).json()
    names = _names(document)
    assert {"content", "memory_id", "namespace"} <= names  # the walk does see the inputs
    assert not {n for n in names if n.lower() in FILE_WORDS}, sorted(names)


@pytest.mark.parametrize("path", [
    "/dashboard/static/../__init__.py",
    "/dashboard/static/../../server/app.py",
    "/dashboard/static/..%2F__init__.py",
    "/dashboard/static/%2e%2e%2f%2e%2e%2fapp.py",
    "/dashboard/static/..%5c__init__.py",
    "/dashboard/static/%2Fetc%2Fpasswd",
    "/dashboard/static//etc/passwd",
    "/dashboard/static/....//....//etc/passwd",
])
def test_static_files_cannot_be_left(sqlite_server: ServerProcess, path: str) -> None:
    """Sent byte for byte (http.client does not resolve dot segments as httpx would)."""
    conn = HTTPConnection("127.0.0.1", sqlite_server.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
    finally:
        conn.close()
    assert response.status == 404, (path, response.status, body[:200])
    assert "root:" not in body and "import " not in body and "def " not in body
    ok = httpx.get(sqlite_server.base_url + "/dashboard/static/dashboard.css", timeout=30)
    assert ok.status_code == 200 and "Aegis" in ok.text


PATH_IDS = ["a/b", "../../etc/passwd", "..", ".", " ", "", "x" * 257]


@pytest.mark.parametrize("bad_id", PATH_IDS, ids=["slash", "traversal", "dotdot", "dot",
                                                  "blank", "empty", "long"])
def test_ids_that_are_path_syntax_are_refused(http: httpx.Client, ns: str, bad_id: str) -> None:
    """An import stored such ids and then could not reach them: ``GET /memories/a%2Fb`` is no
    route, and ``..`` is resolved by HTTP clients (``GET /memories/..`` is ``GET /``)."""
    r = http.post("/memories/import", json={"memories": [
        {"id": uuid.uuid4().hex, "content": "a fine memory", "namespace": ns},
        {"id": bad_id, "content": "a memory with a path for an id", "namespace": ns}]})
    assert r.status_code == 422, r.text
    assert "memories[1].id" in r.json()["detail"], r.text
    assert http.post("/memories/export", json={"namespace": ns}).text == ""
    for route, field in (("/memories/ace/session", "session_id"),
                         ("/memories/ace/feature", "feature_id")):
        body = {field: bad_id, "namespace": ns, "description": "x"}
        if field == "session_id":
            body.pop("description")
        r = http.post(route, json=body)
        assert r.status_code == 422 and field in r.json()["detail"], r.text


def test_sdk_ids_never_step_into_another_route(server: ServerProcess, http: httpx.Client,
                                               ns: str) -> None:
    memory = http.post("/memories/add", json={"content": "stays", "namespace": ns}).json()
    with AegisClient(api_key="dev-key", base_url=server.base_url) as client:
        for bad in ("..", "."):
            with pytest.raises(AegisValidationError, match="cannot be used in a URL path"):
                client.get(bad)
            with pytest.raises(AegisValidationError):
                client.delete(bad)
            with pytest.raises(AegisValidationError):
                client.keys.revoke(bad)
        for bad in ("../keys", "../../admin/projects", f"../{memory['id']}", "%2e%2e"):
            with pytest.raises(AegisNotFoundError):
                client.get(bad)
            with pytest.raises(AegisNotFoundError):
                client.delete(bad)
        assert client.get(memory["id"]).content == "stays"
        assert len(client.keys.list()) >= 0  # the key still works: nothing was revoked


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def sqlite_http(sqlite_server: ServerProcess) -> Iterator[httpx.Client]:
    """The API of the server the CLI talks to (the CLI tests need one backend only)."""
    with httpx.Client(base_url=sqlite_server.base_url, timeout=60,
                      headers={"Authorization": "Bearer dev-key"}) as client:
        yield client


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str | None]:
    return {"AEGIS_CONFIG_DIR": str(tmp_path / "config"), "AEGIS_API_KEY": None,
            "AEGIS_BASE_URL": None}


def cli(url: str, *args: str, env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(app, ["--base-url", url, "--api-key", "dev-key", *args], env=env)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}


def test_export_does_not_write_through_a_symlink(
    sqlite_server: ServerProcess, sqlite_http: httpx.Client, ns: str, tmp_path: Path,
    cli_env: dict[str, str | None]
) -> None:
    """``-o link`` where the link points at another file: the export replaces the link (an
    atomic rename of its own temporary file), the file it pointed to is left as it was."""
    sqlite_http.post("/memories/add", json={"content": "exported", "namespace": ns})
    victim = tmp_path / "victim.txt"
    victim.write_text("must not change\n")
    link = tmp_path / "backup.jsonl"
    link.symlink_to(victim)
    result = cli(sqlite_server.base_url, "export", "-o", str(link), "--namespace", ns,
                 env=cli_env)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "must not change\n"
    assert not link.is_symlink()
    assert [json.loads(line)["content"] for line in link.read_text().splitlines()] == \
        ["exported"]


def test_export_names_its_file_itself_whatever_the_data(
    sqlite_server: ServerProcess, sqlite_http: httpx.Client, ns: str, tmp_path: Path,
    cli_env: dict[str, str | None]
) -> None:
    """Exporting into a directory: the file name comes from the clock, never from the data, so
    namespaces and agents named like paths write nothing outside it."""
    hostile_ns = f"{ns}/../../../escape"
    for body in ({"content": "path-like namespace", "namespace": hostile_ns},
                 {"content": "path-like agent", "namespace": hostile_ns,
                  "agent_id": "../../../../tmp/owned", "scope": "global"}):
        assert sqlite_http.post("/memories/add", json=body).status_code == 200
    (tmp_path / "out").mkdir()
    before = files_under(tmp_path)
    result = cli(sqlite_server.base_url, "export", "-o", str(tmp_path / "out"), "--namespace",
                 hostile_ns, env=cli_env)
    assert result.exit_code == 0, result.output
    created = files_under(tmp_path) - before
    assert len(created) == 1
    [written] = created
    assert written.parent == tmp_path / "out" and written.name.startswith("aegis-export-")
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert {r["namespace"] for r in rows} == {hostile_ns}
    assert not Path("/tmp/owned").exists()


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_refuses_what_is_not_an_export(
    sqlite_server: ServerProcess, sqlite_http: httpx.Client, ns: str, tmp_path: Path,
    cli_env: dict[str, str | None]
) -> None:
    url = sqlite_server.base_url
    result = cli(url, "import", "/etc/passwd", env=cli_env)
    assert result.exit_code == 5 and "does not look like an Aegis export" in result.stderr
    (tmp_path / "folder").mkdir()
    link = tmp_path / "folder-link"
    link.symlink_to(tmp_path / "folder")
    result = cli(url, "import", str(link), env=cli_env)
    assert result.exit_code == 1 and "is a directory" in result.stderr
    # An export whose ids are paths: refused before anything is sent, naming the line.
    backup = _write_jsonl(tmp_path / "paths.jsonl", [
        {"id": uuid.uuid4().hex, "content": "fine", "namespace": ns},
        {"id": "../../etc/passwd", "content": "id is a path", "namespace": ns}])
    result = cli(url, "import", str(backup), "--json", env=cli_env)
    assert result.exit_code == 5, result.output
    [invalid] = json.loads(result.stdout)["invalid"]
    assert invalid["line"] == 2 and "cannot be addressed in a URL" in invalid["error"]
    assert sqlite_http.post("/memories/export", json={"namespace": ns}).text == ""


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_import_of_an_endless_device_stops_at_once(tmp_path: Path) -> None:
    """A path to a device that never ends is looked at, refused, and not read to the end."""
    env = clean_env(AEGIS_CONFIG_DIR=str(tmp_path / "config"))
    out = subprocess.run([sys.executable, "-m", "aegis_memory.cli.main", "--base-url",
                          "http://127.0.0.1:9", "import", "/dev/zero"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 5 and "does not look like an Aegis export" in out.stderr
