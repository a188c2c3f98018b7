"""The web dashboard at ``/dashboard``: Jinja2 page shells, htmx fragments, inline SVG charts.

``router`` carries all of it (shells and static files without a key, fragments with one),
so the app includes the dashboard with one line. Templates and static files ship inside the
package (and so in the wheel); nothing is fetched from another site at run time.
"""

from fastapi import APIRouter

from aegis_memory.server.dashboard_ui import fragments, pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(fragments.router)

__all__ = ["router"]
