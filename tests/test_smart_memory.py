"""SmartMemory end to end: a real Aegis server, real ``openai`` / ``anthropic`` client libraries
talking HTTP to a fake LLM on loopback, and the offline rule extractor.

The fake LLM answers from a small table of turns (``RESPONSES``), like a model that reads the
turn; scripted replies cover malformed answers, errors and timeouts.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aegis_memory import AegisClient, AsyncSmartMemory, SmartMemory
from aegis_memory.smart import LLMConnectionError, LLMError, LLMTimeoutError
from aegis_memory.smart.llm import AnthropicProvider, OpenAIProvider, resolve_provider
from tests.conftest import ServerProcess
from tests.fake_llm import ANTHROPIC_KEY, OPENAI_KEY, Failure, FakeLLM, Slow, facts_json

README_TURN = "I'm John, a Python developer from Manchester. I prefer dark mode."
README_FACTS = [
    "User's name is John",
    "User is a Python developer",
    "User is based in Manchester",
    "User prefers dark mode",
]

#: What the fake model answers for a turn containing the key.
RESPONSES: dict[str, str] = {
    "I'm John": facts_json(
        {"content": "User's name is John", "category": "personal_fact", "key": "name",
         "confidence": 0.98},
        {"content": "User is a Python developer", "category": "personal_fact",
         "key": "profession", "confidence": 0.95},
        {"content": "User is based in Manchester", "category": "personal_fact",
         "key": "location", "confidence": 0.9},
        {"content": "User prefers dark mode", "category": "preference", "key": None,
         "confidence": 0.95},
    ),
    "moved to Berlin": facts_json(
        {"content": "User is based in Berlin", "category": "personal_fact", "key": "location",
         "confidence": 0.95},
    ),
    "retries": facts_json(
        {"content": "Retry flaky HTTP calls with exponential backoff and jitter",
         "category": "strategy", "confidence": 0.9},
        {"content": "Retrying immediately in a tight loop overloaded the payment API",
         "category": "mistake", "confidence": 0.9},
    ),
    "maybe tea": facts_json(
        {"content": "User might like green tea", "category": "preference", "confidence": 0.3},
    ),
}


def respond(prompt: str) -> str:
    turn = prompt.split("User said:", 1)[-1]
    for marker, answer in RESPONSES.items():
        if marker in turn:
            return answer
    return '{"facts": []}'


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    fake.responder = respond
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def no_llm_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys or URLs in the developer's environment must not change what these tests run."""
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",
                 "AEGIS_API_KEY", "AEGIS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def openai_memory(server: ServerProcess, fake: FakeLLM, **options: Any) -> SmartMemory:
    return SmartMemory(aegis_api_key="dev-key", aegis_base_url=server.base_url,
                       llm_api_key=OPENAI_KEY, llm_base_url=fake.openai_url, **options)


def contents(memories: list[Any]) -> list[str]:
    return [m.content for m in memories]


# ============================================================================ the README example


