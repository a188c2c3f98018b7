"""``aegis config``, ``aegis status`` and ``aegis keys``: where the CLI connects, and with what.

The config file is the one the SDK reads (`config_file_path`, `read_cli_profile` in
``aegis_memory.client._core``), so a profile written here is what ``AegisClient()`` uses in
Python code too. Its format is fixed by the SDK::

    {"active": "<name>", "profiles": {"<name>": {"api_key": "...", "base_url": "..."}}}

It holds a credential, which shapes how it is written: the directory is created ``0700`` and the
file ``0600``, every write goes to a temporary file in the same directory and is swapped in with
``os.replace`` (a crash never leaves half a file, and a reader never sees one), and an existing
file never gets wider permissions than it had. Keys are shown masked everywhere except once,
when ``aegis keys create`` makes a new one.

``aegis status`` answers "will my commands work?": is the server up, does it accept the key, how
long a round trip takes; its exit code is the answer for scripts (0, 2 unreachable, 3 refused).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from aegis_memory.cli._common import (
    EXIT_CONNECTION,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_VALIDATION,
    JsonFlag,
    connection,
    console,
    emit,
    err,
    exit_code_for,
    fail,
    handle_errors,
    jsonable,
    make_client,
    mask_key,
    short_time,
)
from aegis_memory.client._core import (
    DEFAULT_BASE_URL,
    config_file_path,
    normalize_base_url,
    resolve_config,
)
from aegis_memory.client.errors import (
    AegisAuthError,
    AegisConnectionError,
    AegisError,
    AegisPermissionError,
)

if TYPE_CHECKING:
    from aegis_memory.client.sync_client import AegisClient
    from aegis_memory.schemas import ApiKeyInfo

config_app = typer.Typer(
    help="Profiles of the CLI config file (server URL and API key), shared with the Python SDK.",
    no_args_is_help=True,
)
keys_app = typer.Typer(
    help="API keys of your project: create project or agent keys, list, revoke "
         "(needs a project key).",
    no_args_is_help=True,
)

#: The settings a profile holds (the SDK reads exactly these two).
SETTINGS = ("api_key", "base_url")
DEFAULT_PROFILE = "default"
#: Profile names end up in commands and file keys: keep them to a plain, shell-safe alphabet.
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

YesFlag = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; use the given values "
                                                           "and defaults.")]
ProfileOption = Annotated[str | None, typer.Option(
    "--profile", help="Profile to change (default: the active one, else 'default').",
    show_default=False)]


def register(app: typer.Typer) -> None:
    """Add ``config``, ``status`` and ``keys`` to ``app``."""
    app.add_typer(config_app, name="config")
    app.add_typer(keys_app, name="keys")
    app.command("status")(status)


# ============================================================================ the config file


@dataclass
class ConfigFile:
    """The parsed config file; unknown fields are kept so a rewrite never loses them."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    exists: bool = False

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        """Profiles by name (created on first use, so callers can assign into it)."""
        return self.data.setdefault("profiles", {})  # type: ignore[no-any-return]

    @property
    def active(self) -> str:
        """The active profile's name; the SDK falls back to 'default' when none is recorded."""
        name = self.data.get("active")
        return name if isinstance(name, str) and name else DEFAULT_PROFILE


def problem_with(data: Any) -> str | None:
    """Why ``data`` is not a config file the SDK can read, or None when it is."""
    if not isinstance(data, dict):
        return "the top level is not a JSON object"
    if "active" in data and data["active"] is not None and not isinstance(data["active"], str):
        return "'active' is not a string"
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        return "'profiles' is not an object"
    for name, profile in profiles.items():
        if not isinstance(profile, dict):
            return f"profile '{name}' is not an object"
    return None


def load_config() -> ConfigFile:
    """The config file, or an empty one when it does not exist yet.

    A file that exists but cannot be read or parsed stops the command (exit 1) instead of being
    overwritten: it may hold keys the user still needs.
    """
    path = config_file_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigFile(path)
    except OSError as exc:
        fail(f"Cannot read the config file {path}: {exc.strerror or exc}.", EXIT_ERROR)
        raise  # unreachable: fail() raises
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        fail(f"The config file {path} is not valid JSON ({exc}). Fix it, or move it away and "
             "run `aegis config init`.", EXIT_ERROR)
        raise  # unreachable
    problem = problem_with(data)
    if problem:
        fail(f"The config file {path} is not in the expected format: {problem}. Fix it, or move "
             "it away and run `aegis config init`.", EXIT_ERROR)
    return ConfigFile(path, data, exists=True)


