"""Core memory endpoints (SPEC §3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from aegis_memory import schemas as s
from aegis_memory.server.deps import IdentityDep, ServiceDep
from aegis_memory.server.fast_json import FastJSONRoute

router = APIRouter(prefix="/memories", tags=["memories"], route_class=FastJSONRoute)

AgentParam = Annotated[
    str | None, Query(max_length=s.MAX_IDENT_CHARS, description="The agent the call acts as.")
]


@router.post("/add", response_model=s.AddResult, summary="Add one memory")
async def add(body: s.AddMemoryRequest, identity: IdentityDep, service: ServiceDep) -> s.AddResult:
    return await service.add(identity, body)


@router.post("/add_batch", response_model=s.AddBatchResponse, summary="Add up to 100 memories")
async def add_batch(
    body: s.AddBatchRequest, identity: IdentityDep, service: ServiceDep
) -> s.AddBatchResponse:
    results = await service.add_batch(identity, body.items)
    return s.AddBatchResponse(results=results, count=len(results))


@router.post("/query", response_model=s.QueryResponse, summary="Semantic search")
async def query(
    body: s.QueryRequest, identity: IdentityDep, service: ServiceDep
) -> s.QueryResponse:
    return await service.query(identity, body)


@router.post(
    "/query_cross_agent", response_model=s.QueryResponse, summary="Search other agents' memories"
)
async def query_cross_agent(
    body: s.CrossAgentQueryRequest, identity: IdentityDep, service: ServiceDep
) -> s.QueryResponse:
    return await service.query_cross_agent(identity, body)


@router.post("/handoff", response_model=s.HandoffBaton, summary="Hand work to another agent")
async def handoff(
    body: s.HandoffRequest, identity: IdentityDep, service: ServiceDep
) -> s.HandoffBaton:
    return await service.handoff(identity, body)


@router.post(
    "/export",
    summary="Export visible memories (streamed JSONL or JSON)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "application/json": {}}}},
)
async def export(
    body: s.ExportRequest, identity: IdentityDep, service: ServiceDep
) -> StreamingResponse:
    rows = service.export(identity, body)
    # Pull the first row now so that access errors become proper HTTP errors, not a cut stream.
    first = await anext(rows, None)

    async def _jsonl() -> AsyncIterator[bytes]:
        if first is not None:
            yield (first.model_dump_json() + "\n").encode()
        async for row in rows:
            yield (row.model_dump_json() + "\n").encode()

    async def _json() -> AsyncIterator[bytes]:
        yield b"["
        if first is not None:
            yield first.model_dump_json().encode()
        async for row in rows:
            yield b"," + row.model_dump_json().encode()
        yield b"]"

    if body.format == "json":
        return StreamingResponse(_json(), media_type="application/json")
    return StreamingResponse(_jsonl(), media_type="application/x-ndjson")


@router.post("/import", response_model=s.ImportResponse, summary="Import exported memories")
async def import_(
    body: s.ImportRequest, identity: IdentityDep, service: ServiceDep
) -> s.ImportResponse:
    return await service.import_(identity, body)


@router.post(
    "/ace/vote/{memory_id}", response_model=s.VoteResult, tags=["ace"],
    summary="Vote a memory helpful or harmful",
)
async def vote(
    memory_id: str, body: s.VoteRequest, identity: IdentityDep, service: ServiceDep
) -> s.VoteResult:
    return await service.vote(identity, memory_id, body)


@router.get("/{memory_id}", response_model=s.Memory, summary="Get one memory")
async def get(
    memory_id: str, identity: IdentityDep, service: ServiceDep, agent_id: AgentParam = None
) -> s.Memory:
    return await service.get(identity, memory_id, agent_id)


@router.patch("/{memory_id}", response_model=s.Memory, summary="Update a memory")
async def update(
    memory_id: str, body: s.UpdateMemoryRequest, identity: IdentityDep, service: ServiceDep
) -> s.Memory:
    return await service.update(identity, memory_id, body)


@router.delete("/{memory_id}", response_model=s.DeleteResponse, summary="Delete a memory")
async def delete(
    memory_id: str, identity: IdentityDep, service: ServiceDep, agent_id: AgentParam = None
) -> s.DeleteResponse:
    await service.delete(identity, memory_id, agent_id)
    return s.DeleteResponse(id=memory_id)




@router.post("/ace/playbook", response_model=s.PlaybookResponse, tags=["ace"],
             summary="Effective strategies and reflections for a task")
async def playbook(
    body: s.PlaybookRequest, identity: IdentityDep, service: ServiceDep
) -> s.PlaybookResponse:
    return await service.playbook(identity, body)


@router.post("/ace/reflection", response_model=s.AddResult, tags=["ace"],
             summary="Store a lesson learned")
async def reflection(
    body: s.ReflectionRequest, identity: IdentityDep, service: ServiceDep
) -> s.AddResult:
    return await service.reflection(identity, body)


@router.post("/ace/delta", response_model=s.DeltaResult, tags=["ace"],
             summary="Apply add/update/deprecate operations (atomic by default)")
async def delta(body: s.DeltaRequest, identity: IdentityDep, service: ServiceDep) -> s.DeltaResult:
    return await service.delta(identity, body)


WindowParam = Annotated[s.EvalWindow, Query(description="24h, 7d, 30d or global.")]
NamespaceParam = Annotated[
    str | None, Query(max_length=s.MAX_IDENT_CHARS, description="One namespace, or all.")
]


@router.get("/ace/eval/metrics", response_model=s.EvalMetrics, tags=["ace"],
            summary="Success rate, retrieval precision, pollution, MTTR")
async def eval_metrics(
    identity: IdentityDep, service: ServiceDep, window: WindowParam = "global",
    namespace: NamespaceParam = None,
) -> s.EvalMetrics:
    return await service.eval_metrics(identity, window, namespace)


@router.get("/ace/eval/correlation", response_model=s.EvalCorrelation, tags=["ace"],
            summary="Do helpful votes go with passing features?")
async def eval_correlation(
    identity: IdentityDep, service: ServiceDep, window: WindowParam = "global",
    namespace: NamespaceParam = None,
) -> s.EvalCorrelation:
    return await service.eval_correlation(identity, window, namespace)
