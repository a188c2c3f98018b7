"""The dashboard's data: HTML fragments that htmx swaps into the page shells.

Every fragment authenticates like the REST API (``Authorization: Bearer``, through
``IdentityDep``) and calls the same service methods, so scopes and agent keys are enforced by
the code that enforces them everywhere (SPEC §2); nothing here decides who may see what.
Errors keep the API's status codes and JSON bodies; the page's script shows their ``detail``
where the fragment would have gone, and a 401 sends the browser back to sign-in.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from aegis_memory.index.filters import KNOWN_SCOPES, MEMORY_TYPES
from aegis_memory.schemas import MAX_IDENT_CHARS
from aegis_memory.schemas_progress import FeatureStatus
from aegis_memory.server.dashboard_ui.render import context_query, render
from aegis_memory.server.deps import IdentityDep, ServiceDep
from aegis_memory.service.access import acting_agent
from aegis_memory.service.errors import InvalidInput
from aegis_memory.service.evaluation import WINDOWS

router = APIRouter(prefix="/dashboard", include_in_schema=False)

Ctx = Annotated[str, Query(max_length=MAX_IDENT_CHARS)]

FEATURE_COLUMNS: tuple[FeatureStatus, ...] = (
    "not_started", "in_progress", "blocked", "testing", "complete", "failed")
DEPRECATED_CHOICES = {"": None, "any": None, "no": False, "yes": True}
#: The longest deprecation reason the form sends (a sentence or two, not a document).
MAX_REASON_CHARS = 2_000


def _opt(value: str | None) -> str | None:
    """Form fields send "" for "not chosen"."""
    value = (value or "").strip()
    return value or None


async def _form(request: Request) -> dict[str, str]:
    """The fields of a urlencoded form body (what htmx posts), first value of each."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


@router.get("/api/whoami")
async def whoami(identity: IdentityDep) -> JSONResponse:
    """What the sign-in page checks a key with: its project, and the agent it is bound to."""
    return JSONResponse(
        {"project_id": identity.project_id, "agent_id": identity.bound_agent_id,
         "is_project_key": identity.is_project_key},
        headers={"Cache-Control": "no-store"})


@router.get("/fragments/context")
async def context(identity: IdentityDep, service: ServiceDep, ns: Ctx = "",
                  agent: Ctx = "") -> HTMLResponse:
    """The bar that picks the namespace and (project keys) the agent to look through."""
    acting_agent(identity, _opt(agent))
    facets = await service.dashboard_facets(identity)
    namespaces = list(facets.namespaces)
    if ns and ns not in namespaces:
        namespaces.insert(0, ns)
    agents = list(facets.agents)
    if agent and identity.is_project_key and agent not in agents:
        agents.insert(0, agent)
    return render("fragments/context.html", identity=identity, namespaces=namespaces,
                  agents=agents, ns=ns, agent=agent)


