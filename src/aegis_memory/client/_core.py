"""The part of the SDK that does not care whether it runs sync or async.

httpx's pattern: one base, two thin transports. Every public method is written once, as a
function that *describes* the request (a `Call`) or a short sequence of requests (a plan: a
generator that yields `Call`s and receives their results). Two drivers execute descriptions:
`SyncDriver` sends them and returns the parsed value, `AsyncDriver` does the same in a coroutine.
The `operation` / `stream_operation` decorators glue the two together and, through overloaded
``__get__``, tell type checkers that ``AegisClient.add`` returns ``AddResult`` while
``AsyncAegisClient.add`` returns ``Coroutine[..., AddResult]`` - without a second copy of any
signature.

Adding an endpoint::

    class ClientOps:
        @operation
        def thing(self, thing_id: str, *, agent_id: str | None = None) -> Call[Thing]:
            \"\"\"What it does and why.\"\"\"
            return Call("GET", f"/things/{path_id(thing_id)}", Thing.model_validate,
                        params=query_params(agent_id=agent_id))

Several requests in a row (chunked batches, a streamed download into a file) are a *plan*: the
build function is a generator that ``yield``s each `Call` (or `Drain`) and receives its result;
the driver feeds it, so the loop is written once for both clients.

A sub-API such as ``client.keys`` (and later ``client.progress``): a `Namespace` subclass with
operations (``KeysOps``), one empty class per driver (``class Keys(KeysOps, SyncNamespace)``,
``class AsyncKeys(KeysOps, AsyncNamespace)``) and a property on each client returning it.

This module also holds what both clients share around the request: configuration resolution,
default headers, response parsing and translating transport failures into `AegisError`s.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeAlias, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from aegis_memory.client._version import VERSION
from aegis_memory.client.errors import (
    AegisConnectionError,
    AegisError,
    AegisTimeoutError,
    AegisValidationError,
    error_from_response,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "AsyncDriver",
    "AsyncNamespace",
    "Call",
    "Drain",
    "Plan",
    "ResolvedConfig",
    "SyncDriver",
    "SyncNamespace",
    "operation",
    "resolve_config",
    "stream_operation",
]

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_API_KEY = "dev-key"
DEFAULT_BASE_URL = "http://localhost:8000"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"aegis-memory-python/{VERSION}"


# ============================================================================ request descriptions


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and how to read its answer.

    ``parse`` receives the decoded JSON body (None for an empty body); for streamed endpoints it
    receives one decoded item at a time. Keeping the description separate from sending it is
    what lets the sync and async clients share every method, and lets tests inspect requests
    without a server.
    """

    method: str
    path: str
    parse: Callable[[Any], T] = field(repr=False)
    json: Any = None
    params: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Drain(Generic[T]):
    """A plan step: stream ``call`` and hand each item to ``sink``; the step's result is the count.

    Lets a plan consume a streamed endpoint (``export_to``) without knowing whether iteration is
    ``for`` or ``async for``.
    """

    call: Call[T]
    sink: Callable[[T], object]


Step: TypeAlias = "Call[Any] | Drain[Any]"
#: A multi-request operation: yields steps, receives each step's result, returns the final value.
Plan: TypeAlias = Generator[Step, Any, T]


def _result_type(build: Callable[..., Any]) -> str | None:
    """``AddResult`` from a build function annotated ``-> Call[AddResult]`` (or ``Plan[...]``)."""
    annotation = getattr(build, "__annotations__", {}).get("return")
    if isinstance(annotation, str):
        match = re.fullmatch(r"(?:Call|Plan)\[(.+)\]", annotation.strip())
        if match:
            return match.group(1)
    return None