def test_readme_example_with_openai(server: ServerProcess, fake_llm: FakeLLM, ns: str) -> None:
    with openai_memory(server, fake_llm, namespace=ns) as memory:
        assert memory.extractor == "openai:gpt-4o-mini"
        result = memory.process_turn(
            user_input=README_TURN, ai_response="Nice to meet you, John!", user_id="user_123"
        )
        assert contents(result.extracted) == README_FACTS
        assert len(result.stored_ids) == 4 and result.skipped_reason is None
        assert result.llm_calls == 1 and fake_llm.calls == 1

        context = memory.get_context("What theme should I use?", user_id="user_123")
        assert context.context_string == "- User prefers dark mode"
        assert str(context) == context.context_string

    request = fake_llm.requests[0]
    body = request["json"]
    assert request["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system" and "category" in body["messages"][0]["content"]
    assert README_TURN in body["messages"][1]["content"]

    with AegisClient(api_key="dev-key", base_url=server.base_url) as client:
        stored = [client.get(memory_id) for memory_id in result.stored_ids]
    assert [m.content for m in stored] == README_FACTS
    assert all(m.user_id == "user_123" and m.namespace == ns for m in stored)
    assert [m.metadata["category"] for m in stored] == ["personal_fact"] * 3 + ["preference"]
    assert [m.metadata.get("key") for m in stored] == ["name", "profession", "location", None]
    assert all(m.metadata["source"] == "smart_memory" for m in stored)


def test_readme_example_with_anthropic_async(
    sqlite_server: ServerProcess, fake_llm: FakeLLM, ns: str
) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with AsyncSmartMemory(
            aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url, namespace=ns,
            llm_provider="anthropic", llm_api_key=ANTHROPIC_KEY, llm_base_url=fake_llm.url,
        ) as memory:
            assert memory.extractor == "anthropic:claude-haiku-4-5"
            result = await memory.process_turn(README_TURN, "Nice to meet you, John!",
                                               user_id="user_123")
            context = await memory.get_context("What theme should I use?", user_id="user_123")
            return result, context

    result, context = asyncio.run(scenario())
    assert contents(result.extracted) == README_FACTS and len(result.stored_ids) == 4
    assert context.context_string == "- User prefers dark mode"
    request = fake_llm.requests[0]
    assert request["protocol"] == "anthropic"
    assert FakeLLM.anthropic_key(request["headers"]) == ANTHROPIC_KEY
    assert request["headers"].get("anthropic-version")
    assert "atomic" in request["json"]["system"]
    assert request["json"]["messages"][0]["role"] == "user"


def test_readme_example_offline_rules(server: ServerProcess, ns: str) -> None:
    """No key anywhere: the rule extractor produces the README's four facts."""
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=server.base_url,
                     namespace=ns) as memory:
        assert memory.extractor == "rules"
        result = memory.process_turn(README_TURN, "Nice to meet you, John!", user_id="user_123")
        assert contents(result.extracted) == README_FACTS
        assert len(result.stored_ids) == 4 and result.llm_calls == 0
        context = memory.get_context("What theme should I use?", user_id="user_123")
        assert context.context_string == "- User prefers dark mode"


def test_openai_compatible_server(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                  ns: str) -> None:
    """Ollama / vLLM / llama.cpp: the OpenAI protocol at another URL, a model name, no key."""
    fake_llm.openai_key = None
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns, llm_provider="openai-compatible",
                     llm_base_url=fake_llm.openai_url, llm_model="llama3.1") as memory:
        assert memory.extractor == "openai-compatible:llama3.1"
        result = memory.process_turn(README_TURN, user_id="u1")
    assert len(result.stored_ids) == 4
    assert fake_llm.requests[0]["json"]["model"] == "llama3.1"


def test_custom_callables_sync_and_async(sqlite_server: ServerProcess, ns: str) -> None:
    prompts: list[str] = []

    def my_llm(prompt: str) -> str:
        prompts.append(prompt)
        return respond(prompt)

    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns, llm=my_llm) as memory:
        assert memory.extractor == "custom:my_llm"
        assert len(memory.process_turn(README_TURN, user_id="u1").stored_ids) == 4
    assert len(prompts) == 1 and README_TURN in prompts[0]

    async def my_async_llm(prompt: str) -> str:
        await asyncio.sleep(0)
        return RESPONSES["moved to Berlin"]

    async def scenario() -> Any:
        async with AsyncSmartMemory(aegis_api_key="dev-key",
                                    aegis_base_url=sqlite_server.base_url, namespace=ns,
                                    llm=my_async_llm) as memory:
            return await memory.process_turn("I moved to Berlin last week", user_id="u1")

    result = asyncio.run(scenario())
    assert contents(result.extracted) == ["User is based in Berlin"]
    assert len(result.superseded_ids) == 1  # Manchester, stored above

    with pytest.raises(TypeError, match="AsyncSmartMemory"), SmartMemory(
        aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url, namespace=ns,
        llm=my_async_llm,
    ) as memory:
        memory.process_turn(README_TURN, user_id="u1")


