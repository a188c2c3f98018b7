"""`AegisCrewMemory` against a real ``aegis serve`` (and local mode), with real CrewAI.

Runs in its own environment (``scripts/test-crewai.sh``): CrewAI pins ``mcp<2``. No LLM key:
where a crew has to run, its agents use `ScriptedLLM`, a CrewAI ``BaseLLM`` answering from a
script and recording every prompt, so the test can check what memory put into them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.pop("OPENAI_API_KEY", None)

# Submodule imports: ``tests/crewai`` makes ruff's isort take a bare ``crewai`` for first-party.
from crewai.agent import Agent
from crewai.crew import Crew
from crewai.llms.base_llm import BaseLLM
from crewai.memory.unified_memory import Memory
from crewai.task import Task

from aegis_memory import AegisClient
from aegis_memory.integrations.crewai import AegisCrewMemory, crewai_metadata

# CrewAI's own deprecation notices (function_calling_llm, ...) are not ours to act on.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:crewai")


class ScriptedLLM(BaseLLM):
    """A CrewAI LLM with canned answers (in order; the last one repeats) and a call log."""

    answers: list[str]
    prompts: list[str] = []

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        text = messages if isinstance(messages, str) else "\n".join(
            str(m.get("content", "")) for m in messages
        )
        self.prompts.append(text)
        answer = self.answers[min(len(self.prompts), len(self.answers)) - 1]
        if answer.startswith("Thought:"):  # a scripted tool call, passed as written
            return answer
        return f"Thought: I now know the final answer\nFinal Answer: {answer}"

    def supports_function_calling(self) -> bool:
        return False


@pytest.fixture
def client(sqlite_server: Any) -> Iterator[AegisClient]:
    with AegisClient(api_key="dev-key", base_url=sqlite_server.base_url) as c:
        yield c


@pytest.fixture
def memory(client: AegisClient, ns: str) -> AegisCrewMemory:
    return AegisCrewMemory(client, namespace=ns, agent_ids={"Researcher": "researcher"})


# ----------------------------------------------------------------------------- the class


def test_is_crewai_memory_and_needs_no_openai(memory: AegisCrewMemory) -> None:
    assert isinstance(memory, Memory)
    assert memory.memory_kind == "memory"
    assert "OPENAI_API_KEY" not in os.environ
    # Serialisable like CrewAI's own memory (crews checkpoint to JSON); no client, no secret.
    dumped = memory.model_dump(mode="json")
    assert dumped["namespace"] == memory.namespace and dumped["storage"] == "aegis"
    assert "client" not in dumped and "api_key" not in dumped


def test_remember_stores_text_with_owner_scope_and_crewai_metadata(
    memory: AegisCrewMemory, client: AegisClient, ns: str
) -> None:
    record = memory.remember(
        "The launch date of Project Falcon is March 3.",
        categories=["project"],
        metadata={"ticket": "PF-1"},
        importance=0.9,
        agent_role="Researcher",
    )
    assert record is not None
    stored = client.get(record.id)
    assert stored.content == "The launch date of Project Falcon is March 3."
    assert stored.namespace == ns
    assert stored.agent_id == "researcher"  # role mapped to the Aegis agent id
    assert stored.scope == "global"  # crew memory is shared by the crew
    assert stored.metadata["ticket"] == "PF-1"
    assert crewai_metadata(stored.metadata) == {
        "scope": "/", "categories": ["project"], "importance": 0.9, "source": None,
        "private": False,
    }
    assert record.metadata == {"ticket": "PF-1"} and record.categories == ["project"]


def test_unmapped_role_becomes_sanitized_agent_id(
    memory: AegisCrewMemory, client: AegisClient
) -> None:
    [record] = memory.remember_many(["Quarterly numbers are due Friday."],
                                    agent_role="Senior Analyst")
    assert client.get(record.id).agent_id == "senior-analyst"
    [anonymous] = memory.remember_many(["No agent wrote this."])
    assert client.get(anonymous.id).agent_id is None


def test_recall_returns_matches_best_first(memory: AegisCrewMemory) -> None:
    memory.remember_many([
        "Paris is the capital of France.",
        "The office coffee machine is on the third floor.",
        "Rust has a borrow checker.",
    ])
    matches = memory.recall("What is the capital of France?", limit=2)
    assert len(matches) == 2
    assert matches[0].record.content == "Paris is the capital of France."
    assert matches[0].score >= matches[1].score
    assert "semantic" in matches[0].match_reasons
    assert "Paris is the capital of France." in matches[0].format()
    assert memory.recall("   ") == []


def test_recall_sees_other_writers_in_the_namespace(
    memory: AegisCrewMemory, client: AegisClient, ns: str
) -> None:
    """Memories written by other tools (LangGraph, the SDK) are part of what a crew recalls."""
    client.add("Customer Acme prefers invoices in EUR.", namespace=ns, agent_id="billing",
               scope="global")
    client.add("Other namespace: Acme prefers USD.", namespace=ns + "-other", scope="global")
    [match] = memory.recall("Which currency does Acme want?", limit=5)
    assert match.record.content == "Customer Acme prefers invoices in EUR."
    assert match.record.scope == "/"


def test_recall_filters_scope_categories_and_privacy(memory: AegisCrewMemory) -> None:
    memory.remember("Team A deploys on Mondays.", scope="/team-a", categories=["ops"])
    memory.remember("Team B deploys on Fridays.", scope="/team-b", categories=["ops"])
    memory.remember("Team A's budget is 10k.", scope="/team-a/finance", categories=["money"])
    memory.remember("Alice's salary is private.", private=True, source="alice",
                    agent_role="Researcher")

    def contents(**kwargs: Any) -> set[str]:
        return {m.record.content for m in memory.recall("When does the team deploy?", **kwargs)}

    assert contents(scope="/team-a") == {"Team A deploys on Mondays.", "Team A's budget is 10k."}
    assert contents(scope="/team-a", categories=["ops"]) == {"Team A deploys on Mondays."}
    assert "Alice's salary is private." not in contents()
    assert "Alice's salary is private." in contents(source="alice")
    assert "Alice's salary is private." in contents(include_private=True)
    # The scope view CrewAI offers works on top of it.
    view = memory.scope("/team-b")
    assert {m.record.content for m in view.recall("deploy day")} == {"Team B deploys on Fridays."}


def test_recall_keeps_searching_when_filters_remove_results(memory: AegisCrewMemory) -> None:
    memory.remember_many([f"Deployment note {i}: deploy with care." for i in range(12)],
                         scope="/noise")
    memory.remember("Deployment rule: never deploy on Friday.", scope="/rules")
    matches = memory.recall("deploy", scope="/rules", limit=1)
    assert [m.record.content for m in matches] == ["Deployment rule: never deploy on Friday."]


def test_private_saves_are_agent_private_in_aegis(
    memory: AegisCrewMemory, client: AegisClient, ns: str
) -> None:
    record = memory.remember("Researcher's scratch note.", private=True, agent_role="Researcher")
    assert record is not None
    assert client.get(record.id).scope == "agent-private"
    assert client.query("scratch note", namespace=ns, agent_id="writer") == []


def test_agent_view_recalls_what_that_agent_may_see(
    client: AegisClient, ns: str
) -> None:
    crew_memory = AegisCrewMemory(client, namespace=ns, scope=None)  # the server decides
    researcher = crew_memory.for_agent("researcher")
    writer = crew_memory.for_agent("writer")
    researcher.remember("Draft outline lives in docs/outline.md.")
    assert client.export(namespace=ns).__iter__().__next__().scope == "agent-private"
    assert [m.record.content for m in researcher.recall("outline")] == [
        "Draft outline lives in docs/outline.md."]
    assert writer.recall("outline") == []
    assert len(crew_memory.recall("outline")) == 1  # the project key sees the namespace
    assert writer.list_records() == [] and len(researcher.list_records()) == 1


def test_update_changes_content_and_crewai_fields(
    memory: AegisCrewMemory, client: AegisClient
) -> None:
    record = memory.remember("The API rate limit is 100 per minute.", categories=["api"])
    assert record is not None
    updated = memory.update(record.id, content="The API rate limit is 500 per minute.",
                            importance=0.8)
    assert updated.id == record.id and updated.categories == ["api"]
    assert updated.importance == 0.8
    assert client.get(record.id).content == "The API rate limit is 500 per minute."
    [match] = memory.recall("API rate limit", limit=1)
    assert match.record.content == "The API rate limit is 500 per minute."
    with pytest.raises(ValueError, match="Record not found"):
        memory.update("0" * 32, content="nope")


def test_listing_info_tree_and_categories(memory: AegisCrewMemory) -> None:
    memory.remember("a1", scope="/a", categories=["x"])
    memory.remember("a2", scope="/a/deep", categories=["x", "y"])
    memory.remember("b1", scope="/b")
    assert memory.list_scopes() == ["/a", "/b"]
    assert memory.list_scopes("/a") == ["/a/deep"]
    info = memory.info("/a")
    assert info.record_count == 2 and info.categories == ["x", "y"]
    assert info.child_scopes == ["/a/deep"]
    assert memory.list_categories() == {"x": 2, "y": 1}
    assert [r.content for r in memory.list_records(limit=2)] == ["b1", "a2"]
    assert "/a (2 records)" in memory.tree()


def test_forget_and_reset_delete_only_crew_memories(
    memory: AegisCrewMemory, client: AegisClient, ns: str
) -> None:
    keep = client.add("Written by another tool; not the crew's to delete.", namespace=ns).id
    old = memory.remember("old fact", scope="/a", categories=["tmp"])
    memory.remember("another fact", scope="/a")
    memory.remember("b fact", scope="/b")
    assert old is not None
    assert memory.forget(categories=["tmp"]) == 1
    assert memory.forget(record_ids=[old.id]) == 0  # already gone
    assert memory.forget(scope="/a") == 1
    assert [r.content for r in memory.list_records()] == ["b fact"]
    memory.reset()
    assert memory.list_records() == []
    assert [m.id for m in client.export(namespace=ns)] == [keep]


def test_root_scope_nests_saves_and_limits_reset(client: AegisClient, ns: str) -> None:
    crew_a = AegisCrewMemory(client, namespace=ns, root_scope="/crew/a")
    crew_b = AegisCrewMemory(client, namespace=ns, root_scope="/crew/b")
    record = crew_a.remember("A's fact", scope="notes")
    crew_b.remember("B's fact")
    assert record is not None and record.scope == "/crew/a/notes"
    assert [m.record.content for m in crew_a.recall("fact")] == ["A's fact"]
    crew_a.reset()
    assert crew_a.list_records() == []
    assert [r.content for r in crew_b.list_records()] == ["B's fact"]


def test_read_only_memory_stores_nothing(client: AegisClient, ns: str) -> None:
    memory = AegisCrewMemory(client, namespace=ns, read_only=True)
    assert memory.remember("nothing") is None and memory.remember_many(["x"]) == []
    assert list(client.export(namespace=ns)) == []


def test_async_variants(memory: AegisCrewMemory) -> None:
    async def run() -> list[str]:
        await memory.aremember("Async facts are remembered too.")
        await memory.aremember_many(["Second async fact."])
        return [m.record.content for m in await memory.arecall("async facts", limit=5)]

    assert set(asyncio.run(run())) == {"Async facts are remembered too.", "Second async fact."}


def test_client_from_key_and_url_is_owned_and_closed(sqlite_server: Any, ns: str) -> None:
    memory = AegisCrewMemory(api_key="dev-key", base_url=sqlite_server.base_url, namespace=ns)
    memory.remember("built from key and url")
    assert [m.record.content for m in memory.recall("key and url")] == ["built from key and url"]
    memory.close()
    assert memory._client is None


def test_agent_key_acts_as_its_agent(sqlite_server: Any, client: AegisClient, ns: str) -> None:
    key = client.keys.create(agent_id="researcher", name="crew-researcher").key
    memory = AegisCrewMemory(api_key=key, base_url=sqlite_server.base_url, namespace=ns,
                             agent_id="researcher", scope="agent-private")
    try:
        record = memory.remember("Only the researcher sees this.", agent_role="Anything")
        assert record is not None and client.get(record.id).agent_id == "researcher"
        assert len(memory.recall("researcher sees")) == 1
    finally:
        memory.close()


def test_local_mode(tmp_path: Any) -> None:
    with AegisClient.local(path=tmp_path / "data") as local:
        memory = AegisCrewMemory(local, namespace="crew")
        memory.remember("Local mode needs no server process.")
        [match] = memory.recall("server process")
        assert match.record.content == "Local mode needs no server process."


# ----------------------------------------------------------------------------- with a Crew


def test_crew_accepts_it_as_memory(memory: AegisCrewMemory) -> None:
    agent = Agent(role="Researcher", goal="g", backstory="b",
                  llm=ScriptedLLM(model="scripted", answers=["x"]))
    crew = Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)],
                memory=memory)
    assert crew.memory is memory and crew._memory is memory
    agent_with_own = Agent(role="Writer", goal="g", backstory="b", memory=memory.for_agent("w"),
                           llm=ScriptedLLM(model="scripted", answers=["x"]))
    assert isinstance(agent_with_own.memory, AegisCrewMemory)
    assert agent_with_own.memory.agent_id == "w"


def test_kickoff_saves_results_and_recalls_them_in_later_tasks(
    client: AegisClient, ns: str
) -> None:
    memory = AegisCrewMemory(
        client, namespace=ns, agent_ids={"Researcher": "researcher", "Writer": "writer"}
    )
    researcher_llm = ScriptedLLM(model="scripted",
                                 answers=["The Zephyr-9 rocket engine runs on liquid methane."])
    writer_llm = ScriptedLLM(model="scripted", answers=["Zephyr-9: a methane rocket engine."])
    researcher = Agent(role="Researcher", goal="Find facts", backstory="Careful.",
                       llm=researcher_llm)
    writer = Agent(role="Writer", goal="Write summaries", backstory="Concise.", llm=writer_llm)
    crew = Crew(
        agents=[researcher, writer],
        tasks=[
            Task(description="Find out which fuel the Zephyr-9 rocket engine uses.",
                 expected_output="One sentence.", agent=researcher),
            Task(description="Write a headline about the Zephyr-9 rocket engine fuel.",
                 expected_output="A headline.", agent=writer),
        ],
        memory=memory,
    )
    result = crew.kickoff()
    assert result.raw == "Zephyr-9: a methane rocket engine."

    # Both task results landed in Aegis, owned by the mapped agents.
    stored = {m.agent_id: m for m in client.export(namespace=ns)}
    assert set(stored) == {"researcher", "writer"}
    assert "liquid methane" in stored["researcher"].content
    assert "Agent: Researcher" in stored["researcher"].content
    assert stored["researcher"].scope == "global"
    assert crewai_metadata(stored["writer"].metadata)["scope"] == "/"

    # The writer's task prompt carried what the researcher's task left in memory.
    assert "liquid methane" in writer_llm.prompts[0]
    assert "liquid methane" not in researcher_llm.prompts[0]

    # And CrewAI's reset goes through Aegis.
    crew.reset_memories("memory")
    assert list(client.export(namespace=ns)) == []


def test_agents_memory_tools_save_and_search_through_aegis(
    client: AegisClient, ns: str
) -> None:
    """The "Save to memory" / "Search memory" tools CrewAI gives agents use this memory."""
    memory = AegisCrewMemory(client, namespace=ns, agent_id="archivist")
    memory.remember("The vault code is 4711.")
    llm = ScriptedLLM(model="scripted", answers=[
        'Thought: I should save this.\nAction: Save to memory\n'
        'Action Input: {"contents": ["The meeting moved to Thursday."]}',
        'Thought: Let me look up the code.\nAction: Search memory\n'
        'Action Input: {"queries": ["vault code"]}',
        "Done.",
    ])
    agent = Agent(role="Archivist", goal="Keep records", backstory="Tidy.", llm=llm)
    Crew(agents=[agent], tasks=[Task(description="File the note.", expected_output="Done.",
                                     agent=agent)], memory=memory).kickoff()
    saved = [m for m in client.export(namespace=ns) if "Thursday" in m.content]
    assert [m.content for m in saved] == ["The meeting moved to Thursday."]
    assert saved[0].agent_id == "archivist"
    # The tool results went back to the LLM: the save confirmation, then the search hit.
    assert "Saved to memory" in llm.prompts[1]
    assert "The vault code is 4711." in llm.prompts[2]


def test_kickoff_with_llm_extraction(client: AegisClient, ns: str) -> None:
    """``extract_with_llm=True`` lets CrewAI's LLM split a result into facts first."""
    class Extractor(ScriptedLLM):
        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            self.prompts.append(str(messages))
            return '{"memories": ["Fact one about Mars.", "Fact two about Mars."]}'

    extractor = Extractor(model="scripted", answers=[])
    memory = AegisCrewMemory(client, namespace=ns, llm=extractor, extract_with_llm=True)
    agent = Agent(role="Researcher", goal="g", backstory="b",
                  llm=ScriptedLLM(model="scripted", answers=["Mars has two moons."]))
    Crew(agents=[agent], tasks=[Task(description="Mars?", expected_output="facts", agent=agent)],
         memory=memory).kickoff()
    assert sorted(m.content for m in client.export(namespace=ns)) == [
        "Fact one about Mars.", "Fact two about Mars."]
    assert extractor.prompts  # the LLM was asked


