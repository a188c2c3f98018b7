"""``aegis config``, ``aegis status`` and ``aegis keys`` against a real server.

Every invocation gets its own ``AEGIS_CONFIG_DIR`` and no ``AEGIS_API_KEY`` / ``AEGIS_BASE_URL``,
so nothing here reads or writes the real ``~/.aegis`` or depends on the caller's environment.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aegis_memory.cli.main import app
from aegis_memory.client.errors import AegisPermissionError
from aegis_memory.client.sync_client import AegisClient
from tests.conftest import clean_env, free_port, new_project

SECRET = "sk-test-secret-0123456789"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A config directory of the test's own (not created yet: the CLI must create it)."""
    return tmp_path / "aegis-config"


def run(cfg: Path, *args: str, input: str | None = None, **env: str | None) -> Result:
    """The CLI in-process, isolated from the caller's Aegis settings."""
    environment: dict[str, str | None] = {
        "AEGIS_CONFIG_DIR": str(cfg), "AEGIS_API_KEY": None, "AEGIS_BASE_URL": None, **env}
    return CliRunner().invoke(app, list(args), env=environment, input=input)


def aegis(cfg: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "aegis_memory.cli.main", *args], capture_output=True, text=True,
        timeout=120, env=clean_env(AEGIS_CONFIG_DIR=str(cfg), **env))