def save_config(config: ConfigFile) -> None:
    """Write the file atomically, readable by its owner only.

    The temporary file is created by `tempfile.mkstemp`, which makes it ``0600`` from the start,
    so the key is never readable by others, not even for a moment. An existing file keeps its
    permissions minus any group/other bits: we narrow, never widen. A symlinked config (dotfile
    managers) is written through to its target rather than replaced by a plain file.
    """
    target = config.path.resolve() if config.path.is_symlink() else config.path
    directory = target.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(target.stat().st_mode) & 0o600
        except FileNotFoundError:
            mode = 0o600
        fd, temp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(config.data, out, indent=2, ensure_ascii=False)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        fail(f"Cannot write the config file {target}: {exc.strerror or exc}.", EXIT_ERROR)
    config.exists = True


def check_profile_name(name: str) -> str:
    """The name, or exit 5 when it is not a plain identifier."""
    if not _PROFILE_NAME.fullmatch(name):
        fail(f"Invalid profile name {name!r}: use letters, digits, '.', '_' or '-' "
             "(at most 64 characters, starting with a letter or digit).", EXIT_VALIDATION)
    return name


def check_base_url(url: str) -> str:
    """The URL as the SDK will use it (normalised), or exit 5 with the SDK's explanation."""
    try:
        return normalize_base_url(url)
    except ValueError as exc:
        fail(str(exc), EXIT_VALIDATION)
        raise  # unreachable


def api_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key (it is sent in an HTTP header), or None."""
    if not key.strip():
        return "The API key must not be empty."
    if any(ch.isspace() or not ch.isprintable() for ch in key.strip()):
        return "The API key must not contain spaces or control characters."
    return None


def check_api_key(key: str) -> str:
    """The key without surrounding blanks, or exit 5."""
    problem = api_key_problem(key)
    if problem:
        fail(problem, EXIT_VALIDATION)
    return key.strip()


def describe_source(source: str, setting: str, active: str) -> str:
    """The SDK's source tag (``env:AEGIS_API_KEY``, ``config:/path``...) in words."""
    if source == "argument":
        return f"--{setting.replace('_', '-')} option"
    if source.startswith("env:"):
        return f"environment variable {source[4:]}"
    if source.startswith("config:"):
        return f"config file, profile '{active}'"
    return "built-in default"


# ============================================================================ aegis config ...


