"""The LangChain adapters against a real Aegis server (the session ``sqlite_server``).

LangChain's own standard suites (``RetrieversIntegrationTests``, ``ToolsUnitTests``,
``ToolsIntegrationTests``) check that the retriever and the tools behave as every LangChain
component must; the tests after them check what is specific to Aegis: scope enforcement, the
Document metadata, sync/async paths, a chain fed by the retriever, a tool-calling loop driven by a
fake chat model, and the `AegisMemory` compatibility class. Every test seeds its own namespace.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
    ParrotFakeChatModel,
)
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    ToolsIntegrationTests,
)
from langchain_tests.unit_tests import ToolsUnitTests

from aegis_memory.client import AegisClient, AsyncAegisClient
from aegis_memory.integrations.langchain import (
    AegisAddMemoryTool,
    AegisMemory,
    AegisRetriever,
    AegisSearchMemoryTool,
    aegis_memory_tools,
    format_documents,
)

AGENT_A = "agent-a"
AGENT_B = "agent-b"
USER = "user-1"

# What agent A knows about the user: enough matches for k=3 (the standard suite asks for 3).
FACTS_A = [
    "The user prefers dark roast coffee in the morning.",
    "The user is allergic to peanuts.",
    "The user lives in Lisbon and works as a data engineer.",
    "The user likes hiking in the mountains on weekends.",
    "The user prefers concise answers with code examples.",
]
SECRET_A = "Agent A's private note: the launch code is tangerine-42."
GLOBAL_FACT = "Company policy: all deployments happen on Tuesdays."


def seed(client: AegisClient, ns: str) -> None:
    """Agent A's private facts and secret, and one global memory, in namespace ``ns``."""
    client.add_batch(
        [{"content": fact, "agent_id": AGENT_A, "user_id": USER, "namespace": ns,
          "metadata": {"topic": "profile", "id": "user-supplied-id"}} for fact in FACTS_A]
        + [{"content": SECRET_A, "agent_id": AGENT_A, "user_id": USER, "namespace": ns,
            "scope": "agent-private"},
           {"content": GLOBAL_FACT, "agent_id": AGENT_A, "namespace": ns, "scope": "global"}]
    )


@pytest.fixture
def client(sqlite_server: Any) -> Iterator[AegisClient]:
    with AegisClient(
        api_key=sqlite_server.api_key, base_url=sqlite_server.base_url, timeout=60
    ) as aegis:
        yield aegis


@pytest_asyncio.fixture(loop_scope="function")
async def async_client(sqlite_server: Any) -> AsyncIterator[AsyncAegisClient]:
    async with AsyncAegisClient(
        api_key=sqlite_server.api_key, base_url=sqlite_server.base_url, timeout=60
    ) as aegis:
        yield aegis


@pytest.fixture
def seeded(client: AegisClient, ns: str) -> str:
    seed(client, ns)
    return ns


class _ServerBacked:
    """Gives a standard-suite class a client and a freshly seeded namespace for each test.

    The standard suites read constructor parameters from properties, which cannot take
    fixtures; this autouse fixture runs first and stores what the properties need.
    """

    aegis: AegisClient
    namespace: str

    @pytest.fixture(autouse=True)
    def _aegis(self, client: AegisClient, ns: str) -> None:
        seed(client, ns)
        self.aegis = client
        self.namespace = ns


# ----------------------------------------------------------------------------- standard suites


class TestAegisRetrieverStandard(_ServerBacked, RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[AegisRetriever]:
        return AegisRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"client": self.aegis, "agent_id": AGENT_A, "namespace": self.namespace, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "What does the user like?"


class _AddToolParams(_ServerBacked):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return AegisAddMemoryTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"client": self.aegis, "agent_id": AGENT_A, "namespace": self.namespace}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"content": "The user's cat is called Miso.", "memory_type": "standard"}


class _SearchToolParams(_ServerBacked):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return AegisSearchMemoryTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"client": self.aegis, "agent_id": AGENT_A, "namespace": self.namespace}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "coffee preferences", "top_k": 2}