def as_json(result: Result | subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def config_data(cfg: Path) -> dict:
    return json.loads((cfg / "config.json").read_text())


# ----------------------------------------------------------------------------- config


def test_init_yes_writes_a_private_file_and_show_masks_the_key(cfg):
    result = run(cfg, "config", "init", "-y", "--api-key", SECRET,
                 "--base-url", "http://aegis.example:8000/")
    assert result.exit_code == 0, result.output
    path = cfg / "config.json"
    assert file_mode(path) == 0o600 and file_mode(cfg) == 0o700
    # Exactly the SDK's format (URL normalised as the SDK would).
    assert config_data(cfg) == {
        "active": "default",
        "profiles": {"default": {"api_key": SECRET, "base_url": "http://aegis.example:8000"}},
    }
    assert SECRET not in result.output
    assert not [p for p in cfg.iterdir() if p.name != "config.json"]  # no temp file left

    shown = run(cfg, "config", "show", "--json")
    assert shown.exit_code == 0, shown.output
    data = as_json(shown)
    assert data == {
        "api_key": "sk-t…6789",
        "api_key_source": f"config:{path}",
        "base_url": "http://aegis.example:8000",
        "base_url_source": f"config:{path}",
        "active_profile": "default",
        "active_profile_exists": True,
        "config_file": str(path),
        "config_file_exists": True,
        "config_file_problem": None,
    }
    people = run(cfg, "config", "show")
    assert people.exit_code == 0
    assert SECRET not in people.stdout and "sk-t…6789" in people.stdout
    assert "config file, profile 'default'" in people.stdout

    assert run(cfg, "config", "path").stdout.strip() == str(path)
    assert as_json(run(cfg, "config", "path", "--json")) == {"path": str(path), "exists": True}


def test_show_without_a_config_file_and_env_overrides(cfg):
    data = as_json(run(cfg, "config", "show", "--json"))
    assert data["api_key_source"] == data["base_url_source"] == "default"
    assert data["config_file_exists"] is False and data["active_profile"] is None
    assert not cfg.exists()  # showing never creates anything

    assert run(cfg, "config", "init", "-y", "--api-key", SECRET,
               "--base-url", "http://from-file:1").exit_code == 0
    overridden = as_json(run(cfg, "config", "show", "--json",
                             AEGIS_API_KEY="env-key-abcdefgh", AEGIS_BASE_URL="http://from-env:2"))
    assert overridden["api_key"] == "env-…efgh"
    assert overridden["api_key_source"] == "env:AEGIS_API_KEY"
    assert overridden["base_url"] == "http://from-env:2"
    assert overridden["base_url_source"] == "env:AEGIS_BASE_URL"
    # Each setting resolves on its own: the env URL combines with the file's key.
    mixed = as_json(run(cfg, "config", "show", "--json", AEGIS_BASE_URL="http://from-env:2"))
    assert mixed["api_key_source"].startswith("config:")
    assert mixed["base_url_source"] == "env:AEGIS_BASE_URL"
    # The global options win over both.
    flags = as_json(run(cfg, "--base-url", "http://flag:3", "config", "show", "--json",
                        AEGIS_BASE_URL="http://from-env:2"))
    assert flags["base_url"] == "http://flag:3" and flags["base_url_source"] == "argument"
    people = run(cfg, "config", "show", AEGIS_API_KEY="env-key-abcdefgh")
    assert "environment variable AEGIS_API_KEY" in people.stdout

    bad = run(cfg, "config", "show", AEGIS_BASE_URL="localhost:8000")
    assert bad.exit_code == 5
    assert "http://" in bad.stderr and "AEGIS_BASE_URL" in bad.stderr


def test_sdk_client_uses_the_profile_written_by_init(cfg, sqlite_server, monkeypatch):
    result = run(cfg, "config", "init", "-y", "--api-key", sqlite_server.api_key,
                 "--base-url", sqlite_server.base_url)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("AEGIS_CONFIG_DIR", str(cfg))
    monkeypatch.delenv("AEGIS_API_KEY", raising=False)
    monkeypatch.delenv("AEGIS_BASE_URL", raising=False)
    with AegisClient() as client:
        assert client.base_url == sqlite_server.base_url
        assert client.config.api_key == sqlite_server.api_key
        assert client.config.api_key_source == f"config:{cfg / 'config.json'}"
        assert client.health().status == "healthy"
        client.keys.list()  # authenticated with the stored key


def test_set_use_and_profiles(cfg):
    assert run(cfg, "config", "init", "-y", "--api-key", "key-aaaa-1111",
               "--base-url", "http://a:1").exit_code == 0
    made = run(cfg, "config", "init", "-y", "--profile", "staging", "--api-key", "key-bbbb-2222",
               "--base-url", "https://staging.example", "--json")
    assert made.exit_code == 0, made.output
    assert as_json(made) == {"profile": "staging", "active": True,
                             "path": str(cfg / "config.json"),
                             "base_url": "https://staging.example", "api_key": "key-…2222",
                             "check": None}
    listed = as_json(run(cfg, "config", "profiles", "--json"))
    assert listed["active"] == "staging"
    assert listed["profiles"] == [
        {"name": "default", "base_url": "http://a:1", "api_key": "key-…1111", "active": False},
        {"name": "staging", "base_url": "https://staging.example", "api_key": "key-…2222",
         "active": True},
    ]

    used = run(cfg, "config", "use", "default", "--json")
    assert used.exit_code == 0 and as_json(used)["active"] == "default"
    assert config_data(cfg)["active"] == "default"

    # `set` changes the active profile unless --profile names another.
    assert run(cfg, "config", "set", "api_key", "key-cccc-3333").exit_code == 0
    other = run(cfg, "config", "set", "base_url", "https://other.example/", "--profile",
                "staging")
    assert other.exit_code == 0 and "aegis config use staging" in other.stdout
    data = config_data(cfg)
    assert data["profiles"]["default"] == {"api_key": "key-cccc-3333", "base_url": "http://a:1"}
    assert data["profiles"]["staging"]["base_url"] == "https://other.example"
    assert data["active"] == "default"

    created = as_json(run(cfg, "config", "set", "base-url", "http://c:3", "--profile", "ci",
                          "--json"))
    assert created == {"profile": "ci", "setting": "base_url", "value": "http://c:3",
                       "created": True, "active": False, "path": str(cfg / "config.json")}

    table = run(cfg, "config", "profiles")
    assert table.exit_code == 0
    for secret in ("key-cccc-3333", "key-bbbb-2222"):
        assert secret not in table.stdout
    marked = [line.split()[:2] for line in table.stdout.splitlines() if "*" in line]
    assert marked == [["*", "default"]]
    assert "(not set)" in table.stdout  # profile 'ci' has no key of its own
    assert file_mode(cfg / "config.json") == 0o600


def test_invalid_input_exits_5_and_unknown_profile_exits_4(cfg):
    assert run(cfg, "config", "init", "-y").exit_code == 0
    before = (cfg / "config.json").read_text()

    for args in (
        ("config", "init", "-y", "--base-url", "localhost:8000"),
        ("config", "init", "-y", "--base-url", "ftp://x"),
        ("config", "init", "-y", "--api-key", "has space"),
        ("config", "init", "-y", "--profile", "bad name"),
        ("config", "set", "base_url", "localhost:8000"),
        ("config", "set", "timeout", "3"),
        ("config", "set", "api_key", "  "),
    ):
        result = run(cfg, *args)
        assert result.exit_code == 5, (args, result.output)
        assert "Error:" in result.stderr and "Traceback" not in result.output
    assert "must start with http:// or https://" in run(
        cfg, "config", "init", "-y", "--base-url", "localhost:8000").stderr
    assert "api_key, base_url" in run(cfg, "config", "set", "timeout", "3").stderr

    missing = run(cfg, "config", "use", "prod")
    assert missing.exit_code == 4
    assert "prod" in missing.stderr and "existing profiles: default" in missing.stderr
    missing_json = run(cfg, "config", "use", "prod", "--json")
    assert missing_json.exit_code == 4
    assert as_json(missing_json)["error"]["exit_code"] == 4
    assert (cfg / "config.json").read_text() == before  # failures change nothing


def test_interactive_init_asks_with_current_values_as_defaults(cfg):
    # Invalid URL first: asked again; the key prompt keeps the default (dev-key) on Enter.
    result = run(cfg, "config", "init", "--no-check",
                 input="localhost:9\nhttp://127.0.0.1:9\n\n")
    assert result.exit_code == 0, result.output
    assert "must start with http://" in result.stderr
    assert config_data(cfg)["profiles"]["default"] == {"api_key": "dev-key",
                                                        "base_url": "http://127.0.0.1:9"}
    # The defaults are now the stored values; a new key replaces the old one.
    again = run(cfg, "config", "init", "--no-check", input=f"\n{SECRET}\n")
    assert again.exit_code == 0, again.output
    assert "[http://127.0.0.1:9]" in again.stderr and "de…y" in again.stderr
    assert SECRET not in again.output  # hidden input, masked echo
    assert config_data(cfg)["profiles"]["default"]["api_key"] == SECRET


def test_permissions_are_never_widened_and_unknown_fields_kept(cfg):
    cfg.mkdir()
    path = cfg / "config.json"
    path.write_text(json.dumps({"active": "x", "extra": 1,
                                "profiles": {"x": {"api_key": "k-1", "note": "mine"}}}))
    path.chmod(0o644)
    assert run(cfg, "config", "set", "base_url", "http://h:1").exit_code == 0
    assert file_mode(path) == 0o600  # group/other read removed
    assert config_data(cfg) == {"active": "x", "extra": 1, "profiles": {
        "x": {"api_key": "k-1", "note": "mine", "base_url": "http://h:1"}}}
    path.chmod(0o400)
    assert run(cfg, "config", "set", "api_key", "k-2").exit_code == 0
    assert file_mode(path) == 0o400  # narrower than ours: kept


def test_broken_config_file_is_reported_not_overwritten(cfg):
    cfg.mkdir()
    path = cfg / "config.json"
    path.write_text("{not json")
    for args in (("config", "set", "api_key", "k"), ("config", "use", "x"),
                 ("config", "profiles"), ("config", "init", "-y")):
        result = run(cfg, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "not valid JSON" in result.stderr
    assert path.read_text() == "{not json"
    shown = run(cfg, "config", "show", "--json")  # like the SDK: ignored, with a warning
    assert shown.exit_code == 0 and as_json(shown)["api_key_source"] == "default"
    assert "ignored" in shown.stderr


# ----------------------------------------------------------------------------- status


def test_status_healthy_and_authenticated(cfg, sqlite_server):
    result = run(cfg, "--base-url", sqlite_server.base_url, "status", "--json")
    assert result.exit_code == 0, result.output
    data = as_json(result)
    assert data["ok"] is True and data["error"] is None
    assert data["base_url"] == sqlite_server.base_url and data["base_url_source"] == "argument"
    assert data["api_key"] == "de…y" and data["api_key_source"] == "default"
    server = data["server"]
    assert server["reachable"] is True and server["status"] == "healthy"
    assert server["version"] and server["latency_ms"] >= 0
    assert data["auth"] == {"accepted": True, "key_type": "project"}

    people = run(cfg, "--base-url", sqlite_server.base_url, "status")
    assert people.exit_code == 0
    assert "key accepted" in people.stdout and "healthy" in people.stdout


def test_status_with_a_wrong_key_exits_3(cfg, sqlite_server):
    result = run(cfg, "--base-url", sqlite_server.base_url, "--api-key", "wrong-key-123",
                 "status", "--json")
    assert result.exit_code == 3
    data = as_json(result)
    assert data["ok"] is False and data["server"]["reachable"] is True
    assert data["auth"] == {"accepted": False, "key_type": None}
    assert data["error"]["exit_code"] == 3
    assert "Invalid API key" in result.stderr and "aegis config init" in result.stderr


def test_status_as_a_process_from_the_profile_and_on_a_closed_port(cfg, sqlite_server):
    made = aegis(cfg, "config", "init", "-y", "--base-url", sqlite_server.base_url)
    assert made.returncode == 0, made.stderr
    ok = aegis(cfg, "status")
    assert ok.returncode == 0, ok.stderr
    assert "config file, profile 'default'" in ok.stdout

    closed = f"http://127.0.0.1:{free_port()}"
    down = aegis(cfg, "--base-url", closed, "status")
    assert down.returncode == 2
    assert "Cannot connect to Aegis server" in down.stderr and closed in down.stderr
    assert "aegis serve" in down.stderr and "aegis config show" in down.stderr
    assert "Traceback" not in down.stderr
    down_json = aegis(cfg, "status", "--json", AEGIS_BASE_URL=closed)
    assert down_json.returncode == 2
    data = as_json(down_json)
    assert data["ok"] is False and data["base_url_source"] == "env:AEGIS_BASE_URL"
    assert data["server"] == {"reachable": False, "status": None, "version": None,
                              "latency_ms": None}
    assert data["auth"]["accepted"] is None and data["error"]["exit_code"] == 2

    # init's connection check reports a dead server with the same exit code (file still saved).
    checked = aegis(cfg, "config", "init", "-y", "--check", "--profile", "down",
                    "--base-url", closed)
    assert checked.returncode == 2 and "Cannot connect to Aegis server" in checked.stderr
    assert config_data(cfg)["active"] == "down"


def test_malformed_base_url_exits_5(cfg):
    result = run(cfg, "--base-url", "localhost:8000", "status")
    assert result.exit_code == 5 and "http://" in result.stderr


# ----------------------------------------------------------------------------- keys


def test_keys_create_list_revoke(cfg, sqlite_server):
    _, project_key = new_project(sqlite_server)
    base = ("--base-url", sqlite_server.base_url, "--api-key", project_key)

    made = run(cfg, *base, "keys", "create", "--name", "ci", "--json")
    assert made.exit_code == 0, made.output
    created = as_json(made)
    assert created["name"] == "ci" and created["agent_id"] is None
    ci_key, ci_id = created["key"], created["id"]
    with AegisClient(api_key=ci_key, base_url=sqlite_server.base_url) as client:
        memory_id = client.add("the ci key works").id
        assert client.get(memory_id).content == "the ci key works"

    shown = run(cfg, *base, "keys", "create", "--agent-id", "bot", "--expires-at",
                "2099-01-31T12:00:00Z")
    assert shown.exit_code == 0, shown.output
    agent_key = shown.stdout.strip().splitlines()[-1].strip()  # the secret, on a line alone
    assert shown.stdout.count(agent_key) == 1
    assert "agent key for 'bot'" in shown.stdout and "only this once" in shown.stdout
    with AegisClient(api_key=agent_key, base_url=sqlite_server.base_url) as client:
        assert client.get(client.add("bound to bot").id).agent_id == "bot"
        with pytest.raises(AegisPermissionError):
            client.add("pretending", agent_id="someone-else")
    agent_status = as_json(run(cfg, "--base-url", sqlite_server.base_url, "--api-key",
                               agent_key, "status", "--json"))
    assert agent_status["ok"] is True
    assert agent_status["auth"] == {"accepted": True, "key_type": "agent"}
    # Managing keys needs a project key: the agent key is authenticated but not allowed (3).
    assert run(cfg, "--base-url", sqlite_server.base_url, "--api-key", agent_key,
               "keys", "list").exit_code == 3

    listed = run(cfg, *base, "keys", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["id"]: row for row in as_json(listed)["keys"]}
    assert rows[ci_id]["name"] == "ci" and rows[ci_id]["state"] == "active"
    agent_row = next(row for row in rows.values() if row["agent_id"] == "bot")
    assert agent_row["expires_at"].startswith("2099-01-31T12:00")
    assert all("key" not in row for row in rows.values())
    table = run(cfg, *base, "keys", "list")
    assert table.exit_code == 0 and ci_id in table.stdout and "bot" in table.stdout
    for secret in (ci_key, agent_key, project_key):
        assert secret not in listed.stdout and secret not in table.stdout

    declined = run(cfg, *base, "keys", "revoke", ci_id, input="n\n")
    assert declined.exit_code == 1
    assert run(cfg, "--base-url", sqlite_server.base_url, "--api-key", ci_key,
               "status").exit_code == 0

    revoked = run(cfg, *base, "keys", "revoke", ci_id, "-y", "--json")
    assert revoked.exit_code == 0, revoked.output
    assert as_json(revoked) == {"id": ci_id, "revoked": True}
    refused = aegis(cfg, "--base-url", sqlite_server.base_url, "--api-key", ci_key, "status")
    assert refused.returncode == 3 and "Invalid API key" in refused.stderr
    rows = {row["id"]: row for row in as_json(run(cfg, *base, "keys", "list", "--json"))["keys"]}
    assert rows[ci_id]["state"] == "revoked"

    unknown = run(cfg, *base, "keys", "revoke", "no-such-key", "-y")
    assert unknown.exit_code == 4 and "no-such-key" in unknown.stderr
    again = run(cfg, *base, "keys", "revoke", ci_id, "-y", "--json")
    assert again.exit_code == 4 and as_json(again)["error"]["exit_code"] == 4


def test_keys_create_rejects_bad_input(cfg, sqlite_server):
    base = ("--base-url", sqlite_server.base_url)
    bad_date = run(cfg, *base, "keys", "create", "--expires-at", "next tuesday")
    assert bad_date.exit_code == 5 and "ISO 8601" in bad_date.stderr
    bad_agent = run(cfg, *base, "keys", "create", "--agent-id", "x" * 500)
    assert bad_agent.exit_code == 5 and "Traceback" not in bad_agent.output
    assert os.environ.get("AEGIS_CONFIG_DIR") != str(cfg)  # isolation held
