"""What every client-side ``aegis`` command shares: connecting, printing, and exit codes.

Commands that talk to a server (``add``, ``query``, ``export``...) use the SDK's `AegisClient`,
so they resolve the key and URL exactly like Python code does: ``--api-key`` / ``--base-url``
(global options, before the command), then ``AEGIS_API_KEY`` / ``AEGIS_BASE_URL``, then the
active profile of ``~/.aegis/config.json`` (``aegis config``), then ``dev-key`` /
``http://localhost:8000``.

Output: a Rich table or panel for people; with ``--json`` one JSON document on stdout and
nothing else, for scripts. Errors go to stderr with the fixes a person can act on, and the
exit code says what kind of failure it was (SPEC §8):

====  ==========================================
0     ok
1     any other error
2     cannot connect (or timeout)
3     authentication or permission
4     not found
5     invalid input
====  ==========================================
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.text import Text

from aegis_memory.client.errors import (
    AegisAuthError,
    AegisConnectionError,
    AegisError,
    AegisNotFoundError,
    AegisPermissionError,
    AegisValidationError,
)

if TYPE_CHECKING:
    from aegis_memory.client.sync_client import AegisClient

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONNECTION = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_VALIDATION = 5

#: stdout for results; stderr for messages, progress bars and errors (so ``--json`` stays
#: machine-readable even when a progress bar is drawn).
console = Console()
err = Console(stderr=True)

#: The ``--json`` flag every command takes.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of "
                                                        "tables.")]

#: What a person can do about each kind of failure (the seed README's troubleshooting).
FIXES: dict[int, str] = {
    EXIT_CONNECTION: (
        "Fix:\n"
        "  1. Is the server running? Start it with `aegis serve` (or `make run`).\n"
        "  2. Check the server URL in your config: `aegis config show`\n"
        "  3. Ensure the port is not blocked by a firewall.\n"
        "  4. Or pass it explicitly: `aegis --base-url http://your-host:8000 ...` "
        "or `export AEGIS_BASE_URL=...`"
    ),
    EXIT_AUTH: (
        "Fix:\n"
        "  1. Check your configured key: `aegis config show`\n"
        "  2. Reconfigure: `aegis config init`\n"
        "  3. Or set via environment variable: `export AEGIS_API_KEY=your-key`\n"
        "  4. The default development key is `dev-key`"
    ),
}


@dataclass
class Connection:
    """The global ``--api-key`` / ``--base-url`` options (None: resolve like the SDK)."""

    api_key: str | None = None
    base_url: str | None = None
    timeout: float = 30.0


def connection(ctx: typer.Context) -> Connection:
    """The connection options stored by the app callback (defaults when run without it)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Connection):
        root.obj = Connection()
    return root.obj


def make_client(ctx: typer.Context, as_json: bool = False) -> AegisClient:
    """An `AegisClient` for this invocation; use it as a context manager.

    ``as_json``: report a malformed URL as a JSON error document too, like other failures.
    """
    from aegis_memory.client.sync_client import AegisClient

    options = connection(ctx)
    try:
        return AegisClient(api_key=options.api_key, base_url=options.base_url,
                           timeout=options.timeout)
    except ValueError as exc:  # a malformed base URL
        fail(str(exc), EXIT_VALIDATION, as_json=as_json)
        raise  # unreachable: fail() raises


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an SDK error (SPEC §8)."""
    if isinstance(exc, AegisConnectionError):
        return EXIT_CONNECTION
    if isinstance(exc, AegisAuthError | AegisPermissionError):
        return EXIT_AUTH
    if isinstance(exc, AegisNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, AegisValidationError):
        return EXIT_VALIDATION
    return EXIT_ERROR


def fail(message: str, code: int = EXIT_ERROR, *, as_json: bool = False,
         error_code: str | None = None) -> None:
    """Report an error (with its fixes) and exit with ``code``. Never returns."""
    if as_json:
        payload = {"error": {"message": message, "code": error_code, "exit_code": code}}
        console.print_json(json.dumps(payload))
    # Plain text: messages quote user input and server sentences, never Rich markup.
    err.print(Text.assemble(("Error:", "red"), " ", message), highlight=False, soft_wrap=True)
    if code in FIXES:
        err.print(Text(FIXES[code]), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def handle_errors(as_json: bool = False) -> Iterator[None]:
    """Turn SDK errors into a message on stderr and the right exit code."""
    try:
        yield
    except AegisError as exc:
        fail(str(exc), exit_code_for(exc), as_json=as_json, error_code=exc.code)


def jsonable(value: Any) -> Any:
    """Pydantic models, dataclasses-like objects, lists and datetimes as plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def emit(data: Any, as_json: bool, render: Callable[[Any], RenderableType | str]) -> None:
    """Print ``data`` as JSON (``--json``) or as what ``render`` makes of it."""
    if as_json:
        # Plain print: Rich's print_json would re-indent and colour; scripts want the bytes.
        typer.echo(json.dumps(jsonable(data), ensure_ascii=False, indent=2))
    else:
        console.print(render(data))


def mask_key(key: str | None) -> str:
    """``sk-live-abcdef1234`` → ``sk-l…1234``, ``dev-key`` → ``de…y``: enough to recognise a
    key, not to use it."""
    if not key:
        return "(none)"
    if len(key) <= 8:
        return key[:2] + "…" + key[-1:]
    return key[:4] + "…" + key[-4:]


def short_time(value: datetime | None) -> str:
    """A timestamp for a table cell (UTC, to the minute)."""
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def truncate(text: str, width: int = 80) -> str:
    """One line of at most ``width`` characters for a table cell."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