def test_prompt_templating_keeps_braces_and_dollars(sqlite_server: ServerProcess,
                                                    ns: str) -> None:
    seen: list[str] = []

    def my_llm(prompt: str) -> str:
        seen.append(prompt)
        return '{"facts": []}'

    tricky = 'I prefer configs like {"theme": "dark"} and ${HOME}/x, not {name} or $user_input'
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns, llm=my_llm) as memory:
        result = memory.process_turn(tricky, "Use {{braces}} freely", user_id="u1")
    assert result.skipped_reason == "nothing_extracted"
    assert tricky in seen[0] and "Use {{braces}} freely" in seen[0]
    assert '{"facts": [{"content": "User prefers dark mode"' in seen[0]  # the JSON example


# ============================================================================ filter and LLM calls


NOISE = ["hi", "Hello!", "thanks", "Thank you so much!", "ok", "got it", "lol", "sounds good",
         "good morning", "bye", "👍", "cool cool", ""]


def test_noise_never_reaches_the_model(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                       ns: str) -> None:
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        results = [memory.process_turn(text, "You're welcome!", user_id="u1") for text in NOISE]
        stats = memory.get_stats()
    assert fake_llm.calls == 0
    assert all(not r.stored_ids and r.llm_calls == 0 for r in results)
    assert {r.skipped_reason for r in results} <= {"noise", "too_short", "empty"}
    assert stats.turns == len(NOISE) and stats.llm_calls == 0
    assert stats.llm_calls_saved == len(NOISE)


@pytest.mark.parametrize(
    ("text", "called"),
    [
        # one weak signal (a goal): enough for balanced and high, not for low
        ("I want to learn Rust this year", {"low": False, "balanced": True, "high": True}),
        # a strong signal (a preference): enough everywhere
        ("I prefer tabs over spaces", {"low": True, "balanced": True, "high": True}),
        # no signal, but not noise: only high sends it
        ("The weather in Lisbon was lovely during the conference",
         {"low": False, "balanced": False, "high": True}),
    ],
)
def test_sensitivity_decides_which_turns_cost_a_call(
    sqlite_server: ServerProcess, fake_llm: FakeLLM, ns: str, text: str, called: dict[str, bool]
) -> None:
    for sensitivity, expected in called.items():
        before = fake_llm.calls
        with openai_memory(sqlite_server, fake_llm, namespace=ns,
                           sensitivity=sensitivity) as memory:
            result = memory.process_turn(text, user_id="u1")
        assert (fake_llm.calls - before == 1) is expected, sensitivity
        assert (result.skipped_reason == "no_signal") is not expected


def test_force_extract_bypasses_the_filter(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                           ns: str) -> None:
    fake_llm.replies.append(facts_json({"content": "User agreed to the plan",
                                        "category": "decision", "confidence": 0.9}))
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        result = memory.process_turn("ok", user_id="u1", force_extract=True)
    assert fake_llm.calls == 1 and len(result.stored_ids) == 1


# ============================================================================ what gets stored


def test_update_supersedes_the_old_fact(server: ServerProcess, fake_llm: FakeLLM,
                                        ns: str) -> None:
    with openai_memory(server, fake_llm, namespace=ns) as memory:
        first = memory.process_turn(README_TURN, user_id="user_123")
        manchester = first.stored_ids[2]
        moved = memory.process_turn("I moved to Berlin last month", user_id="user_123")
        assert moved.superseded_ids == [manchester]
        context = memory.get_context("Where is the user based?", user_id="user_123")
    assert "User is based in Berlin" in context.context_string
    assert "Manchester" not in context.context_string
    with AegisClient(api_key="dev-key", base_url=server.base_url) as client:
        old = client.get(manchester)
    assert old.is_deprecated and old.superseded_by == moved.stored_ids[0]


