"""`AegisStore` as the long-term memory of a LangChain 1.x agent (`create_agent(..., store=...)`).

The store contract itself is covered in ``test_langgraph_store.py``; this file proves the
end-to-end path a user actually takes: an agent built by ``langchain.agents.create_agent`` with
an `AegisStore`, whose tools reach the store the two documented ways (``ToolRuntime.store`` and
``langgraph.config.get_store()``). A scripted fake chat model (no LLM keys) first calls a tool
that saves a preference, then one that recalls it by semantic search, then answers. The tests
check that the item really lands on the Aegis server (read back with a plain `AegisClient`, not
through the store) and that the recall tool's answer, which comes from Aegis' semantic search,
is in the agent's final messages. Sync (``invoke``) and async (``ainvoke``) runs both go
against the real session ``sqlite_server``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.config import get_store

from aegis_memory.client import AegisClient
from aegis_memory.integrations.langgraph import AegisStore
from tests.conftest import ServerProcess

USER = "ada"
PREFERENCE = "Ada prefers dark roast coffee brewed in a French press."
# Other things the store knows, so that recall must actually rank (and filter by namespace).
DISTRACTORS = {
    ("preferences", USER): ["Ada's favourite programming language is Haskell.",
                            "Ada goes hiking in the Alps every summer."],
    ("preferences", "grace"): ["Grace prefers green tea with jasmine."],
}


@dataclass
class UserContext:
    """What the agent knows about the caller; tools use it to pick the store namespace."""

    user_id: str


class ToolCallingFake(GenericFakeChatModel):
    """`GenericFakeChatModel` that accepts `bind_tools`, which `create_agent` calls on its model
    (a real model would receive the tool schemas; the script already names the tools)."""

    bound: list[str] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        self.bound = [t.name for t in tools]
        return self


def scripted_model() -> ToolCallingFake:
    """The model's three turns: save the preference, recall it, answer from the recall."""
    return ToolCallingFake(messages=iter([
        AIMessage("", tool_calls=[{"name": "save_preference", "id": "call-save",
                                   "args": {"preference": PREFERENCE}}]),
        AIMessage("", tool_calls=[{"name": "recall", "id": "call-recall",
                                   "args": {"query": "How does Ada like her coffee?"}}]),
        AIMessage("You like dark roast coffee from a French press."),
    ]))


def namespace_of(runtime: ToolRuntime[UserContext]) -> tuple[str, ...]:
    return ("preferences", runtime.context.user_id)


# Sync tools: the save tool gets the store through `ToolRuntime`, the recall tool through
# `get_store()`, so both ways a LangChain tool can reach the agent's store are exercised.


@tool
def save_preference(preference: str, runtime: ToolRuntime[UserContext]) -> str:
    """Remember a preference of the current user."""
    assert runtime.store is not None
    key = uuid.uuid4().hex
    runtime.store.put(namespace_of(runtime), key, {"text": preference})
    return f"Saved preference {key}."


@tool
def recall(query: str, runtime: ToolRuntime[UserContext]) -> str:
    """Look up the current user's preferences most relevant to the query."""
    hits = get_store().search(namespace_of(runtime), query=query, limit=1)
    return "\n".join(hit.value["text"] for hit in hits) or "Nothing found."


# Async tools: the same, through the store's async methods.


@tool("save_preference")
async def asave_preference(preference: str, runtime: ToolRuntime[UserContext]) -> str:
    """Remember a preference of the current user."""
    assert runtime.store is not None
    key = uuid.uuid4().hex
    await runtime.store.aput(namespace_of(runtime), key, {"text": preference})
    return f"Saved preference {key}."


@tool("recall")
async def arecall(query: str, runtime: ToolRuntime[UserContext]) -> str:
    """Look up the current user's preferences most relevant to the query."""
    assert runtime.store is not None
    hits = await runtime.store.asearch(namespace_of(runtime), query=query, limit=1)
    return "\n".join(hit.value["text"] for hit in hits) or "Nothing found."


