"""What the service reports about its own work, without knowing who listens.

The service calls a ``Telemetry`` at the points only it can see (an add that turned out to be
a duplicate, a vote's kind, a feature that failed its tests, the time spent embedding). The
server plugs in a Prometheus-backed implementation (``aegis_memory.server.metrics``); the
default does nothing, so the SDK's local mode and scripts pay nothing for it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
G = TypeVar("G", bound=Callable[..., AsyncIterator[Any]])


class Telemetry(Protocol):
    """Receives counts and durations from the service. Implementations must be cheap and
    must never raise: they run inside requests."""

    def operation(self, name: str, seconds: float, ok: bool) -> None:
        """One service operation (``add``, ``query``, ``vote``...) finished."""

    def embedded(self, texts: int, seconds: float) -> None:
        """The embedder was asked for ``texts`` vectors (cache hits included)."""

    def deduplicated(self, count: int) -> None:
        """``count`` adds returned an existing memory instead of storing a new one."""

    def memories_added(self, count: int) -> None:
        """``count`` new memories were stored (adds, batches, deltas and imports)."""

    def voted(self, vote: str) -> None:
        """A vote (``helpful`` / ``harmful``) was recorded."""

    def reflected(self) -> None:
        """A reflection memory was stored."""

    def session_changed(self, status: str) -> None:
        """A session was created or updated and is now in ``status``."""

    def feature_changed(self, outcome: str) -> None:
        """A feature was updated: ``passed``, ``failed`` or ``updated`` (neither)."""


class NoTelemetry:
    """The default: reports go nowhere."""

    def operation(self, name: str, seconds: float, ok: bool) -> None:
        pass

    def embedded(self, texts: int, seconds: float) -> None:
        pass

    def deduplicated(self, count: int) -> None:
        pass

    def memories_added(self, count: int) -> None:
        pass

    def voted(self, vote: str) -> None:
        pass

    def reflected(self) -> None:
        pass

    def session_changed(self, status: str) -> None:
        pass

    def feature_changed(self, outcome: str) -> None:
        pass


def timed(name: str) -> Callable[[F], F]:
    """Report an async service method as operation ``name`` (its duration and whether it
    raised). The instance must have a ``telemetry`` attribute."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            ok = False
            try:
                result = await method(self, *args, **kwargs)
                ok = True
                return result
            finally:
                self.telemetry.operation(name, time.perf_counter() - started, ok)

        return run  # type: ignore[return-value]

    return wrap


def timed_stream(name: str) -> Callable[[G], G]:
    """``timed`` for async generators (exports): the operation lasts until the stream ends,
    and a stream abandoned by its reader (a client that went away) counts as not ok."""

    def wrap(method: G) -> G:
        @functools.wraps(method)
        async def run(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            started = time.perf_counter()
            ok = False
            try:
                async for item in method(self, *args, **kwargs):
                    yield item
                ok = True
            finally:
                self.telemetry.operation(name, time.perf_counter() - started, ok)

        return run  # type: ignore[return-value]

    return wrap
