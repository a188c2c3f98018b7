"""The ``aegis`` command line as a user runs it: a real process."""

from __future__ import annotations

import subprocess
import sys

import httpx

from aegis_memory import __version__


def aegis(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aegis_memory.cli.main", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_version():
    result = aegis("version")
    assert result.returncode == 0 and result.stdout.strip() == f"aegis-memory {__version__}"


def test_projects_create_gives_a_working_isolated_key(tmp_path, start_server):
    data = tmp_path / "data"
    env = {"AEGIS_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"}
    created = aegis("projects", "create", "acme", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("aegis_")
    again = aegis("projects", "create", "acme", env=env)
    assert again.returncode == 1 and "already exists" in again.stderr
    server = start_server(data)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as c:
        mid = c.post("/memories/add", json={"content": "acme uses terraform"}).json()["id"]
        assert c.get(f"/memories/{mid}").status_code == 200
    with httpx.Client(base_url=server.base_url,
                      headers={"Authorization": "Bearer dev-key"}) as c:
        assert c.get(f"/memories/{mid}").status_code == 404
        assert c.post("/memories/query", json={"query": "terraform"}).json()["memories"] == []


def test_serve_refuses_default_key_in_production(tmp_path):
    result = aegis("serve", "--data-dir", str(tmp_path / "d"), "--port", "0",
                   env={"AEGIS_ENV": "production", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "AEGIS_ENV=production" in result.stderr and "dev-key" in result.stderr


def test_production_refuses_a_short_key_and_serving_without_a_known_proxy(tmp_path):
    base = {"AEGIS_ENV": "production", "PATH": "/usr/bin:/bin",
            "AEGIS_DATA_DIR": str(tmp_path / "d")}
    short = aegis("serve", "--port", "0", env={**base, "AEGIS_API_KEY": "s3cret"})
    assert short.returncode == 1 and "shorter than 16 characters" in short.stderr
    no_proxy = aegis("serve", "--port", "0",
                     env={**base, "AEGIS_API_KEY": "a-long-random-production-secret"})
    assert no_proxy.returncode == 1
    assert "FORWARDED_ALLOW_IPS" in no_proxy.stderr
    assert "production-checklist" in no_proxy.stderr


def test_production_serves_with_its_own_key_behind_a_declared_proxy(tmp_path, start_server):
    secret = "a-long-random-production-secret"
    server = start_server(tmp_path / "data", AEGIS_ENV="production", AEGIS_API_KEY=secret,
                          FORWARDED_ALLOW_IPS="127.0.0.1")
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        assert c.get("/health").json()["status"] == "healthy"
        ok = c.post("/memories/add", json={"content": "prod note"},
                    headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200, ok.text
        dev = c.post("/memories/add", json={"content": "prod note"},
                     headers={"Authorization": "Bearer dev-key"})
        assert dev.status_code == 401


def test_server_side_commands_speak_json(tmp_path):
    import json

    env = {"PATH": "/usr/bin:/bin", "AEGIS_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    assert json.loads(aegis("version", "--json").stdout) == {"version": __version__}
    migrated = aegis("migrate", "--json", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["status"] == "up_to_date"
    created = aegis("projects", "create", "acme", "--json", env=env)
    assert created.returncode == 0, created.stderr
    project = json.loads(created.stdout)
    assert project["project"] == "acme" and len(project["key"]) > 20