def test_copies_share_the_client_and_the_data(memory: AegisCrewMemory) -> None:
    """``copy.deepcopy`` (used when CrewAI copies agents and crews) must not clone a client."""
    import copy

    clone = copy.deepcopy(memory)
    assert clone is not memory and clone.client is memory.client
    clone.remember("Written through a copy.")
    assert [m.record.content for m in memory.recall("copy")] == ["Written through a copy."]
    clone.close()  # not its client to close
    assert memory.recall("copy")


def test_flow_memory(client: AegisClient, ns: str) -> None:
    from crewai.flow.flow import Flow, start

    class Notes(Flow):
        @start()
        def take_notes(self) -> list[str]:
            self.remember("Flows remember through Aegis too.")
            self.remember(["Batch note one.", "Batch note two."])
            return [m.record.content for m in self.recall("flows remember", limit=1)]

    flow = Notes(memory=AegisCrewMemory(client, namespace=ns))
    assert flow.kickoff() == ["Flows remember through Aegis too."]
    assert len(list(client.export(namespace=ns))) == 3


# ----------------------------------------------------------------------------- packaging


def test_import_without_crewai_names_the_extra() -> None:
    """With CrewAI missing, importing the module says which extra to install."""
    code = (
        "import sys; sys.modules['crewai'] = None\n"
        "import aegis_memory.integrations as pkg\n"
        "try:\n"
        "    import aegis_memory.integrations.crewai\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "pip install 'aegis-memory[crewai]'" in out