class TestAddMemoryToolUnit(_AddToolParams, ToolsUnitTests):
    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # Without a client the tool builds one from the SDK's environment variables.
        return (
            {"AEGIS_BASE_URL": self.aegis.base_url, "AEGIS_API_KEY": "dev-key"},
            {"agent_id": AGENT_A},
            {"agent_id": AGENT_A, "namespace": "default"},
        )


class TestAddMemoryToolIntegration(_AddToolParams, ToolsIntegrationTests):
    pass


class TestSearchMemoryToolUnit(_SearchToolParams, ToolsUnitTests):
    pass


class TestSearchMemoryToolIntegration(_SearchToolParams, ToolsIntegrationTests):
    pass


# ----------------------------------------------------------------------------- retriever


def test_documents_carry_memory_fields_and_metadata(client: AegisClient, seeded: str) -> None:
    retriever = AegisRetriever(client=client, agent_id=AGENT_A, namespace=seeded, k=10)
    docs = retriever.invoke("coffee in the morning")
    assert docs[0].page_content == FACTS_A[0]
    meta = docs[0].metadata
    stored = client.get(meta["id"], agent_id=AGENT_A)
    assert docs[0].id == meta["id"] == stored.id  # Aegis's id wins over a user "id" key
    assert meta["topic"] == "profile"  # the memory's own metadata is kept
    assert meta["agent_id"] == AGENT_A and meta["user_id"] == USER
    assert meta["scope"] == "agent-private" and meta["memory_type"] == "standard"
    assert meta["namespace"] == seeded
    assert isinstance(meta["score"], float)
    assert meta["created_at"] == stored.created_at.isoformat()
    scores = [doc.metadata["score"] for doc in docs]
    assert scores == sorted(scores, reverse=True)


def test_scope_enforced_between_agents(client: AegisClient, seeded: str) -> None:
    """Agent B sees agent A's global memory but never A's private ones, whatever it asks."""
    retriever_b = AegisRetriever(client=client, agent_id=AGENT_B, namespace=seeded, k=50)
    seen_b = [doc.page_content for doc in retriever_b.invoke("launch code tangerine")]
    assert seen_b == [GLOBAL_FACT]
    retriever_a = AegisRetriever(client=client, agent_id=AGENT_A, namespace=seeded, k=50)
    seen_a = {doc.page_content for doc in retriever_a.invoke("launch code tangerine")}
    assert seen_a == {*FACTS_A, SECRET_A, GLOBAL_FACT}
    assert retriever_a.invoke("launch code tangerine", k=1)[0].page_content == SECRET_A


def test_filters_and_per_call_overrides(client: AegisClient, seeded: str) -> None:
    client.add("Retry flaky uploads with exponential backoff.", agent_id=AGENT_A,
               namespace=seeded, memory_type="strategy")
    base = {"client": client, "agent_id": AGENT_A, "namespace": seeded}
    only_strategy = AegisRetriever(**base, memory_types=["strategy"], top_k=10)
    assert [d.metadata["memory_type"] for d in only_strategy.invoke("uploads")] == ["strategy"]
    only_global = AegisRetriever(**base, scope="global")
    assert [d.page_content for d in only_global.invoke("deployments")] == [GLOBAL_FACT]
    about_user = AegisRetriever(**base, user_id=USER, k=50)
    assert len(about_user.invoke("user")) == len(FACTS_A) + 1
    retriever = AegisRetriever(**base)
    assert len(retriever.invoke("user", top_k=2)) == 2
    assert len(retriever.invoke("user", k=5, memory_types=["strategy"])) == 1
    assert retriever.invoke("   ") == []