def test_offline_rules_supersede_too(sqlite_server: ServerProcess, ns: str) -> None:
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns) as memory:
        memory.process_turn(README_TURN, user_id="u9")
        moved = memory.process_turn("I moved to Berlin", user_id="u9")
        assert contents(moved.extracted) == ["User is based in Berlin"]
        assert len(moved.superseded_ids) == 1
        context = memory.get_context("where does the user live", user_id="u9", relevance=0)
    assert "Berlin" in context.context_string and "Manchester" not in context.context_string


def test_repeated_turn_is_not_stored_twice(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                           ns: str) -> None:
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        first = memory.process_turn(README_TURN, user_id="u1")
        again = memory.process_turn(README_TURN, user_id="u1")
        other_user = memory.process_turn(README_TURN, user_id="u2")
    assert again.stored_ids == [] and sorted(again.duplicate_ids) == sorted(first.stored_ids)
    assert again.skipped_reason == "duplicate"
    assert len(other_user.stored_ids) == 4  # another user's facts are theirs


def test_users_do_not_see_each_others_context(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                              ns: str) -> None:
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        memory.process_turn(README_TURN, user_id="alice")
        context = memory.get_context("What theme should I use?", user_id="bob")
    assert context.context_string == "" and context.memories == []


def test_confidence_threshold(sqlite_server: ServerProcess, fake_llm: FakeLLM, ns: str) -> None:
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        result = memory.process_turn("I like coffee, maybe tea too", user_id="u1")
    assert result.stored_ids == [] and result.skipped_reason == "below_threshold"
    assert contents(result.below_threshold) == ["User might like green tea"]


def test_strategies_and_mistakes_reach_the_playbook(server: ServerProcess, fake_llm: FakeLLM,
                                                    ns: str) -> None:
    with openai_memory(server, fake_llm, namespace=ns, agent_id="payments") as memory:
        result = memory.process_turn(
            "The payment API kept failing, we added retries",
            "Exponential backoff with jitter fixed it; the tight loop had overloaded it.",
        )
        with AegisClient(api_key="dev-key", base_url=server.base_url) as client:
            stored = [client.get(i) for i in result.stored_ids]
            entries = client.playbook("retrying flaky HTTP calls", agent_id="payments",
                                      namespace=ns)
    assert [m.memory_type for m in stored] == ["strategy", "reflection"]
    assert all(m.agent_id == "payments" and m.scope == "agent-private" for m in stored)
    assert {e.id for e in entries} >= set(result.stored_ids)


def test_store_explicit(sqlite_server: ServerProcess, ns: str) -> None:
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns) as memory:
        first = memory.store_explicit("User's timezone is CET", user_id="u1", key="timezone")
        second = memory.store_explicit("User's timezone is PST", user_id="u1", key="timezone")
        lesson = memory.store_explicit("Never deploy on Fridays", category="mistake")
        again = memory.store_explicit("Never deploy on Fridays", category="mistake")
        stats = memory.get_stats()
    assert second.superseded_ids == first.stored_ids
    assert again.skipped_reason == "duplicate" and again.duplicate_ids == lesson.stored_ids
    assert stats.facts_stored == 3 and stats.superseded == 1 and stats.duplicates == 1
    with AegisClient(api_key="dev-key", base_url=sqlite_server.base_url) as client:
        assert client.get(lesson.stored_ids[0]).memory_type == "reflection"


def test_get_context_respects_the_token_budget(sqlite_server: ServerProcess, ns: str) -> None:
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns) as memory:
        for i in range(8):
            memory.store_explicit(f"User's project number {i} is written in Python "
                                  f"and deployed on server {i}", user_id="u1")
        full = memory.get_context("user's python projects", user_id="u1", top_k=8,
                                  relevance=0)
        small = memory.get_context("user's python projects", user_id="u1", top_k=8,
                                   max_tokens=40, relevance=0)
    assert len(full.memories) == 8
    assert full.context_string.count("\n") == 7
    assert all(line.startswith("- ") for line in full.context_string.splitlines())
    assert 0 < len(small.memories) < 8 and small.token_count <= 40
    assert len(small.context_string) <= 40 * 4


