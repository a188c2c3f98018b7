"""Structured logging: one format for our loggers, uvicorn's and every library's.

structlog renders, stdlib logging transports: a single stdlib handler on the root logger
formats every record (ours, uvicorn's, a third-party warning) with structlog's
``ProcessorFormatter``, as one JSON object per line for log collectors or as readable
``key=value`` lines for people. ``RequestLogMiddleware`` writes one line per HTTP request.

What must never reach a log: API keys and what people store or search for. Nothing here logs
bodies, headers or query strings, and ``Redactor`` masks anything key-shaped and drops
fields such as ``content`` in case some future log call passes them anyway.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.typing import EventDict, Processor, WrappedLogger

from aegis_memory.config import Settings
from aegis_memory.server.middleware import WatchedSend

REQUEST_LOGGER = "aegis_memory.requests"
#: Probes hit these every few seconds: their lines are DEBUG, not INFO.
PROBE_ROUTES = frozenset({"/health", "/ready", "/metrics"})
#: Fields dropped outright, whoever passes them: memory text, search text, credentials.
DROPPED_FIELDS = frozenset({
    "content", "text", "query", "api_key", "authorization", "headers", "body", "password",
    "secret", "token",
})
_FIRST_FIELDS = ("timestamp", "level", "logger", "event")

# service/hashing.py: "aegis_" + token_urlsafe(32), i.e. 43 URL-safe characters. Requiring 40+
# keeps names like the metric "aegis_http_request_duration_seconds" readable.
_KEY = re.compile(r"aegis_[A-Za-z0-9_-]{40,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
# SQLAlchemy puts a failed statement's bound values into the exception text; those values are
# memory content and query text. Up to its "(Background on this error ...)" line, or the end.
_SQL_PARAMETERS = re.compile(
    r"\[parameters: .*?\](?=\s*(?:\(Background on this error|$))", re.DOTALL
)


class Redactor:
    """A structlog processor: masks key-shaped strings and configured secrets, drops fields
    named like content or credentials. Defence in depth: our own log calls pass none of
    these, but a traceback or a future ``log.info(..., extra=...)`` might."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Short strings would mask ordinary words; every real secret is longer.
        unique = {s for s in secrets if s and len(s) >= 6}
        self.secrets = sorted(unique, key=len, reverse=True)

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        for name in [k for k in event_dict if _dropped(k)]:
            del event_dict[name]
        for name, value in event_dict.items():
            if not name.startswith("_") and name not in ("exc_info", "stack_info"):
                event_dict[name] = self.scrub(value)
        return event_dict

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {k: self.scrub(v) for k, v in value.items() if not _dropped(k)}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _KEY.sub("aegis_***", text)
        text = _BEARER.sub(r"\1***", text)
        text = _URL_PASSWORD.sub(r"\1***@", text)
        return _SQL_PARAMETERS.sub("[parameters: redacted]", text)


def _dropped(name: object) -> bool:
    return str(name).lower() in DROPPED_FIELDS


def _drop_colour_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn passes an ANSI-coloured copy of some messages as ``extra``; one copy is enough."""
    event_dict.pop("color_message", None)
    return event_dict


def _first_fields_first(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """timestamp, level, logger and event lead every JSON line, so lines read alike."""
    head = {k: event_dict.pop(k) for k in _FIRST_FIELDS if k in event_dict}
    return {**head, **event_dict}


def json_logs(settings: Settings) -> bool:
    """JSON when LOG_FORMAT=json, or in production unless LOG_FORMAT was set explicitly
    (pydantic-settings counts a value from the environment or .env as set)."""
    if "log_format" in settings.model_fields_set:
        return settings.log_format == "json"
    return settings.log_format == "json" or settings.aegis_env == "production"


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.INFO


def build_formatter(
    *, as_json: bool, secrets: Iterable[str | None] = (), colours: bool = False
) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of our handler, for records from structlog and from plain ``logging``."""
    timestamper = (structlog.processors.TimeStamper(fmt="iso", utc=True) if as_json
                   else structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False))
    foreign: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_colour_message,
        timestamper,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if as_json
        else structlog.dev.ConsoleRenderer(colors=colours)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # A plain traceback string, in both formats: the console renderer's own (Rich)
            # traceback prints local variables, i.e. request bodies and keys, and a string
            # can be redacted.
            structlog.processors.format_exc_info,
            Redactor(secrets),
            _first_fields_first,
            renderer,
        ],
    )