@config_app.command("init")
def config_init(
    ctx: typer.Context,
    yes: YesFlag = False,
    profile: ProfileOption = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="API key to store (else asked; default: the current one).",
        show_default=False)] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="Server URL to store (else asked; default: the current one).",
        show_default=False)] = None,
    check: Annotated[bool | None, typer.Option(
        "--check/--no-check", help="Check the server and key after saving "
                                   "(default: check unless --yes).", show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create or update a profile and make it active.

    Asks for the server URL and API key (Enter keeps the value shown), or with --yes takes
    --base-url / --api-key and the current values for the rest, without touching the network
    unless --check is given.
    """
    config = load_config()
    name = check_profile_name(profile or config.active)
    options = connection(ctx)
    default_key, default_url = _current_values(config, name, options.api_key, options.base_url)
    # This command's options win over the global ones (``aegis --base-url X config init``).
    key = api_key if api_key is not None else options.api_key
    url = base_url if base_url is not None else options.base_url

    if yes:
        url = check_base_url(url if url is not None else default_url)
        key = check_api_key(key if key is not None else default_key)
    else:
        url = check_base_url(url) if url is not None else _ask_base_url(default_url)
        key = check_api_key(key) if key is not None else _ask_api_key(default_key)

    config.profiles[name] = {**config.profiles.get(name, {}), "api_key": key, "base_url": url}
    config.data["active"] = name
    save_config(config)

    result: dict[str, Any] = {"profile": name, "active": True, "path": str(config.path),
                              "base_url": url, "api_key": mask_key(key), "check": None}
    if not as_json:
        console.print(f"Saved profile [bold]{name}[/bold] ({escape(url)}, key "
                      f"{escape(mask_key(key))}) to {escape(str(config.path))} and made it "
                      "active.", highlight=False)
    if not (check if check is not None else not yes):
        if as_json:
            emit(result, True, lambda _: "")
        return

    from aegis_memory.client.sync_client import AegisClient

    # Check what was just saved, not what the environment may override.
    with AegisClient(api_key=key, base_url=url, timeout=options.timeout) as client:
        report = probe(client)
    # The client was given the values explicitly; to the user they are the saved profile's.
    report.base_url_source = report.api_key_source = f"config:{config.path}"
    result["check"] = report.as_dict()
    if as_json:
        emit(result, True, lambda _: "")
    else:
        console.print(render_status(report))
    if report.exit_code:
        fail(report.error or "The check failed.", report.exit_code)


def _current_values(config: ConfigFile, name: str, api_key: str | None,
                    base_url: str | None) -> tuple[str, str]:
    """Defaults for ``init``: the profile's own values when it exists, else what a client
    would use right now (flags, environment, active profile, built-in defaults)."""
    stored = config.profiles.get(name, {})
    key = stored.get("api_key") if isinstance(stored.get("api_key"), str) else None
    url = stored.get("base_url") if isinstance(stored.get("base_url"), str) else None
    if key and url:
        return key, url
    try:
        resolved = resolve_config(api_key, base_url)
        return key or resolved.api_key, url or resolved.base_url
    except ValueError:  # a malformed URL somewhere: offer the built-in one instead
        return key or resolve_config(api_key, DEFAULT_BASE_URL).api_key, url or DEFAULT_BASE_URL


def _ask_base_url(default: str) -> str:
    """Ask until the answer is a usable URL (a typo should not end the whole dialogue)."""
    while True:
        answer = typer.prompt("Aegis server URL", default=default, err=True)
        try:
            return normalize_base_url(answer)
        except ValueError as exc:
            err.print(f"[red]{exc}[/red]", highlight=False)


def _ask_api_key(default: str) -> str:
    """Ask for the key without echoing it; the default is shown masked only."""
    while True:
        answer = typer.prompt(f"API key [{mask_key(default)}; Enter keeps it]", default=default,
                              hide_input=True, show_default=False, err=True)
        problem = api_key_problem(answer)
        if problem is None:
            return str(answer).strip()
        err.print(f"[red]{problem}[/red]", highlight=False)


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the key (masked) and server URL commands use now, and where each comes from."""
    path = config_file_path()
    config, config_problem = _peek_config(path)
    active = config.active
    options = connection(ctx)
    try:
        resolved = resolve_config(options.api_key, options.base_url)
    except ValueError as exc:
        fail(f"{exc}. It comes from {_url_origin(options.base_url, config)}.", EXIT_VALIDATION,
             as_json=as_json, error_code="invalid_base_url")
        raise  # unreachable
    profile_exists = active in config.profiles
    data = {
        "api_key": mask_key(resolved.api_key),
        "api_key_source": resolved.api_key_source,
        "base_url": resolved.base_url,
        "base_url_source": resolved.base_url_source,
        "active_profile": active if config.exists else None,
        "active_profile_exists": profile_exists,
        "config_file": str(path),
        "config_file_exists": config.exists,
        "config_file_problem": config_problem,
    }

    def render(_: object) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        url_from = describe_source(resolved.base_url_source, "base_url", active)
        key_from = describe_source(resolved.api_key_source, "api_key", active)
        table.add_row("Server URL", f"{escape(resolved.base_url)}  [dim]({escape(url_from)})[/dim]")
        table.add_row("API key",
                      f"{escape(mask_key(resolved.api_key))}  [dim]({escape(key_from)})[/dim]")
        if not config.exists:
            profile_cell = "[dim](none: no config file yet; `aegis config init` creates one)[/dim]"
        elif not profile_exists:
            profile_cell = f"{escape(active)} [dim](not defined in the file)[/dim]"
        else:
            profile_cell = escape(active)
        table.add_row("Active profile", profile_cell)
        table.add_row("Config file", escape(str(path)) if config.exists
                      else f"{escape(str(path))}  [dim](does not exist yet)[/dim]")
        return table

    if config_problem:
        err.print(f"[yellow]Warning:[/yellow] the config file is ignored: {config_problem}",
                  highlight=False, soft_wrap=True)
    emit(data, as_json, render)


def _peek_config(path: Path) -> tuple[ConfigFile, str | None]:
    """The config file for display only, read as leniently as the SDK reads it: a file that is
    not JSON is reported (the SDK ignores it), and entries of the wrong shape are skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ConfigFile(path), None
    except (OSError, ValueError) as exc:
        return ConfigFile(path, exists=True), f"{path} cannot be read as JSON ({exc})"
    if not isinstance(data, dict):
        return ConfigFile(path, exists=True), f"{path}: the top level is not a JSON object"
    profiles = data.get("profiles")
    usable = {
        name: profile for name, profile in profiles.items() if isinstance(profile, dict)
    } if isinstance(profiles, dict) else {}
    active = data.get("active") if isinstance(data.get("active"), str) else None
    return ConfigFile(path, {"active": active, "profiles": usable}, exists=True), None


def _url_origin(flag: str | None, config: ConfigFile) -> str:
    """Where a malformed base URL came from, by the SDK's precedence (for the error message)."""
    if flag is not None and flag.strip():
        return "the --base-url option"
    if os.environ.get("AEGIS_BASE_URL", "").strip():
        return "the environment variable AEGIS_BASE_URL"
    return (f"profile '{config.active}' of {config.path} "
            "(fix it with `aegis config set base_url URL`)")


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="api_key or base_url.", show_default=False)],
    value: Annotated[str, typer.Argument(help="The new value.", show_default=False)],
    profile: ProfileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Set one setting of a profile (creating the profile if needed)."""
    setting = key.strip().lower().replace("-", "_")
    if setting not in SETTINGS:
        fail(f"Unknown setting {key!r}: use one of {', '.join(SETTINGS)}.", EXIT_VALIDATION,
             as_json=as_json, error_code="unknown_setting")
    clean = check_base_url(value) if setting == "base_url" else check_api_key(value)
    config = load_config()
    name = check_profile_name(profile or config.active)
    created = name not in config.profiles
    config.profiles.setdefault(name, {})[setting] = clean
    if not config.data.get("active") and set(config.profiles) == {name}:
        # The first profile of a new file: make it active, so `set` alone gives a working
        # configuration (whatever it is called).
        config.data["active"] = name
    save_config(config)
    is_active = config.active == name
    shown = mask_key(clean) if setting == "api_key" else clean
    data = {"profile": name, "setting": setting, "value": shown, "created": created,
            "active": is_active, "path": str(config.path)}

    def render(_: object) -> Text:
        text = Text(f"Set {setting} of profile '{name}' to {shown}.")
        if not is_active:
            text.append(f" It is not the active profile; `aegis config use {name}` makes it so.",
                        style="dim")
        return text

    emit(data, as_json, render)


@config_app.command("use")
def config_use(
    name: Annotated[str, typer.Argument(help="Profile to make active.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Make a profile the active one (used by commands and by AegisClient() in Python)."""
    config = load_config()
    if name not in config.profiles:
        existing = ", ".join(sorted(config.profiles)) or "none yet"
        fail(f"No profile named '{name}' in {config.path} (existing profiles: {existing}). "
             "Create it with `aegis config init --profile NAME`.", EXIT_NOT_FOUND,
             as_json=as_json, error_code="profile_not_found")
    config.data["active"] = name
    save_config(config)
    emit({"active": name, "path": str(config.path)}, as_json,
         lambda _: Text(f"Profile '{name}' is now active."))


