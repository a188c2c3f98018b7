"""`AsyncAegisClient`: every method of `AegisClient`, as a coroutine. Only sending lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from aegis_memory.client._api import ClientOps, KeysOps
from aegis_memory.client._core import (
    DEFAULT_TIMEOUT,
    AsyncBorrowedTransport,
    AsyncDriver,
    AsyncNamespace,
    Call,
    build_request,
    connection_error,
    http_options,
    is_whole_json,
    parse_response,
    parse_stream_line,
    parse_whole_stream,
)
from aegis_memory.client._local import AsyncLocalTransport

__all__ = ["AsyncAegisClient", "AsyncKeys"]

T = TypeVar("T")


class AsyncKeys(KeysOps, AsyncNamespace):
    """``client.keys`` of an async client: ``create``, ``list``, ``revoke`` as coroutines."""


class AsyncAegisClient(ClientOps, AsyncDriver):
    """The async twin of `AegisClient` (FastAPI handlers, LangGraph nodes, ...).

    Same arguments, same configuration fallbacks, same methods; each returns a coroutine,
    except ``export`` which returns an async iterator (``async for m in client.export()``).
    Use ``async with`` (or ``await client.aclose()``) to release connections.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout)
        self._transport = transport
        self._http = httpx.AsyncClient(**http_options(self._config, timeout), transport=transport)

    @classmethod
    def local(cls, path: str | Path | None = None, **settings_overrides: Any) -> AsyncAegisClient:
        """A client for an Aegis server embedded in this process (see `AegisClient.local`).

        The server starts on first use or on ``async with``, in the running event loop, and
        stops on `aclose`; use the client from that one loop.
        """
        from aegis_memory.client._local import LOCAL_BASE_URL, load_local_app

        app, api_key = load_local_app(path, settings_overrides)
        return cls(api_key=api_key, base_url=LOCAL_BASE_URL, transport=AsyncLocalTransport(app))

    def with_api_key(self, api_key: str) -> AsyncAegisClient:
        """A client for the same server that authenticates with another key (an agent key, say).

        In local mode it shares this client's embedded server, which keeps running until this
        client is closed.
        """
        transport = None if self._transport is None else AsyncBorrowedTransport(self._transport)
        return AsyncAegisClient(api_key, self.base_url, self._timeout, transport=transport)

    @property
    def keys(self) -> AsyncKeys:
        """The project's API keys (a property, so the client and it form no reference cycle)."""
        return AsyncKeys(self)

    # ------------------------------------------------------------------ transport

    async def _send(self, call: Call[T]) -> T:
        request = build_request(self._http, call)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from exc
        return parse_response(call, response)

    async def _stream(self, call: Call[T]) -> AsyncIterator[T]:
        request = build_request(self._http, call)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from exc
        try:
            if is_whole_json(response):
                await response.aread()
                for item in parse_whole_stream(call, response):
                    yield item
                return
            async for line in response.aiter_lines():
                for item in parse_stream_line(call, line, response):
                    yield item
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from exc
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Release connections (and stop the embedded server in local mode). Idempotent."""
        await self._http.aclose()

    async def close(self) -> None:
        """Same as `aclose`: the async client has the sync client's methods, as coroutines."""
        await self.aclose()

    async def __aenter__(self) -> AsyncAegisClient:
        if isinstance(self._transport, AsyncLocalTransport):
            await self._transport.start()  # local mode: open the store now, not mid-request
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