class _Described(Generic[P, T]):
    """What `operation` and `stream_operation` share: the build function and how it presents.

    Bound methods get the build function's name, docstring and signature (without ``self``,
    returning what the caller receives rather than the internal `Call`), so ``help()``, IDEs
    and ``inspect.signature`` show the real API.
    """

    #: How the result type is shown for a sync and an async client.
    _sync_return = "{}"
    _async_return = "Awaitable[{}]"

    def __init__(self, build: Callable[Concatenate[Any, P], Any]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__
        self.__qualname__ = build.__qualname__
        self.__module__ = build.__module__
        signature = inspect.signature(build)
        result = _result_type(build)

        def shown(template: str, *, with_self: bool) -> inspect.Signature:
            params = list(signature.parameters.values())
            return signature.replace(
                parameters=params if with_self else params[1:],
                return_annotation=(
                    inspect.Signature.empty if result is None else template.format(result)
                ),
            )

        self.__signature__ = shown(self._sync_return, with_self=True)
        self._signatures = {
            False: shown(self._sync_return, with_self=False),
            True: shown(self._async_return, with_self=False),
        }

    def _dress(self, bound: Callable[..., Any], obj: object) -> Callable[..., Any]:
        bound.__name__ = self.__name__
        bound.__qualname__ = self.__qualname__
        bound.__doc__ = self.__doc__
        bound.__module__ = self.__module__
        bound.__signature__ = self._signatures[isinstance(obj, AsyncDriver)]  # type: ignore[attr-defined]
        return bound

    def __call__(self, obj: Any, /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Called on the class, like a plain method: ``AegisClient.add(client, "text")``."""
        return self.__get__(obj, type(obj))(*args, **kwargs)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__qualname__}{self.__signature__}>"


class operation(_Described[P, T]):
    """Decorator: a method that builds a `Call` (or a plan) becomes a method that executes it.

    ``build`` runs when the method is called (sync) or awaited (async), so argument errors
    surface where a caller expects them. Accessed on the class, the decorator returns itself:
    ``ClientOps.add.build(client, "text")`` gives the `Call` without sending anything.
    """

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T] | Plan[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> operation[P, T]: ...
    @overload
    def __get__(self, obj: SyncDriver, owner: type | None = None) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, obj: AsyncDriver, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        build = self.build

        def bound(*args: Any, **kwargs: Any) -> Any:
            return obj._invoke(functools.partial(build, obj, *args, **kwargs))

        return self._dress(bound, obj)


class stream_operation(_Described[P, T]):
    """Decorator for streamed endpoints: the method returns an iterator of parsed items.

    Sync clients get an ``Iterator``, async clients an ``AsyncIterator`` (``async for``). The
    request is sent when iteration starts; argument errors are raised at the call.
    """

    _sync_return = "Iterator[{}]"
    _async_return = "AsyncIterator[{}]"

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> stream_operation[P, T]: ...
    @overload
    def __get__(self, obj: SyncDriver, owner: type | None = None) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(
        self, obj: AsyncDriver, owner: type | None = None
    ) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        build = self.build

        def bound(*args: Any, **kwargs: Any) -> Any:
            return obj._stream(build(obj, *args, **kwargs))

        return self._dress(bound, obj)


# ============================================================================ drivers


class SyncDriver(ABC):
    """Executes descriptions by blocking; implemented by `AegisClient` and its namespaces."""

    @abstractmethod
    def _send(self, call: Call[T]) -> T:
        """Send one request and return its parsed result."""

    @abstractmethod
    def _stream(self, call: Call[T]) -> Iterator[T]:
        """Send one request and yield its streamed items, parsed."""

    def _invoke(self, build: Callable[[], Call[T] | Plan[T]]) -> T:
        work = build()
        if isinstance(work, Call):
            return self._send(work)
        return self._run_plan(work)

    def _run_plan(self, plan: Plan[T]) -> T:
        try:
            step = next(plan)
            while True:
                try:
                    result = self._run_step(step)
                except Exception as exc:  # let the plan clean up (or handle) what failed
                    step = plan.throw(exc)
                else:
                    step = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _run_step(self, step: Step) -> Any:
        if isinstance(step, Drain):
            count = 0
            for item in self._stream(step.call):
                step.sink(item)
                count += 1
            return count
        return self._send(step)


class AsyncDriver(ABC):
    """Executes descriptions in coroutines; implemented by `AsyncAegisClient` and its namespaces."""

    @abstractmethod
    async def _send(self, call: Call[T]) -> T:
        """Send one request and return its parsed result."""

    @abstractmethod
    def _stream(self, call: Call[T]) -> AsyncIterator[T]:
        """Send one request and yield its streamed items, parsed."""

    async def _invoke(self, build: Callable[[], Call[T] | Plan[T]]) -> T:
        work = build()
        if isinstance(work, Call):
            return await self._send(work)
        return await self._run_plan(work)

    async def _run_plan(self, plan: Plan[T]) -> T:
        try:
            step = next(plan)
            while True:
                try:
                    result = await self._run_step(step)
                except Exception as exc:  # let the plan clean up (or handle) what failed
                    step = plan.throw(exc)
                else:
                    step = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _run_step(self, step: Step) -> Any:
        if isinstance(step, Drain):
            count = 0
            async for item in self._stream(step.call):
                step.sink(item)
                count += 1
            return count
        return await self._send(step)


class Namespace:
    """Base of sub-APIs (``client.keys``): holds the client whose transport it borrows."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"


class SyncNamespace(Namespace, SyncDriver):
    """A sub-API of a sync client: its operations run on the parent's connection."""

    _client: SyncDriver

    def _send(self, call: Call[T]) -> T:
        return self._client._send(call)

    def _stream(self, call: Call[T]) -> Iterator[T]:
        return self._client._stream(call)


class AsyncNamespace(Namespace, AsyncDriver):
    """A sub-API of an async client: its operations run on the parent's connection."""

    _client: AsyncDriver

    async def _send(self, call: Call[T]) -> T:
        return await self._client._send(call)

    def _stream(self, call: Call[T]) -> AsyncIterator[T]:
        return self._client._stream(call)


# ============================================================================ building requests


def format_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """One readable line per problem: ``field: message`` (pydantic's wording, minus its noise)."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error.get("loc", ()))
        msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        lines.append(f"{where}: {msg}" if where else msg)
    return "; ".join(lines)


def invalid_arguments(exc: ValidationError, *, prefix: str = "") -> AegisValidationError:
    """The SDK's own rejection of arguments, shaped like the server's 422 (no status code)."""
    message = f"Invalid arguments: {format_validation_error(exc, prefix=prefix)}"
    return AegisValidationError(message, code="invalid_arguments")


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, *, prefix: str = "") -> M:
    """``model.model_validate(data)``, with failures raised as `AegisValidationError`."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_arguments(exc, prefix=prefix) from None


def request_body(model: type[BaseModel], /, **fields: Any) -> dict[str, Any]:
    """Validate arguments with the wire model and dump only what the caller gave.

    ``None`` means "not given" (every optional field of the request models defaults to None),
    so it is left out: the body says exactly what the caller asked for and the server applies
    its defaults to the rest. Validating here gives the same message as the server's 422
    before a round trip.
    """
    given = {name: value for name, value in fields.items() if value is not None}
    instance = validate_model(model, given)
    return instance.model_dump(mode="json", exclude_unset=True)


def query_params(**params: str | None) -> dict[str, str] | None:
    """Query parameters without the ones not given (None), or None when nothing is left."""
    kept = {name: value for name, value in params.items() if value is not None}
    return kept or None


def path_id(value: str, what: str = "id") -> str:
    """An id made safe for a URL path segment.

    Quoting everything (``/`` included) means an id can never step into another route
    (``"../keys"``); an empty id would silently hit the collection route instead, and ``.`` or
    ``..`` would be resolved by the HTTP client (``/memories/..`` is ``/``), so they are refused.
    """
    if not isinstance(value, str) or not value.strip():
        raise AegisValidationError(
            f"Invalid arguments: {what} must be a non-empty string", code="invalid_arguments"
        )
    if value in (".", ".."):
        raise AegisValidationError(
            f"Invalid arguments: {what} {value!r} cannot be used in a URL path",
            code="invalid_arguments",
        )
    return quote(value, safe="")


def as_list(value: str | Iterable[str] | None) -> list[str] | None:
    """Accept one name where a list of names is expected (``target_agent_ids="planner"``).

    A bare string is an iterable of characters, which is never what the caller meant.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


# ============================================================================ configuration


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The key and URL a client will use, and where each came from (for ``aegis status``)."""

    api_key: str = field(repr=False)  # never in logs or tracebacks
    base_url: str
    api_key_source: str
    base_url_source: str


def config_file_path(env: Mapping[str, str] | None = None) -> Path:
    """The CLI's config file: ``$AEGIS_CONFIG_DIR/config.json`` or ``~/.aegis/config.json``."""
    env = os.environ if env is None else env
    directory = env.get("AEGIS_CONFIG_DIR")
    base = Path(directory).expanduser() if directory else Path.home() / ".aegis"
    return base / "config.json"


def read_cli_profile(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The active profile of the CLI config, or ``{}``.

    Never raises: a missing, unreadable or malformed file must not stop a client that was
    given everything it needs in code or in the environment.
    """
    try:
        data = json.loads(config_file_path(env).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    profiles = data.get("profiles")
    active = data.get("active") or "default"
    if not isinstance(profiles, dict) or not isinstance(active, str):
        return {}
    profile = profiles.get(active)
    if not isinstance(profile, dict):
        return {}
    return {
        name: value
        for name in ("api_key", "base_url")
        if isinstance(value := profile.get(name), str) and value.strip()
    }


def resolve_config(
    api_key: str | None = None,
    base_url: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Key and URL by precedence: argument, environment, CLI config file, built-in default.

    Each is resolved on its own, so ``AEGIS_BASE_URL`` in the environment combines with a key
    from the config file. Empty values count as unset. The file is only read when needed.
    """
    env = os.environ if env is None else env
    profile: dict[str, str] | None = None

    def pick(given: str | None, env_name: str, profile_key: str, default: str) -> tuple[str, str]:
        nonlocal profile
        if given is not None and given.strip():
            return given.strip(), "argument"
        from_env = env.get(env_name, "").strip()
        if from_env:
            return from_env, f"env:{env_name}"
        if profile is None:
            profile = read_cli_profile(env)
        if profile_key in profile:
            return profile[profile_key].strip(), f"config:{config_file_path(env)}"
        return default, "default"

    key, key_source = pick(api_key, "AEGIS_API_KEY", "api_key", DEFAULT_API_KEY)
    url, url_source = pick(base_url, "AEGIS_BASE_URL", "base_url", DEFAULT_BASE_URL)
    return ResolvedConfig(key, normalize_base_url(url), key_source, url_source)


def normalize_base_url(url: str) -> str:
    """Strip the trailing slash and insist on a scheme (``localhost:8000`` is a common slip)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"Invalid Aegis base_url {url!r}: it must start with http:// or https:// "
            "(for example http://localhost:8000)"
        )
    return url


def http_options(config: ResolvedConfig, timeout: float | httpx.Timeout | None) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``: identical for both."""
    return {
        "base_url": config.base_url,
        "timeout": timeout,
        "headers": {
            "Authorization": f"Bearer {config.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        },
    }


# ============================================================================ shared transports


class BorrowedTransport(httpx.BaseTransport):
    """Another client's transport, used but not owned: closing the borrower leaves it open.

    Lets ``with_api_key`` derive a client that talks to the same embedded server in local mode
    without shutting that server down when the derived client is closed.
    """

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Nothing to do: the lending client closes the transport."""


class AsyncBorrowedTransport(httpx.AsyncBaseTransport):
    """The async counterpart of `BorrowedTransport`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Nothing to do: the lending client closes the transport."""


# ============================================================================ reading responses


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
    """The httpx request for a `Call` (both httpx clients build requests the same way)."""
    return http.build_request(call.method, call.path, json=call.json, params=call.params)


def _unexpected(response: httpx.Response, what: str) -> AegisError:
    return AegisError(
        f"Unexpected response from the Aegis server: {what}",
        status_code=response.status_code,
        code="unexpected_response",
        request_id=response.headers.get("x-request-id"),
    )


def raise_for_status(response: httpx.Response) -> None:
    """Raise the typed error for a non-2xx response (its body must already be read)."""
    if not response.is_success:
        raise error_from_response(response.status_code, response.content, response.headers)


def parse_response(call: Call[T], response: httpx.Response) -> T:
    """Check the status, decode the JSON body and hand it to ``call.parse``."""
    raise_for_status(response)
    if response.status_code == 204 or not response.content.strip():
        data: Any = None
    else:
        try:
            data = response.json()
        except ValueError:
            raise _unexpected(response, "the body is not JSON") from None
    try:
        return call.parse(data)
    except ValidationError as exc:
        raise _unexpected(response, format_validation_error(exc)) from exc


def is_whole_json(response: httpx.Response) -> bool:
    """Whether a streamed endpoint answered with one JSON document instead of JSON lines.

    Error bodies are JSON too, and a server may ignore ``format="jsonl"``; both are read whole.
    """
    if not response.is_success:
        return True
    content_type = str(response.headers.get("content-type", ""))
    return content_type.split(";")[0].strip().lower() == "application/json"


def parse_whole_stream(call: Call[T], response: httpx.Response) -> list[T]:
    """Items of a streamed endpoint whose body was one JSON array (or an error)."""
    raise_for_status(response)
    try:
        data = response.json()
    except ValueError:
        raise _unexpected(response, "the body is not JSON") from None
    if not isinstance(data, list):
        raise _unexpected(response, "expected a JSON array")
    try:
        return [call.parse(item) for item in data]
    except ValidationError as exc:
        raise _unexpected(response, format_validation_error(exc)) from exc


def parse_stream_line(call: Call[T], line: str, response: httpx.Response) -> list[T]:
    """The item on one JSON line: ``[]`` for a blank line, else a one-item list."""
    if not line.strip():
        return []
    try:
        data = json.loads(line)
        return [call.parse(data)]
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
        detail = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise _unexpected(response, f"bad line in stream: {detail}") from exc


def connection_error(exc: httpx.TransportError, base_url: str) -> AegisConnectionError:
    """A transport failure as the error a person can act on (SPEC §6 fixes the first lines)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return AegisTimeoutError(
            f"Cannot connect to Aegis server\n  URL: {base_url}\n"
            "  The connection attempt timed out: check the host, port and firewall.",
            code="connect_timeout",
        )
    if isinstance(exc, httpx.TimeoutException):
        return AegisTimeoutError(
            f"The Aegis server did not answer in time\n  URL: {base_url}\n"
            "  Raise the client's timeout= for large requests, or check the server's load.",
            code="timeout",
        )
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol):
        return AegisConnectionError(
            f"Cannot connect to Aegis server\n  URL: {base_url}\n"
            "  Is the server running? Start it with `aegis serve`, or check the URL with "
            "`aegis config show`.",
            code="connection_error",
        )
    return AegisConnectionError(
        f"Lost the connection to the Aegis server\n  URL: {base_url}\n"
        f"  ({type(exc).__name__}: {exc})",
        code="connection_error",
    )