class _AegisHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our root handler; its own class so a second configure_logging replaces it instead of
    adding another (``aegis serve`` configures the parent process, then the app its worker)."""


def configure_logging(settings: Settings, stream: TextIO | None = None) -> bool:
    """Route all logging of this process through one structlog-formatted handler.

    If the host program already configured logging (a root handler that is not ours, as
    under pytest or in an application embedding the server), only our loggers' level is set
    and the host's handlers stay in charge. Returns whether it configured logging.
    """
    level = _level(settings.log_level)
    ours = logging.getLogger("aegis_memory")
    ours.setLevel(level)
    root = logging.getLogger()
    if ours.handlers or any(not isinstance(h, _AegisHandler) for h in root.handlers):
        return False
    for old in list(root.handlers):
        root.removeHandler(old)
    out = stream or sys.stderr
    handler = _AegisHandler(out)
    handler.setFormatter(build_formatter(
        as_json=json_logs(settings),
        secrets=(settings.aegis_api_key, settings.aegis_admin_key, settings.openai_api_key),
        colours=out.isatty(),
    ))
    root.addHandler(handler)
    # uvicorn's own logging set-up (when something ran it with its default log_config) gives
    # its loggers handlers of their own and stops them propagating: hand them to ours. Not
    # its access log: `aegis serve` turns that off (it would print raw paths with query
    # strings), and uvicorn does so by cutting that logger off.
    for name in ("uvicorn", "uvicorn.error"):
        server_logger = logging.getLogger(name)
        for old in list(server_logger.handlers):
            server_logger.removeHandler(old)
        server_logger.propagate = True
    # Libraries are heard from at WARNING (httpx alone logs every request at INFO).
    root.setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return True


class RequestLogMiddleware:
    """One log line per HTTP request: event ``request`` with request_id, method, route
    template, status, duration_ms, project, agent and client_ip.

    The route template, never the raw path: ids in paths may be sensitive and would make every
    line unique. Never the query string, headers or bodies. Sits inside RequestIdMiddleware,
    whose request id it reads from ``scope["state"]``; the identity is there once the auth
    dependency has run.
    """

    def __init__(self, app: ASGIApp, logger_name: str = REQUEST_LOGGER) -> None:
        self.app = app
        self.log = logging.getLogger(logger_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = WatchedSend(send)
        try:
            await self.app(scope, receive, sent)
        except asyncio.CancelledError:  # the client went away (499, as nginx calls it)
            self._emit(scope, sent.status or 499, started, failed=False)
            raise
        except Exception:  # the error handler outside us answers 500 and logs the traceback
            self._emit(scope, sent.status or 500, started, failed=True)
            raise
        self._emit(scope, sent.status or 500, started, failed=False)

    def _emit(self, scope: Scope, status: int, started: float, *, failed: bool) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        if failed:
            level = logging.ERROR
        elif route in PROBE_ROUTES:
            level = logging.DEBUG
        elif status >= 500:
            level = logging.ERROR
        else:
            level = logging.INFO
        if not self.log.isEnabledFor(level):
            return
        state = scope.get("state") or {}
        identity = state.get("identity")
        client = scope.get("client")
        self.log.log(level, "request", extra={
            "request_id": state.get("request_id"),
            "method": scope.get("method"),
            "route": route,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "project": getattr(identity, "project_id", None),
            "agent": getattr(identity, "bound_agent_id", None),
            "client_ip": client[0] if client else None,
        })