@config_app.command("profiles")
def config_profiles(as_json: JsonFlag = False) -> None:
    """List the profiles of the config file (keys masked); * marks the active one."""
    config = load_config()
    active = config.active if config.exists else None
    rows = [
        {
            "name": name,
            "base_url": profile.get("base_url"),
            "api_key": mask_key(profile.get("api_key")) if profile.get("api_key") else None,
            "active": name == active,
        }
        for name, profile in sorted(config.profiles.items())
    ]
    data = {"active": active, "path": str(config.path), "profiles": rows}

    def render(_: object) -> Table | Text:
        if not rows:
            return Text(f"No profiles yet in {config.path}. Create one with `aegis config init`.")
        table = Table(box=None, pad_edge=False)
        table.add_column("", width=1)
        table.add_column("Profile", style="bold")
        table.add_column("Server URL")
        table.add_column("API key")
        for row in rows:
            table.add_row("*" if row["active"] else "", row["name"],
                          row["base_url"] or "(not set)", row["api_key"] or "(not set)")
        return table

    emit(data, as_json, render)


@config_app.command("path")
def config_path(as_json: JsonFlag = False) -> None:
    """Print where the config file is ($AEGIS_CONFIG_DIR/config.json, else ~/.aegis/)."""
    path = config_file_path()
    if as_json:
        emit({"path": str(path), "exists": path.exists()}, True, lambda _: "")
    else:
        typer.echo(str(path))  # plain, so that `$(aegis config path)` works