@pytest.fixture
def client(sqlite_server: ServerProcess) -> Iterator[AegisClient]:
    with AegisClient(api_key="dev-key", base_url=sqlite_server.base_url) as c:
        yield c


@pytest.fixture
def store(client: AegisClient, ns: str) -> Iterator[AegisStore]:
    """An `AegisStore` in this test's Aegis namespace, seeded with the distractors."""
    with AegisStore(client, namespace=ns) as aegis:
        for namespace, texts in DISTRACTORS.items():
            for text in texts:
                aegis.put(namespace, uuid.uuid4().hex, {"text": text})
        yield aegis


def build_agent(store: AegisStore, tools: list[BaseTool]) -> tuple[Any, ToolCallingFake]:
    model = scripted_model()
    agent = create_agent(model, tools=tools, store=store, context_schema=UserContext)
    return agent, model


def check_run(messages: list[BaseMessage], client: AegisClient, store: AegisStore,
              ns: str) -> None:
    """What every run must show: the item is on the server, recall found it, the agent said so."""
    # 1. The saved preference is a memory on the Aegis server, in the store's namespace,
    #    carrying the LangGraph item (namespace tuple and value) in its metadata.
    found = client.query("dark roast coffee French press", namespace=ns, top_k=10)
    saved = [m for m in found if m.content and "French press" in m.content]
    assert len(saved) == 1, [m.content for m in found]
    meta = saved[0].metadata["langgraph"]
    assert meta["namespace"] == ["preferences", USER]
    assert meta["value"] == {"text": PREFERENCE}
    assert saved[0].namespace == ns
    # ...and the store itself reads it back under the same key.
    item = store.get(("preferences", USER), meta["key"])
    assert item is not None and item.value == {"text": PREFERENCE}

    # 2. The agent's transcript: save, recall (answered by Aegis' semantic search), answer.
    tool_messages = {m.name: m for m in messages if isinstance(m, ToolMessage)}
    assert set(tool_messages) == {"save_preference", "recall"}
    assert meta["key"] in tool_messages["save_preference"].content
    assert tool_messages["recall"].content == PREFERENCE  # top hit of three, Grace's excluded
    assert tool_messages["recall"].status == "success"
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert "French press" in final.content


def test_create_agent_with_aegis_store(client: AegisClient, store: AegisStore, ns: str) -> None:
    agent, model = build_agent(store, [save_preference, recall])
    result = agent.invoke(
        {"messages": [HumanMessage("I like dark roast from a French press. Remember that.")]},
        context=UserContext(user_id=USER),
    )
    assert model.bound == ["save_preference", "recall"]
    check_run(result["messages"], client, store, ns)


async def test_create_agent_with_aegis_store_async(client: AegisClient, store: AegisStore,
                                                   ns: str) -> None:
    agent, model = build_agent(store, [asave_preference, arecall])
    result = await agent.ainvoke(
        {"messages": [HumanMessage("I like dark roast from a French press. Remember that.")]},
        context=UserContext(user_id=USER),
    )
    assert model.bound == ["save_preference", "recall"]
    check_run(result["messages"], client, store, ns)


def test_memory_outlives_the_agent(client: AegisClient, store: AegisStore, ns: str) -> None:
    """Long-term memory: a second agent (new store object, new thread) recalls what the first
    one saved, because it lives in Aegis and not in the agent or the store instance."""
    first, _ = build_agent(store, [save_preference, recall])
    first.invoke({"messages": [HumanMessage("Remember my coffee.")]},
                 context=UserContext(user_id=USER))

    with AegisStore(client, namespace=ns) as fresh:
        model = ToolCallingFake(messages=iter([
            AIMessage("", tool_calls=[{"name": "recall", "id": "call-1",
                                       "args": {"query": "coffee"}}]),
            AIMessage("Dark roast, French press."),
        ]))
        second = create_agent(model, tools=[recall], store=fresh, context_schema=UserContext)
        result = second.invoke({"messages": [HumanMessage("How do I take my coffee?")]},
                               context=UserContext(user_id=USER))
    recalled = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.content for m in recalled] == [PREFERENCE]
