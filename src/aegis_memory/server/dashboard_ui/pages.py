"""The dashboard's page shells and static files: served without a key, and holding no data.

A shell is the frame of a page (navigation, headings, empty regions); htmx fills each region
from ``/dashboard/fragments/...`` with the key the browser keeps in session storage. So a
shell can be cached, bookmarked and shared, and the key never has to travel in a URL or a
cookie. The namespace and agent being looked at are in the query string: they are not
secrets, and a link then shows the same view to whoever opens it with their own key.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from aegis_memory.schemas import MAX_IDENT_CHARS
from aegis_memory.server.dashboard_ui.render import (
    SECURITY_HEADERS,
    STATIC,
    context_query,
    render,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)

ContextParam = Annotated[str, Query(max_length=MAX_IDENT_CHARS)]

#: The files under ``static/`` the server hands out, and their types: a fixed list, so no
#: request path ever reaches the file system.
STATIC_FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "htmx.min.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

#: Public memory ids are hex UUIDs; imports may bring other simple ids.
MEMORY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

NAV = (
    ("overview", "Overview", "/dashboard"),
    ("memories", "Memories", "/dashboard/memories"),
    ("ace", "ACE", "/dashboard/ace"),
    ("progress", "Sessions & features", "/dashboard/progress"),
)


def _shell(template: str, page: str, title: str, ns: str, agent: str,
           status_code: int = 200, **extra: object) -> HTMLResponse:
    return render(
        template, status_code, cache_control="no-cache", page=page, title=title, nav=NAV,
        ns=ns, agent=agent, query=context_query(ns, agent), **extra)


@router.get("")
async def overview_page(ns: ContextParam = "", agent: ContextParam = "") -> HTMLResponse:
    return _shell("overview.html", "overview", "Overview", ns, agent)


@router.get("/")
async def slash() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=308)


@router.get("/signin")
async def signin_page() -> HTMLResponse:
    return render("signin.html", cache_control="no-cache", title="Sign in", error=None)


@router.post("/signin")
async def signin_without_script() -> HTMLResponse:
    """The sign-in form posts here only when its script did not run. The body is not read:
    the key is checked by the browser and kept in its tab, never sent to a form handler."""
    return render(
        "signin.html", 400, title="Sign in",
        error="Signing in needs JavaScript: your browser checks the key with the server and "
              "keeps it in this tab only. Enable JavaScript for this site and try again.")


@router.get("/memories")
async def memories_page(ns: ContextParam = "", agent: ContextParam = "") -> HTMLResponse:
    return _shell("memories.html", "memories", "Memories", ns, agent)


@router.get("/memories/{memory_id}")
async def memory_page(memory_id: str, ns: ContextParam = "",
                      agent: ContextParam = "") -> HTMLResponse:
    if not MEMORY_ID.match(memory_id):
        return _shell("memory.html", "memories", "Memory", ns, agent, status_code=404,
                      memory_id=None)
    return _shell("memory.html", "memories", "Memory", ns, agent, memory_id=memory_id)


@router.get("/ace")
async def ace_page(ns: ContextParam = "", agent: ContextParam = "") -> HTMLResponse:
    return _shell("ace.html", "ace", "ACE", ns, agent)


@router.get("/progress")
async def progress_page(ns: ContextParam = "", agent: ContextParam = "") -> HTMLResponse:
    return _shell("progress.html", "progress", "Sessions & features", ns, agent)


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    # no-cache: revalidated (ETag) on every load, so an upgrade never mixes old and new files.
    return FileResponse(STATIC / name, media_type=media_type,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