# ============================================================================ aegis status


@dataclass
class StatusReport:
    """What ``aegis status`` (and ``config init --check``) found out."""

    base_url: str
    base_url_source: str
    api_key: str  # masked
    api_key_source: str
    reachable: bool = False
    server_status: str | None = None
    version: str | None = None
    latency_ms: float | None = None
    key_accepted: bool | None = None  # None: not checked (server unreachable)
    key_type: str | None = None  # "project" or "agent"
    error: str | None = None
    error_code: str | None = None
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape (stable: scripts read it)."""
        return {
            "ok": self.exit_code == 0,
            "base_url": self.base_url,
            "base_url_source": self.base_url_source,
            "api_key": self.api_key,
            "api_key_source": self.api_key_source,
            "server": {"reachable": self.reachable, "status": self.server_status,
                       "version": self.version, "latency_ms": self.latency_ms},
            "auth": {"accepted": self.key_accepted, "key_type": self.key_type},
            "error": None if self.error is None else {
                "message": self.error, "code": self.error_code, "exit_code": self.exit_code},
        }


def probe(client: AegisClient) -> StatusReport:
    """Ask the server for its health, then make one cheap authenticated call.

    ``GET /keys`` needs a valid key and touches only the project's few key rows (cheaper than
    the dashboard counts on a large project). An agent-bound key is refused there with 403,
    which proves that the key itself was accepted (a bad key gets 401 first), so 403 counts
    as authenticated, as an agent key.
    """
    config = client.config
    report = StatusReport(base_url=config.base_url, base_url_source=config.base_url_source,
                          api_key=mask_key(config.api_key), api_key_source=config.api_key_source)
    started = time.perf_counter()
    try:
        health = client.health()
    except AegisError as exc:
        return _failed(report, exc)
    report.latency_ms = round((time.perf_counter() - started) * 1000, 1)
    report.reachable = True
    report.server_status = health.status
    report.version = health.version
    try:
        client.keys.list()
    except AegisPermissionError:
        report.key_accepted, report.key_type = True, "agent"
    except AegisAuthError as exc:
        report.key_accepted = False
        return _failed(report, exc)
    except AegisError as exc:
        return _failed(report, exc)
    else:
        report.key_accepted, report.key_type = True, "project"
    return report


def _failed(report: StatusReport, exc: AegisError) -> StatusReport:
    report.error = str(exc)
    report.error_code = exc.code
    report.exit_code = exit_code_for(exc)
    # Any HTTP answer (even a 5xx) means the server was reached.
    report.reachable = exc.status_code is not None and not isinstance(exc, AegisConnectionError)
    return report


def render_status(report: StatusReport) -> Table:
    """The report as a small aligned grid."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    active = _profile_name()
    url_from = describe_source(report.base_url_source, "base_url", active)
    key_from = describe_source(report.api_key_source, "api_key", active)
    table.add_row("Server URL", f"{escape(report.base_url)}  [dim]({escape(url_from)})[/dim]")
    table.add_row("API key", f"{escape(report.api_key)}  [dim]({escape(key_from)})[/dim]")
    if report.server_status is not None:
        version = f", version {escape(report.version)}" if report.version else ""
        latency = f", round trip {report.latency_ms:.0f} ms" if report.latency_ms is not None \
            else ""
        table.add_row("Server", f"[green]{escape(report.server_status)}[/green]{version}{latency}")
    elif report.reachable:
        table.add_row("Server", "[yellow]answered with an error[/yellow]")
    elif report.exit_code == EXIT_CONNECTION:
        table.add_row("Server", "[red]unreachable[/red]")
    if report.key_accepted:
        table.add_row("Authentication", f"[green]key accepted[/green] ({report.key_type} key)")
    elif report.key_accepted is False:
        table.add_row("Authentication", "[red]key refused[/red]")
    return table


