"""`AegisClient`: the blocking client. Only sending lives here; the methods are in `_api`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from aegis_memory.client._api import ClientOps, KeysOps
from aegis_memory.client._core import (
    DEFAULT_TIMEOUT,
    BorrowedTransport,
    Call,
    SyncDriver,
    SyncNamespace,
    build_request,
    connection_error,
    http_options,
    is_whole_json,
    parse_response,
    parse_stream_line,
    parse_whole_stream,
)

__all__ = ["AegisClient", "Keys"]

T = TypeVar("T")


class Keys(KeysOps, SyncNamespace):
    """``client.keys`` of a sync client: ``create``, ``list``, ``revoke``."""


class AegisClient(ClientOps, SyncDriver):
    """Talks to an Aegis server (or, with `local`, to one running in this process).

    ``api_key`` and ``base_url`` fall back to ``AEGIS_API_KEY`` / ``AEGIS_BASE_URL``, then to
    the active profile of the CLI config (``~/.aegis/config.json``), then to ``dev-key`` /
    ``http://localhost:8000``. Use it as a context manager, or call `close`, to release the
    connection pool (and, in local mode, to shut the embedded server down cleanly).

    ``transport`` replaces the network layer (tests, proxies, local mode).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout)
        self._transport = transport
        self._http = httpx.Client(**http_options(self._config, timeout), transport=transport)

    @classmethod
    def local(cls, path: str | Path | None = None, **settings_overrides: Any) -> AegisClient:
        """A client for an Aegis server embedded in this process: no network, no separate server.

        ``path`` is the data directory (default ``~/.aegis/data``, shared with ``aegis serve``);
        other keyword arguments override `aegis_memory.config.Settings` fields. The server
        starts now and stops on `close`. Needs ``pip install 'aegis-memory[server]'``.
        """
        from aegis_memory.client._local import LOCAL_BASE_URL, LocalTransport, load_local_app

        app, api_key = load_local_app(path, settings_overrides)
        transport = LocalTransport(app)
        try:
            return cls(api_key=api_key, base_url=LOCAL_BASE_URL, transport=transport)
        except BaseException:
            transport.close()
            raise

    def with_api_key(self, api_key: str) -> AegisClient:
        """A client for the same server that authenticates with another key (an agent key, say).

        In local mode it shares this client's embedded server; close it as usual, the server
        keeps running until this client is closed.
        """
        transport = None if self._transport is None else BorrowedTransport(self._transport)
        return AegisClient(api_key, self.base_url, self._timeout, transport=transport)

    @property
    def keys(self) -> Keys:
        """The project's API keys (a property, so the client and it form no reference cycle)."""
        return Keys(self)

    # ------------------------------------------------------------------ transport

    def _send(self, call: Call[T]) -> T:
        request = build_request(self._http, call)
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from exc
        return parse_response(call, response)

    def _stream(self, call: Call[T]) -> Iterator[T]:
        request = build_request(self._http, call)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from exc
        try:
            if is_whole_json(response):
                response.read()
                yield from parse_whole_stream(call, response)
                return
            for line in response.iter_lines():
                yield from parse_stream_line(call, line, response)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from exc
        finally:
            response.close()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release connections (and stop the embedded server in local mode). Idempotent."""
        self._http.close()

    def __enter__(self) -> AegisClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
