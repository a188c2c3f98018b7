"""Templates and the response headers every dashboard answer carries.

Jinja2 escapes everything it interpolates (autoescape): memory content is user data and
must never become markup. The Content-Security-Policy allows only our own scripts and
styles, so even an escaping mistake could not run a script injected through a memory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from aegis_memory import __version__
from aegis_memory.index.filters import KNOWN_SCOPES, MEMORY_TYPES
from aegis_memory.server.dashboard_ui import charts

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: No inline script or style, no eval, nothing from another origin, no framing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def context_query(ns: str | None, agent: str | None) -> str:
    """``?ns=..&agent=..`` for links that keep the namespace and agent being looked at."""
    chosen = {k: v for k, v in (("ns", ns), ("agent", agent)) if v}
    return "?" + urlencode(chosen) if chosen else ""


def when(value: datetime | None) -> str:
    """A timestamp as people read it in a table (UTC, to the minute)."""
    if value is None:
        return "\u2013"  # en dash: "no value" in a table cell
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def signed(value: float | None) -> str:
    """A number that may be negative, with its sign either way (correlations, effectiveness)."""
    return "n/a" if value is None else f"{value:+.2f}"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, percent=percent, pretty_json=pretty_json, duration=duration)
    env.globals.update(
        version=__version__, bar_chart=charts.bar_chart, line_chart=charts.line_chart,
        column_chart=charts.column_chart, mini_bar=charts.mini_bar, Series=charts.Series,
        scopes=KNOWN_SCOPES, memory_types=MEMORY_TYPES, signed=signed,
    )
    return env


def render(template: str, status_code: int = 200, *, cache_control: str = "no-store",
           **context: Any) -> HTMLResponse:
    """A template as an HTML response. Fragments hold a caller's data: ``no-store`` keeps
    them out of the browser's disk cache (a shared computer must not keep them)."""
    html = environment().get_template(template).render(**context)
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control}
    return HTMLResponse(html, status_code=status_code, headers=headers)