def _profile_name() -> str:
    config, _ = _peek_config(config_file_path())
    return config.active


def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check the server and the key: health, version, authentication, round-trip time.

    Exit code 0 when the server is up and accepts the key, 2 when it cannot be reached,
    3 when it refuses the key.
    """
    with make_client(ctx) as client:
        report = probe(client)
    if as_json:
        emit(report.as_dict(), True, lambda _: "")
    else:
        console.print(render_status(report))
    if report.exit_code:
        fail(report.error or "The status check failed.", report.exit_code)


# ============================================================================ aegis keys


def _parse_expiry(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; without a time zone it is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"Invalid --expires-at {value!r}: use an ISO 8601 date or date-time such as "
             "2030-01-31 or 2030-01-31T12:00:00Z.", EXIT_VALIDATION)
        raise  # unreachable
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _day(value: datetime | None) -> str:
    """A date for a narrow table cell (the full time is in ``--json``)."""
    return value.strftime("%Y-%m-%d") if value else ""


def _key_state(info: ApiKeyInfo, now: datetime) -> str:
    if info.revoked_at is not None:
        return "revoked"
    if info.expires_at is not None:
        expires = info.expires_at if info.expires_at.tzinfo else \
            info.expires_at.replace(tzinfo=UTC)
        if expires <= now:
            return "expired"
    return "active"


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    agent_id: Annotated[str | None, typer.Option(
        "--agent-id", help="Bind the key to this agent (it can then act only as that agent).",
        show_default=False)] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="A label to recognise the key by.", show_default=False)] = None,
    expires_at: Annotated[str | None, typer.Option(
        "--expires-at", help="Expiry, ISO 8601 (UTC unless a zone is given).",
        show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a project key, or an agent key with --agent-id. The secret is shown only once."""
    expiry = _parse_expiry(expires_at)
    with make_client(ctx) as client, handle_errors(as_json):
        created = client.keys.create(agent_id=agent_id, name=name, expires_at=expiry)
    if as_json:
        emit(created, True, lambda _: "")
        return
    kind = f"agent key for '{created.agent_id}'" if created.agent_id else "project key"
    label = f" '{created.name}'" if created.name else ""
    expiry_note = f", expires {short_time(created.expires_at)} UTC" if created.expires_at else ""
    console.print(f"Created {escape(kind)}{escape(label)} (id: [bold]{escape(created.id)}[/bold]"
                  f"{expiry_note}).", highlight=False)
    console.print("The secret, shown only this once (the server keeps just its hash):",
                  style="yellow")
    console.print(created.key, soft_wrap=True, highlight=False)


@keys_app.command("list")
def keys_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the project's keys (never their secrets: the prefix identifies them)."""
    with make_client(ctx) as client, handle_errors(as_json):
        keys = client.keys.list()
    now = datetime.now(UTC)
    rows = [{**jsonable(info), "state": _key_state(info, now)} for info in keys]

    def render(_: object) -> Table | Text:
        if not keys:
            return Text("No API keys in this project.")
        table = Table(box=None, pad_edge=False)
        table.add_column("ID", no_wrap=True)
        table.add_column("Name")
        table.add_column("Agent")
        for column in ("Prefix", "Created", "Expires", "State"):
            table.add_column(column, no_wrap=True)
        for info, row in zip(keys, rows, strict=True):
            state = row["state"]
            style = {"active": "green", "revoked": "red", "expired": "yellow"}[state]
            table.add_row(info.id, info.name or "", info.agent_id or "-", info.prefix,
                          _day(info.created_at), _day(info.expires_at) or "never",
                          f"[{style}]{state}[/{style}]")
        return table

    emit({"keys": rows}, as_json, render)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (see `aegis keys list`).",
                                          show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key at once: requests made with it are refused from now on."""
    if not yes:
        typer.confirm(f"Revoke API key {key_id}? Anything using it will stop working",
                      abort=True, err=True)
    with make_client(ctx) as client, handle_errors(as_json):
        client.keys.revoke(key_id)
    emit({"id": key_id, "revoked": True}, as_json, lambda _: Text(f"Revoked API key {key_id}."))
