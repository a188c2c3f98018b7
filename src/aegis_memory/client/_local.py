"""Local mode: the real Aegis server, in-process, behind an httpx transport.

The client code path stays identical to remote use (same requests, same auth, same error
mapping), so local mode cannot drift from the server's behaviour: only the transport changes.

The server app is imported lazily, so ``import aegis_memory`` needs only httpx and pydantic.

The app's ASGI lifespan (which opens and closes the store and the vector index) runs in a task
of its own, as under uvicorn: the lifespan is entered and exited in the same task, which
task-group based lifespans require, and whatever state it yields is handed to each request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import traceback
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

__all__ = ["LOCAL_BASE_URL", "AsyncLocalTransport", "LocalTransport", "load_local_app"]

T = TypeVar("T")

#: Requests never leave the process; the host only has to be a valid URL.
LOCAL_BASE_URL = "http://aegis.local"

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]


def load_local_app(
    path: str | Path | None, settings_overrides: dict[str, Any]
) -> tuple[ASGIApp, str]:
    """Build the server app for local mode; returns it with the API key it accepts.

    ``path`` is the data directory (``AEGIS_DATA_DIR``); ``settings_overrides`` are fields of
    `aegis_memory.config.Settings`. Unknown names are refused rather than ignored, since a typo
    there would otherwise silently use e.g. the default data directory.
    """
    try:
        from aegis_memory.config import Settings
        from aegis_memory.server.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "aegis_memory":
            raise
        raise ImportError(
            "Local mode runs the Aegis server in-process and needs its dependencies "
            f"(missing: {exc.name}). Install them with: pip install 'aegis-memory[server]'"
        ) from exc

    overrides = dict(settings_overrides)
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise TypeError(
            f"Unknown local-mode setting(s): {', '.join(unknown)}. "
            "Use the field names of aegis_memory.config.Settings (e.g. aegis_embedding_provider)."
        )
    if path is not None:
        if "aegis_data_dir" in overrides:
            raise TypeError(
                "Give the data directory either as path= or as aegis_data_dir=, not both"
            )
        overrides["aegis_data_dir"] = Path(path).expanduser()
    settings = Settings(**overrides)
    return create_app(settings, configure_logging=False, serve_mcp=False), settings.aegis_api_key


class _Lifespan:
    """Runs an app's ASGI lifespan protocol in a background task (startup, then shutdown)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] | None = None
        self._from_app: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._to_app, self._from_app = asyncio.Queue(), asyncio.Queue()
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.get_running_loop().create_task(
            _as_coroutine(self._app(scope, self._to_app.get, self._from_app.put)),
            name="aegis-local-lifespan",
        )
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._next_message()
        if message is not None and message["type"] == "lifespan.startup.failed":
            await self._task  # re-raises the app's own exception, with its traceback
            raise RuntimeError(f"The Aegis server failed to start: {message.get('message', '')}")

    async def shutdown(self) -> None:
        task, self._task = self._task, None
        if task is None or self._to_app is None:
            return
        if task.done():
            task.exception()  # mark as retrieved; startup already reported it
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._next_message(task)
        await task  # re-raises a shutdown failure: e.g. the index could not be saved

    async def _next_message(self, task: asyncio.Task[None] | None = None) -> Message | None:
        """The app's next lifespan message, or None if the app ended without one.

        An app that raises before answering does not support lifespan; the ASGI spec says to
        carry on without it.
        """
        task = task or self._task
        assert task is not None and self._from_app is not None
        getter = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        if not task.cancelled():
            task.exception()
        return None