# ============================================================================ failures


def test_malformed_output_is_retried_once(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                          ns: str) -> None:
    chatty = "Sure! Here are the facts: User likes dark mode"
    fake_llm.replies.extend([chatty, RESPONSES["I'm John"]])
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        result = memory.process_turn(README_TURN, user_id="u1")
    assert result.llm_calls == 2 and len(result.stored_ids) == 4 and result.error is None
    retry = fake_llm.requests[1]["json"]["messages"]
    assert retry[-2] == {"role": "assistant", "content": chatty}
    assert "could not be used" in retry[-1]["content"]


def test_malformed_output_twice_is_reported(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                            ns: str) -> None:
    fake_llm.replies.extend(["not json", '{"facts": [{"category": "preference"}]}'])
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        result = memory.process_turn(README_TURN, user_id="u1")
        stats = memory.get_stats()
    assert result.skipped_reason == "malformed_llm_output" and result.stored_ids == []
    assert result.llm_calls == 2 and "content" in (result.error or "")
    assert result.raw_output == '{"facts": [{"category": "preference"}]}'
    assert stats.malformed_outputs == 1 and stats.skipped == {"malformed_llm_output": 1}


def test_fenced_and_loose_json_is_accepted(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                           ns: str) -> None:
    loose = ("Here you go:\n```json\n"
             + json.dumps([{"content": "User prefers dark mode", "category": "Preferences",
                            "confidence": "95%"}]) + "\n```")
    fake_llm.replies.append(loose)
    with openai_memory(sqlite_server, fake_llm, namespace=ns) as memory:
        result = memory.process_turn(README_TURN, user_id="u1")
    assert result.llm_calls == 1
    assert [(f.content, f.category, f.confidence) for f in result.extracted] == [
        ("User prefers dark mode", "preference", 0.95)]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_http_errors_carry_the_providers_message(
    sqlite_server: ServerProcess, fake_llm: FakeLLM, ns: str, provider: str
) -> None:
    fake_llm.replies.append(Failure(429, "Rate limit reached for requests", "rate_limit_error"))
    options: dict[str, Any] = (
        {"llm_api_key": OPENAI_KEY, "llm_base_url": fake_llm.openai_url}
        if provider == "openai"
        else {"llm_provider": "anthropic", "llm_api_key": ANTHROPIC_KEY,
              "llm_base_url": fake_llm.url}
    )
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns, llm_max_retries=0, **options) as memory:
        with pytest.raises(LLMError) as caught:
            memory.process_turn(README_TURN, user_id="u1")
        assert caught.value.status_code == 429 and caught.value.provider == provider
        assert "Rate limit reached for requests" in str(caught.value)

        wrong = {**options, "llm_api_key": "sk-wrong"}
        with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                         namespace=ns, llm_max_retries=0, **wrong) as bad_key, \
                pytest.raises(LLMError) as denied:
            bad_key.process_turn(README_TURN, user_id="u1")
        assert denied.value.status_code == 401
        assert ("Incorrect API key" if provider == "openai" else "invalid x-api-key") \
            in str(denied.value)


def test_timeout_and_unreachable_provider(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                          ns: str) -> None:
    fake_llm.replies.append(Slow(3.0))
    with openai_memory(sqlite_server, fake_llm, namespace=ns, llm_timeout=0.5,
                       llm_max_retries=0) as memory, pytest.raises(LLMTimeoutError):
        memory.process_turn(README_TURN, user_id="u1")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                     namespace=ns, llm_api_key=OPENAI_KEY, llm_max_retries=0,
                     llm_base_url=f"http://127.0.0.1:{closed_port}/v1") as memory, \
            pytest.raises(LLMConnectionError, match="Cannot reach"):
        memory.process_turn(README_TURN, user_id="u1")