async def test_async_retrieval_with_and_without_async_client(
    client: AegisClient, async_client: AsyncAegisClient, seeded: str
) -> None:
    with_async = AegisRetriever(
        client=client, async_client=async_client, agent_id=AGENT_B, namespace=seeded, k=10
    )
    docs = await with_async.ainvoke("anything about deployments?")
    assert [doc.page_content for doc in docs] == [GLOBAL_FACT]
    sync_only = AegisRetriever(client=client, agent_id=AGENT_A, namespace=seeded)
    docs = await sync_only.ainvoke("peanuts", k=2)
    assert len(docs) == 2 and docs[0].page_content == FACTS_A[1]
    batch = await sync_only.abatch(["coffee", "hiking"])
    assert [b[0].page_content for b in batch] == [FACTS_A[0], FACTS_A[3]]


def test_chain_feeds_retrieved_context_to_model(client: AegisClient, seeded: str) -> None:
    """retriever | format_documents in a prompt: the model gets the memories as context."""
    retriever = AegisRetriever(client=client, agent_id=AGENT_A, namespace=seeded, k=2)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Known about the user:\n{context}"), ("human", "{question}")]
    )
    seen: list[list[BaseMessage]] = []

    def capture(messages: Any) -> Any:
        seen.append(messages.to_messages())
        return messages

    model = FakeListChatModel(responses=["Avoid the peanut sauce."])
    chain = (
        {"context": retriever | format_documents, "question": RunnablePassthrough()}
        | prompt
        | capture
        | model
        | StrOutputParser()
    )
    assert chain.invoke("Is the satay safe for me? I have a peanut allergy.") == (
        "Avoid the peanut sauce."
    )
    system = seen[0][0].text
    assert "- The user is allergic to peanuts." in system
    # ParrotFakeChatModel echoes its last input: the context really reaches the model.
    parrot = ChatPromptTemplate.from_messages([("human", "{context}")]) | ParrotFakeChatModel()
    echoed = ({"context": retriever | format_documents} | parrot).invoke("peanut allergy")
    assert "allergic to peanuts" in echoed.text


# ----------------------------------------------------------------------------- tools


def test_tools_invoke_with_args_and_tool_call(client: AegisClient, ns: str) -> None:
    save, search = aegis_memory_tools(client, agent_id=AGENT_A, user_id=USER, namespace=ns)
    assert [save.name, search.name] == ["save_memory", "search_memory"]
    # The model only sees content/memory_type and query/top_k/memory_types, not the identity.
    assert set(save.tool_call_schema.model_json_schema()["properties"]) == {
        "content", "memory_type"}
    assert set(search.tool_call_schema.model_json_schema()["properties"]) == {
        "query", "top_k", "memory_types"}

    answer = save.invoke({"content": "The user's favourite editor is Helix."})
    assert answer.startswith("Saved memory ") and "agent-private" in answer
    again = save.invoke({"content": "the user's favourite editor is helix."})
    assert again.startswith("Already in memory")

    call = ToolCall(name="save_memory", id="call-1", type="tool_call",
                    args={"content": "Use ripgrep for fast code search.",
                          "memory_type": "strategy"})
    message = save.invoke(call)
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call-1"
    assert message.status == "success" and "Saved memory" in message.text

    text = search.invoke({"query": "favourite editor", "top_k": 1})
    assert text.startswith("1. The user's favourite editor is Helix.")
    result = search.invoke(ToolCall(name="search_memory", id="call-2", type="tool_call",
                                    args={"query": "code search",
                                          "memory_types": ["strategy"]}))
    assert isinstance(result, ToolMessage) and "ripgrep" in result.text
    docs = result.artifact
    assert [d.metadata["memory_type"] for d in docs] == ["strategy"]
    assert all(isinstance(d, Document) and d.metadata["user_id"] == USER for d in docs)

    stored = client.query("editor", agent_id=AGENT_A, namespace=ns, top_k=10)
    assert {m.content for m in stored} == {"The user's favourite editor is Helix.",
                                           "Use ripgrep for fast code search."}
    assert all(m.user_id == USER and m.scope == "agent-private" for m in stored)