class _WithState:
    """Gives each request a shallow copy of the lifespan state, as uvicorn does."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self._app = app
        self._state = state

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(self._state)}
        await self._app(scope, receive, send)


class AsyncLocalTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands requests to the app directly (no sockets).

    The lifespan starts on first use (or when the client is entered with ``async with``), in
    the caller's event loop, and stops on ``aclose()``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._lifespan = _Lifespan(app)
        # raise_app_exceptions=False: an unhandled server error becomes a 500 response (and so
        # an AegisServerError), exactly as over the network.
        self._asgi = httpx.ASGITransport(
            app=_WithState(app, self._lifespan.state), raise_app_exceptions=False
        )
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Run the app's startup (open store and index) once."""
        if self._started:
            return
        async with self._lock:
            if self._closed:
                raise RuntimeError("The local Aegis server has been closed")
            if not self._started:
                await self._lifespan.startup()
                self._started = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.start()
        return await self._asgi.handle_async_request(request)

    async def aclose(self) -> None:
        """Run the app's shutdown (flush and close store and index); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            await self._lifespan.shutdown()


class _LoopThread:
    """An event loop in a daemon thread, so a sync client can drive an async app."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="aegis-local-server", daemon=True
        )
        self.thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(coro), self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if self.loop.is_running():
            try:
                self.run(_cancel_leftover_tasks())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(timeout=30)
        if not self.thread.is_alive():
            self.loop.close()


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _cancel_leftover_tasks() -> None:
    """Cancel what the app left running, so closing the loop does not warn about it."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _shutdown(runner: _LoopThread, inner: AsyncLocalTransport) -> None:
    if threading.current_thread() is runner.thread:
        # The garbage collector freed the client while running on the loop's own thread:
        # blocking here would deadlock, so finish the shutdown on the loop and let it stop.
        task = runner.loop.create_task(inner.aclose())
        task.add_done_callback(lambda _: runner.loop.stop())
        return
    try:
        if runner.loop.is_running():
            runner.run(inner.aclose())
    finally:
        runner.stop()


_open_transports: weakref.WeakSet[LocalTransport] = weakref.WeakSet()
_exit_hook_registered = False


def _close_all_at_exit() -> None:
    """Shut down embedded servers whose clients were never closed, while threads still work.

    It must run before `concurrent.futures` stops accepting work at interpreter exit (the
    server saves its index through ``asyncio.to_thread``), which is earlier than ``atexit``.
    """
    for transport in list(_open_transports):
        try:
            transport.close()
        except Exception:  # report, but keep closing the others
            traceback.print_exc()


def _register_exit_hook() -> None:
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    # Import first so that its exit hook is registered before ours: threading runs these hooks
    # in reverse order, so ours then runs while executors still accept work.
    import concurrent.futures.thread  # noqa: F401

    register = getattr(threading, "_register_atexit", None)
    if register is not None:  # CPython >= 3.9; otherwise the weakref finalizer's atexit remains
        register(_close_all_at_exit)
    _exit_hook_registered = True


class LocalTransport(httpx.BaseTransport):
    """The sync counterpart: forwards each request to an `AsyncLocalTransport` on a private loop.

    The app starts at construction, so a broken configuration fails at ``AegisClient.local()``
    rather than at the first call. If the client is never closed, the server is still shut down
    at interpreter exit (so the index is flushed).
    """

    def __init__(self, app: ASGIApp) -> None:
        self._inner = AsyncLocalTransport(app)
        self._runner = _LoopThread()
        try:
            self._runner.run(self._inner.start())
        except BaseException:
            self._runner.stop()
            raise
        self._finalizer = weakref.finalize(self, _shutdown, self._runner, self._inner)
        _register_exit_hook()
        _open_transports.add(self)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self._finalizer.alive:
            raise RuntimeError("The local Aegis server has been closed")
        forwarded = httpx.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.read(),
            extensions=request.extensions,
        )
        try:
            status, headers, body = self._runner.run(self._roundtrip(forwarded))
        except concurrent.futures.CancelledError as exc:  # pragma: no cover - loop shut down
            raise httpx.RemoteProtocolError("local server stopped", request=request) from exc
        # Raw (still encoded) bytes and headers: the sync client decodes them itself.
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    async def _roundtrip(
        self, request: httpx.Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = await self._inner.handle_async_request(request)
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        return response.status_code, response.headers.raw, body

    def close(self) -> None:
        """Shut the app down and stop the thread (once; later calls do nothing)."""
        _open_transports.discard(self)
        self._finalizer()