def test_async_errors_are_typed_too(sqlite_server: ServerProcess, fake_llm: FakeLLM,
                                    ns: str) -> None:
    fake_llm.replies.append(Failure(500, "The server had an error"))

    async def scenario() -> None:
        async with AsyncSmartMemory(aegis_api_key="dev-key",
                                    aegis_base_url=sqlite_server.base_url, namespace=ns,
                                    llm_api_key=OPENAI_KEY, llm_base_url=fake_llm.openai_url,
                                    llm_max_retries=0) as memory:
            await memory.process_turn(README_TURN, user_id="u1")

    with pytest.raises(LLMError, match="The server had an error") as caught:
        asyncio.run(scenario())
    assert caught.value.status_code == 500


# ============================================================================ configuration


def test_provider_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_provider() is None  # no key anywhere: offline rules
    assert resolve_provider("openai") is None
    assert resolve_provider("anthropic") is None
    assert resolve_provider("rules", api_key="sk-anything") is None
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    assert isinstance(resolve_provider(), AnthropicProvider)  # the only key there is
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert isinstance(resolve_provider(), OpenAIProvider)  # both: OpenAI
    assert isinstance(resolve_provider("openai"), OpenAIProvider)
    chosen = resolve_provider("anthropic", model="claude-sonnet-4-5")
    assert isinstance(chosen, AnthropicProvider) and chosen.model == "claude-sonnet-4-5"
    with pytest.raises(ValueError, match="Unknown llm_provider 'gpt'"):
        resolve_provider("gpt")
    with pytest.raises(ValueError, match="llm_base_url"):
        resolve_provider("openai-compatible", model="llama3.1",
                         env={})
    with pytest.raises(ValueError, match="llm_model"):
        resolve_provider("openai-compatible", base_url="http://127.0.0.1:1/v1")


def test_bad_arguments_are_clear(sqlite_server: ServerProcess) -> None:
    with pytest.raises(ValueError, match="sensitivity"):
        SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url,
                    sensitivity="medium")  # type: ignore[arg-type]
    with SmartMemory(aegis_api_key="dev-key", aegis_base_url=sqlite_server.base_url) as memory:
        with pytest.raises(Exception, match="user_input must be a string"):
            memory.process_turn(None)  # type: ignore[arg-type]
        with pytest.raises(Exception, match="max_tokens"):
            memory.get_context("x", max_tokens=0)


def test_works_over_a_local_mode_client(tmp_path: Any) -> None:
    """``client=`` reuses any client, including the in-process server of local mode; a client
    passed in is left open for its owner."""
    def my_llm(prompt: str) -> str:
        return respond(prompt)

    with AegisClient.local(path=tmp_path / "data") as client:
        with SmartMemory(client=client, llm=my_llm) as memory:
            result = memory.process_turn(README_TURN, user_id="u1")
            context = memory.get_context("What theme should I use?", user_id="u1")
        assert len(result.stored_ids) == 4
        assert context.context_string == "- User prefers dark mode"
        assert client.get(result.stored_ids[0]).content == "User's name is John"


def test_guide_example_runs_as_written(sqlite_server: ServerProcess, tmp_path: Any) -> None:
    """The first example of docs/guides/smart-memory.md prints what its comments say."""
    guide = (Path(__file__).resolve().parents[1] / "docs/guides/smart-memory.md").read_text()
    code = guide.split("```python\n", 1)[1].split("```", 1)[0]
    env = {"AEGIS_BASE_URL": sqlite_server.base_url, "PATH": "/usr/bin:/bin",
           "AEGIS_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()
    assert printed[0] == str(["User's name is Priya", "User is a nurse", "User is based in Leeds",
                              "User prefers short answers"])
    assert printed[1] == "- User prefers short answers"