def test_tool_scope_is_the_developers_choice(client: AegisClient, seeded: str) -> None:
    shared = AegisAddMemoryTool(client=client, agent_id=AGENT_A, namespace=seeded,
                                shared_with_agents=[AGENT_B], memory_metadata={"via": "tool"})
    assert "agent-shared" in shared.invoke({"content": "Staging DB password rotates Fridays."})
    search_b = AegisSearchMemoryTool(client=client, agent_id=AGENT_B, namespace=seeded, k=50)
    _, docs = search_b._run("password launch code")  # content and artifact
    contents = {d.page_content for d in docs}
    assert contents == {"Staging DB password rotates Fridays.", GLOBAL_FACT}
    assert SECRET_A not in search_b.invoke({"query": "launch code", "top_k": 50})
    shared_doc = next(d for d in docs if d.metadata["scope"] == "agent-shared")
    assert shared_doc.metadata["via"] == "tool"


def test_invalid_model_input_is_reported_to_the_model(client: AegisClient, ns: str) -> None:
    save = AegisAddMemoryTool(client=client, agent_id=AGENT_A, namespace=ns,
                              handle_validation_error=True)
    message = save.invoke(ToolCall(name="save_memory", id="c", type="tool_call",
                                   args={"content": "", "memory_type": "standard"}))
    assert message.status == "error"
    search = AegisSearchMemoryTool(client=client, agent_id=AGENT_A, namespace=ns)
    assert search.invoke({"query": "nothing stored here"}) == "No relevant memories found."


async def test_tools_async_with_async_client(
    client: AegisClient, async_client: AsyncAegisClient, ns: str
) -> None:
    save, search = aegis_memory_tools(client, agent_id=AGENT_B, namespace=ns,
                                      async_client=async_client)
    assert "Saved memory" in await save.ainvoke({"content": "B ships on Mondays."})
    message = await search.ainvoke(ToolCall(name="search_memory", id="x", type="tool_call",
                                            args={"query": "shipping day"}))
    assert "B ships on Mondays." in message.text
    assert message.artifact[0].metadata["agent_id"] == AGENT_B


class _ToolCallingFake(GenericFakeChatModel):
    """GenericFakeChatModel that accepts ``bind_tools`` (the real model would get the schemas)."""

    bound: list[str] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        self.bound = [tool.name for tool in tools]
        return self


def test_agent_loop_saves_then_recalls(client: AegisClient, ns: str) -> None:
    """The tool-calling loop an agent runs, with a scripted model: save, then search, answer."""
    tools = {tool.name: tool for tool in aegis_memory_tools(client, agent_id=AGENT_A,
                                                            namespace=ns)}
    model = _ToolCallingFake(messages=iter([
        AIMessage(content="", tool_calls=[ToolCall(
            name="save_memory", id="t1", type="tool_call",
            args={"content": "The user's name is Ada."})]),
        AIMessage(content="", tool_calls=[ToolCall(
            name="search_memory", id="t2", type="tool_call", args={"query": "user's name"})]),
        AIMessage(content="Your name is Ada."),
    ])).bind_tools(list(tools.values()))
    assert model.bound == ["save_memory", "search_memory"]

    messages: list[BaseMessage] = [HumanMessage("My name is Ada. What is my name?")]
    while True:
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        messages.extend(tools[call["name"]].invoke(call) for call in reply.tool_calls)
    assert messages[-1].text == "Your name is Ada."
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in tool_messages] == ["t1", "t2"]
    assert "The user's name is Ada." in tool_messages[1].text


# ----------------------------------------------------------------------------- AegisMemory


