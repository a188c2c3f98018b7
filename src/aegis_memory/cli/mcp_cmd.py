"""``aegis mcp``: run Aegis Memory as an MCP server (stdio by default, or streamable HTTP).

Desktop clients (Claude Desktop, Cursor) launch ``aegis mcp`` themselves and talk to it over
stdin/stdout, so nothing but MCP messages may go to stdout: messages go to stderr. The key and
URL resolve like every client command (global ``--api-key`` / ``--base-url``, then
``AEGIS_API_KEY`` / ``AEGIS_BASE_URL``, then the active config profile).

The MCP SDK is an extra; it is imported only when the command runs, so ``aegis`` works
without it and says how to install it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from aegis_memory.cli._common import EXIT_ERROR, EXIT_VALIDATION, connection, fail

#: Same default as `aegis_memory.integrations.mcp.DEFAULT_HTTP_PORT` (not imported from there:
#: that module needs the extra).
DEFAULT_HTTP_PORT = 8765


class Transport(StrEnum):
    """How MCP clients reach the server."""

    stdio = "stdio"
    http = "http"


def register(app: typer.Typer) -> None:
    """Add ``aegis mcp`` to ``app``."""
    app.command("mcp")(mcp)


def mcp(
    ctx: typer.Context,
    transport: Annotated[Transport, typer.Option(
        "--transport", "-t", case_sensitive=False,
        help="stdio (clients launch `aegis mcp`) or http (streamable HTTP on --host/--port).",
    )] = Transport.stdio,
    agent_id: Annotated[str | None, typer.Option(
        "--agent-id", metavar="AGENT", help="Default agent of tools called without one.",
        show_default=False)] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", metavar="NAME", help="Default namespace (else 'default').",
        show_default=False)] = None,
    host: Annotated[str, typer.Option(
        help="Interface for --transport http. Keep it on loopback: the endpoint acts with "
             "this command's key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for --transport http.")] = DEFAULT_HTTP_PORT,
    path: Annotated[str, typer.Option(help="URL path for --transport http.")] = "/mcp",
) -> None:
    """Run the MCP server: Aegis memory tools and resources for Claude Desktop, Cursor and
    other MCP clients. Use `aegis --api-key KEY --base-url URL mcp` to pick the server."""
    try:
        from aegis_memory.integrations import mcp as mcp_server
    except ImportError as exc:
        fail(str(exc), EXIT_ERROR)
        return
    options = connection(ctx)
    try:
        mcp_server.check_connection_options(options.api_key, options.base_url)
    except ValueError as exc:  # a malformed base URL: say so now, not on the first tool call
        fail(str(exc), EXIT_VALIDATION)
    try:
        mcp_server.run(
            transport.value, api_key=options.api_key, base_url=options.base_url,
            agent_id=agent_id, namespace=namespace, timeout=options.timeout,
            host=host, port=port, path=path,
        )
    except KeyboardInterrupt:  # Ctrl+C on the HTTP transport: a normal way to stop it
        raise typer.Exit(0) from None