@router.get("/fragments/overview")
async def overview(
    identity: IdentityDep, service: ServiceDep, ns: Ctx = "", agent: Ctx = "",
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> HTMLResponse:
    namespace, acting = _opt(ns), _opt(agent)
    if identity.is_project_key and acting is None:
        stats = await service.dashboard_stats(identity, namespace)
    else:  # what this agent can see, counted by the same rules as its searches
        stats = await service.memory_summary(identity, namespace, acting)
    activity = (await service.dashboard_activity(identity, namespace, days)
                if identity.is_project_key else None)
    kinds: Counter[str] = Counter()
    for bucket in activity.buckets if activity else ():
        kinds.update(bucket.counts)
    return render(
        "fragments/overview.html", stats=stats, activity=activity, days=days,
        namespace=namespace, acting=acting_agent(identity, acting),
        type_rows=_rows(MEMORY_TYPES, stats.by_type),
        scope_rows=_rows(KNOWN_SCOPES, stats.by_scope),
        agent_rows=[(a.agent_id or "(no agent)", a.memories) for a in stats.top_agents],
        activity_points=[(b.date, b.total) for b in activity.buckets] if activity else [],
        event_totals=kinds.most_common(), short_date=lambda day: day[5:])


def _rows(known: tuple[str, ...], counts: dict[str, int]) -> list[tuple[str, int]]:
    """Every well-known category (zero when absent), then any others, with their counts."""
    return [(k, counts.get(k, 0)) for k in known] + sorted(
        (k, n) for k, n in counts.items() if k not in known)


@router.get("/fragments/memories")
async def memories(
    identity: IdentityDep, service: ServiceDep, ns: Ctx = "", agent: Ctx = "",
    q: Annotated[str, Query(max_length=500)] = "", scope: Ctx = "",
    memory_type: Annotated[str, Query(alias="type", max_length=32)] = "",
    owner: Ctx = "", deprecated: Annotated[str, Query(max_length=8)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
) -> HTMLResponse:
    if scope and scope not in KNOWN_SCOPES:
        raise InvalidInput(f"Unknown scope '{scope}': use one of {', '.join(KNOWN_SCOPES)}.",
                           code="invalid_scope")
    if deprecated not in DEPRECATED_CHOICES:
        raise InvalidInput("deprecated is one of: any, yes, no.", code="invalid_filter")
    page = await service.browse_memories(
        identity, namespace=_opt(ns), agent_id=_opt(agent), scope=_opt(scope),
        memory_types=[memory_type] if memory_type else None, owner=_opt(owner),
        deprecated=DEPRECATED_CHOICES[deprecated], search=q, limit=limit, offset=offset)
    return render("fragments/memories.html", page=page, q=q.strip(),
                  query=context_query(ns, agent))


@router.get("/fragments/memories/{memory_id}")
async def memory(memory_id: str, identity: IdentityDep, service: ServiceDep,
                 agent: Ctx = "", ns: Ctx = "") -> HTMLResponse:
    detail = await service.memory_detail(identity, memory_id, _opt(agent))
    return render("fragments/memory.html", d=detail, m=detail.memory, notice=None,
                  query=context_query(ns, agent))


@router.post("/fragments/memories/{memory_id}/delete")
async def delete(memory_id: str, request: Request, identity: IdentityDep,
                 service: ServiceDep) -> HTMLResponse:
    form = await _form(request)
    await service.delete(identity, memory_id, _opt(form.get("agent")))
    return render("fragments/deleted.html", memory_id=memory_id,
                  query=context_query(form.get("ns"), form.get("agent")))


@router.post("/fragments/memories/{memory_id}/deprecate")
async def deprecate(memory_id: str, request: Request, identity: IdentityDep,
                    service: ServiceDep) -> HTMLResponse:
    form = await _form(request)
    agent = _opt(form.get("agent"))
    reason = _opt(form.get("reason"))
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"The reason is longer than {MAX_REASON_CHARS} characters.",
                           code="reason_too_long")
    await service.deprecate(identity, memory_id, agent_id=agent, superseded_by=None,
                            reason=reason)
    detail = await service.memory_detail(identity, memory_id, agent)
    return render("fragments/memory.html", d=detail, m=detail.memory,
                  notice="Deprecated: searches and playbooks no longer return this memory.",
                  query=context_query(form.get("ns"), agent))


@router.get("/fragments/ace/playbook")
async def playbook(identity: IdentityDep, service: ServiceDep, ns: Ctx = "",
                   agent: Ctx = "") -> HTMLResponse:
    """Strategies and reflections by effectiveness: what the votes say works."""
    page = await service.browse_memories(
        identity, namespace=_opt(ns), agent_id=_opt(agent),
        memory_types=["strategy", "reflection"], deprecated=False, order="effectiveness",
        limit=20)
    return render("fragments/playbook.html", page=page, query=context_query(ns, agent))


@router.get("/fragments/ace/reflections")
async def reflections(identity: IdentityDep, service: ServiceDep, ns: Ctx = "",
                      agent: Ctx = "") -> HTMLResponse:
    """Reflections grouped by the error pattern they answer (the newest 200)."""
    page = await service.browse_memories(
        identity, namespace=_opt(ns), agent_id=_opt(agent), memory_types=["reflection"],
        deprecated=False, limit=200)
    groups: dict[str, list] = defaultdict(list)
    for m in page.memories:
        groups[m.error_pattern or ""].append(m)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0] == "", kv[0]))
    return render("fragments/reflections.html", groups=ordered, page=page,
                  pattern_rows=[(p or "(none)", len(items)) for p, items in ordered],
                  query=context_query(ns, agent))


@router.get("/fragments/ace/eval")
async def evaluation(identity: IdentityDep, service: ServiceDep, ns: Ctx = "",
                     agent: Ctx = "") -> HTMLResponse:
    """Evaluation metrics and the vote/outcome correlation for every window, side by side."""
    namespace = _opt(ns)
    metrics = [await service.eval_metrics(identity, w, namespace) for w in WINDOWS]
    correlations = [await service.eval_correlation(identity, w, namespace) for w in WINDOWS]
    return render("fragments/eval.html", windows=list(WINDOWS), metrics=metrics,
                  correlations=correlations)


@router.get("/fragments/progress")
async def progress(identity: IdentityDep, service: ServiceDep, ns: Ctx = "",
                   agent: Ctx = "") -> HTMLResponse:
    """Sessions (of the chosen agent, when one is chosen) and the namespace's feature board.
    Sessions and features live in one namespace: "all namespaces" shows ``default``."""
    namespace = _opt(ns) or "default"
    acting = acting_agent(identity, _opt(agent))
    sessions = (await service.progress.list_sessions(identity, namespace, None, 500)).sessions
    if acting is not None:
        sessions = [s for s in sessions if s.agent_id == acting]
    features = await service.progress.list_features(identity, namespace, None, None)
    board = {status: [f for f in features.features if f.status == status]
             for status in FEATURE_COLUMNS}
    return render("fragments/progress.html", namespace=namespace, acting=acting,
                  sessions=sessions, features=features, board=board,
                  chosen_namespace=_opt(ns))