def test_aegis_memory_save_and_load(sqlite_server: Any, ns: str) -> None:
    """The old load/save pair around a modern chain; turns persist across memory objects."""
    with AegisMemory(agent_id=AGENT_A, namespace=ns, api_key="dev-key",
                     base_url=sqlite_server.base_url) as memory:
        assert memory.memory_variables == ["history"]
        assert memory.load_memory_variables({"input": "hi"}) == {"history": ""}
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Conversation memory:\n{history}"), ("human", "{input}")])
        chain = prompt | FakeListChatModel(responses=["Nice to meet you, Ada!"])
        inputs = {"input": "Hi, I'm Ada and I love sailing."}
        reply = chain.invoke({**inputs, **memory.load_memory_variables(inputs)})
        memory_id = memory.save_context(inputs, reply)  # an AIMessage is accepted as is
        assert memory_id
        assert memory.save_context({"input": " "}, {"output": ""}) is None

    with AegisMemory(agent_id=AGENT_A, namespace=ns, api_key="dev-key",
                     base_url=sqlite_server.base_url, k=3) as later:
        history = later.load_memory_variables({"question": "What hobby do I have?"})["history"]
        assert history == (
            "- User: Hi, I'm Ada and I love sailing.\nAssistant: Nice to meet you, Ada!")
        assert later.retriever.invoke("sailing")[0].metadata["kind"] == "conversation_turn"
        assert [tool.name for tool in later.tools] == ["save_memory", "search_memory"]
    with AegisMemory(agent_id=AGENT_B, namespace=ns, api_key="dev-key",
                     base_url=sqlite_server.base_url) as other_agent:
        assert other_agent.load_memory_variables("sailing") == {"history": ""}


def test_aegis_memory_key_selection(client: AegisClient, ns: str) -> None:
    memory = AegisMemory(agent_id=AGENT_A, client=client, namespace=ns, input_key="q",
                         output_key="a", memory_key="ctx")
    memory.save_context({"q": "Where do I live?", "extra": 1}, {"a": "Lisbon.", "meta": 2})
    assert "Lisbon" in memory.load_memory_variables({"q": "home", "other": "x"})["ctx"]
    memory.close()  # a client passed in stays open
    assert client.health()
    ambiguous = AegisMemory(agent_id=AGENT_A, client=client, namespace=ns)
    with pytest.raises(ValueError, match="input_key"):
        ambiguous.load_memory_variables({"a": "1", "b": "2"})


async def test_aegis_memory_async(
    client: AegisClient, async_client: AsyncAegisClient, ns: str
) -> None:
    memory = AegisMemory(agent_id=AGENT_A, client=client, async_client=async_client,
                         user_id=USER, namespace=ns)
    assert await memory.asave_context("I drink oolong tea.", "Noted.")
    loaded = await memory.aload_memory_variables({"input": "tea"})
    assert loaded == {"history": "- User: I drink oolong tea.\nAssistant: Noted."}
    sync_only = AegisMemory(agent_id=AGENT_A, client=client, user_id=USER, namespace=ns)
    assert await sync_only.asave_context({"input": "And green tea."}, {"output": "Got it."})
    assert len((await sync_only.aload_memory_variables("tea"))["history"].splitlines()) == 4


def test_tools_in_a_langgraph_agent_graph(client: AegisClient, ns: str) -> None:
    """The graph ``create_agent`` builds (model node ⇄ ToolNode), with a scripted model."""
    pytest.importorskip("langgraph")
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    tools = aegis_memory_tools(client, agent_id=AGENT_A, user_id=USER, namespace=ns)
    model = _ToolCallingFake(messages=iter([
        AIMessage(content="", tool_calls=[ToolCall(
            name="save_memory", id="g1", type="tool_call",
            args={"content": "The user is vegetarian."})]),
        AIMessage(content="", tool_calls=[ToolCall(
            name="search_memory", id="g2", type="tool_call",
            args={"query": "dietary restrictions", "top_k": 1})]),
        AIMessage(content="I'll suggest vegetarian restaurants."),
    ])).bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    result = graph.compile().invoke({"messages": [HumanMessage("I'm vegetarian. Dinner ideas?")]})

    tool_messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.name for m in tool_messages] == ["save_memory", "search_memory"]
    assert tool_messages[1].text.startswith("1. The user is vegetarian.")
    assert tool_messages[1].artifact[0].metadata["user_id"] == USER
    assert result["messages"][-1].text == "I'll suggest vegetarian restaurants."


def test_missing_langchain_names_the_extra() -> None:
    """Without LangChain the import fails with the pip command; the package itself still loads."""
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "import aegis_memory.integrations\n"
        "try:\n    import aegis_memory.integrations.langchain\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'aegis-memory[langchain]'" in out.stdout, out.stderr
