"""LLM providers for fact extraction, each usable from sync and async code.

A provider turns an `LLMRequest` (system prompt plus chat messages) into the model's text. The
official client libraries do the talking (``openai`` for OpenAI and every OpenAI-compatible
server - Ollama, vLLM, llama.cpp -, ``anthropic`` for Claude); they are imported only when a
provider is built, so ``import aegis_memory`` never needs them. Their failures are translated
into our typed errors carrying the provider's own message, because "401 Incorrect API key
provided" is what a person needs to read, not a traceback from inside a client library.

Without a key (and without a custom callable) `resolve_provider` returns None and SmartMemory
uses the offline rule extractor instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aegis_memory.client.errors import AegisError

__all__ = [
    "DEFAULT_MODELS",
    "AnthropicProvider",
    "CallableProvider",
    "LLMConnectionError",
    "LLMError",
    "LLMProvider",
    "LLMRequest",
    "LLMTimeoutError",
    "LibraryProvider",
    "OpenAIProvider",
    "ProviderName",
    "resolve_provider",
]

log = logging.getLogger("aegis_memory.smart")

ProviderName = Literal["openai", "anthropic", "openai-compatible", "rules"]
PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "openai-compatible", "rules")

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
DEFAULT_MAX_TOKENS = 1024


# ============================================================================ errors


class LLMError(AegisError):
    """The LLM provider failed; ``message`` carries the provider's own words.

    ``status_code`` is the provider's HTTP status (401 bad key, 429 rate limit, ...), None when
    no answer came back. A subclass of `AegisError`, so one ``except AegisError`` covers both
    the memory server and the model.
    """

    def __init__(self, message: str, *, provider: str, status_code: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, status_code=status_code, code=code or "llm_error")
        self.provider = provider


class LLMConnectionError(LLMError):
    """The provider could not be reached (refused, DNS, TLS)."""


class LLMTimeoutError(LLMConnectionError):
    """The provider did not answer within the timeout."""


def _provider_message(exc: Any) -> str:
    """The human sentence inside a client library's status error.

    OpenAI's client keeps the ``error`` object as ``body``; Anthropic's keeps the whole
    ``{"type": "error", "error": {...}}`` document. Fall back to the library's own message.
    """
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", None) or exc)


_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "openai-compatible": "OpenAI-compatible"}


def _translate(exc: Exception, provider: str, module: Any) -> Exception:
    """Our typed error for a failure of the ``openai`` / ``anthropic`` client (same shapes)."""
    label = _LABELS.get(provider, provider)
    if isinstance(exc, module.APITimeoutError):
        return LLMTimeoutError(f"{label} did not answer in time ({exc})", provider=provider,
                               code="llm_timeout")
    if isinstance(exc, module.APIConnectionError):
        return LLMConnectionError(f"Cannot reach {label}: {exc}", provider=provider,
                                  code="llm_connection_error")
    if isinstance(exc, module.APIStatusError):
        status = exc.status_code
        return LLMError(f"{label} error {status}: {_provider_message(exc)}", provider=provider,
                        status_code=status)
    return exc


# ============================================================================ requests


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One chat completion: instructions plus the conversation so far (user/assistant turns)."""

    system: str
    messages: tuple[tuple[str, str], ...]
    json_output: bool = True

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def as_text(self) -> str:
        """The whole request as one prompt, for callables that take a string."""
        parts = [self.system]
        for role, content in self.messages:
            parts.append(content if role == "user" else f"(Your previous answer)\n{content}")
        return "\n\n".join(parts)


class LLMProvider:
    """Base of providers: ``complete`` for sync callers, ``acomplete`` for async ones."""

    name: str = "llm"
    model: str = ""

    def complete(self, request: LLMRequest) -> str:
        raise NotImplementedError

    async def acomplete(self, request: LLMRequest) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release HTTP connections held by the sync client library, if any."""

    async def aclose(self) -> None:
        """Release HTTP connections held by the async client library, if any."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.model}>"


def _import(package: str, extra: str) -> Any:
    try:
        return __import__(package)
    except ImportError:
        raise ImportError(
            f"SmartMemory's {package} provider needs the {package!r} package: "
            f"pip install 'aegis-memory[{extra}]'"
        ) from None


class LibraryProvider(LLMProvider):
    """A provider backed by an official client library (``openai``, ``anthropic``).

    Both libraries have the same shape - a sync and an async client class built from
    ``api_key`` / ``base_url`` / ``timeout`` / ``max_retries``, one error base class, and the
    same status/timeout/connection error types - so creating clients lazily, calling,
    translating errors and closing are written here once. A subclass says which library and
    classes, how to call it (`_create`) and where the text is in the answer (`_text`).
    """

    package: str = ""
    sync_class: str = ""
    async_class: str = ""
    error_class: str = ""

    def __init__(self, *, api_key: str, model: str, base_url: str | None = None,
                 timeout: float = 30.0, max_retries: int = 2) -> None:
        self._library = _import(self.package, self.package)
        self.model = model
        self._options: dict[str, Any] = {"api_key": api_key, "timeout": timeout,
                                         "max_retries": max_retries}
        if base_url:
            self._options["base_url"] = base_url
        self._sync: Any = None
        self._async: Any = None

    def _create(self, client: Any, request: LLMRequest) -> Any:
        """Start the completion call on ``client`` (returns a coroutine for an async one)."""
        raise NotImplementedError

    @staticmethod
    def _text(response: Any) -> str:
        raise NotImplementedError

    def _failure(self, exc: Exception) -> Exception:
        return _translate(exc, self.name, self._library)

    def complete(self, request: LLMRequest) -> str:
        if self._sync is None:
            self._sync = getattr(self._library, self.sync_class)(**self._options)
        try:
            response = self._create(self._sync, request)
        except getattr(self._library, self.error_class) as exc:
            raise self._failure(exc) from exc
        return self._text(response)

    async def acomplete(self, request: LLMRequest) -> str:
        if self._async is None:
            self._async = getattr(self._library, self.async_class)(**self._options)
        try:
            response = await self._create(self._async, request)
        except getattr(self._library, self.error_class) as exc:
            raise self._failure(exc) from exc
        return self._text(response)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.close()
            self._async = None


class OpenAIProvider(LibraryProvider):
    """OpenAI, or any server speaking its chat-completions protocol (``base_url``).

    Asks for a JSON object (``response_format``), which OpenAI, Ollama, vLLM and llama.cpp's
    server all honour; the answer is still parsed defensively.
    """

    package, sync_class, async_class, error_class = "openai", "OpenAI", "AsyncOpenAI", "OpenAIError"

    def __init__(self, *, name: str = "openai", **options: Any) -> None:
        super().__init__(**options)
        self.name = name

    def _create(self, client: Any, request: LLMRequest) -> Any:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": request.system}, *request.chat()],
            "temperature": 0,
        }
        if request.json_output:
            arguments["response_format"] = {"type": "json_object"}
        return client.chat.completions.create(**arguments)

    @staticmethod
    def _text(response: Any) -> str:
        choices = getattr(response, "choices", None) or []
        if not choices:
            return ""
        return choices[0].message.content or ""


class AnthropicProvider(LibraryProvider):
    """Claude through the Messages API (the system prompt is its own field there)."""

    name = "anthropic"
    package, sync_class, async_class = "anthropic", "Anthropic", "AsyncAnthropic"
    error_class = "AnthropicError"

    def __init__(self, *, max_tokens: int = DEFAULT_MAX_TOKENS, **options: Any) -> None:
        super().__init__(**options)
        self._max_tokens = max_tokens

    def _create(self, client: Any, request: LLMRequest) -> Any:
        return client.messages.create(model=self.model, max_tokens=self._max_tokens,
                                      system=request.system, messages=request.chat())

    @staticmethod
    def _text(response: Any) -> str:
        blocks = getattr(response, "content", None) or []
        return "".join(getattr(block, "text", "") for block in blocks
                       if getattr(block, "type", "") == "text")


LLMCallable = Callable[[str], "str | Awaitable[str]"]


class CallableProvider(LLMProvider):
    """Your own function: it receives the whole prompt as one string and returns the answer.

    Any model, any client, any cache. A coroutine function works with `AsyncSmartMemory`; a
    plain function works with both (in async code it runs in a worker thread so it cannot
    block the event loop). Its exceptions are reported as `LLMError`.
    """

    name = "custom"

    def __init__(self, function: LLMCallable) -> None:
        if not callable(function):
            raise TypeError("llm must be a callable taking the prompt (str) and returning str")
        self._function = function
        self.model = getattr(function, "__name__", type(function).__name__)
        self._is_async = inspect.iscoroutinefunction(function) or (
            not inspect.isroutine(function)
            and inspect.iscoroutinefunction(type(function).__call__)  # type: ignore[operator]
        )

    def _checked(self, answer: Any) -> str:
        if not isinstance(answer, str):
            raise LLMError(f"The custom llm callable returned {type(answer).__name__}, "
                           "expected str", provider=self.name)
        return answer

    def complete(self, request: LLMRequest) -> str:
        if self._is_async:
            raise TypeError("This llm callable is async: use AsyncSmartMemory with it")
        try:
            answer = self._function(request.as_text())
        except Exception as exc:
            raise LLMError(f"The custom llm callable failed: {exc}", provider=self.name) from exc
        if inspect.isawaitable(answer):
            close = getattr(answer, "close", None)
            if close is not None:
                close()  # never awaited: close it so Python does not warn
            raise TypeError("This llm callable returned an awaitable: use AsyncSmartMemory")
        return self._checked(answer)

    async def acomplete(self, request: LLMRequest) -> str:
        try:
            if self._is_async:
                answer = await self._function(request.as_text())  # type: ignore[misc]
            else:
                answer = await asyncio.to_thread(self._function, request.as_text())
                if inspect.isawaitable(answer):
                    answer = await answer
        except Exception as exc:
            raise LLMError(f"The custom llm callable failed: {exc}", provider=self.name) from exc
        return self._checked(answer)


# ============================================================================ choosing one


def resolve_provider(
    provider: str | None = None,
    *,
    api_key: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    llm: LLMCallable | None = None,
    timeout: float = 30.0,
    max_retries: int = 2,
    env: Mapping[str, str] | None = None,
) -> LLMProvider | None:
    """The provider SmartMemory will call, or None for the offline rule extractor.

    Keys fall back to ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``; with no ``provider`` the one
    whose key is there is used (OpenAI when both are). No key means the rules: a
    missing key is the normal offline set-up, not an error. ``openai-compatible`` needs a
    ``base_url`` and a model name, but no key (local servers rarely check one).
    """
    env = os.environ if env is None else env
    if llm is not None:
        return CallableProvider(llm)
    if provider is None:  # whichever key there is; OpenAI first
        has_anthropic_only = not (api_key or env.get("OPENAI_API_KEY")) and env.get(
            "ANTHROPIC_API_KEY")
        provider = "anthropic" if has_anthropic_only else "openai"
    if provider not in PROVIDERS:
        raise ValueError(f"Unknown llm_provider {provider!r}: choose one of {', '.join(PROVIDERS)}")
    if provider == "rules":
        return None
    options = {"timeout": timeout, "max_retries": max_retries}
    if provider == "openai-compatible":
        base = base_url or env.get("OPENAI_BASE_URL")
        if not base:
            raise ValueError("llm_provider='openai-compatible' needs llm_base_url, the server's "
                             "OpenAI-style URL (e.g. http://localhost:11434/v1 for Ollama)")
        if not model:
            raise ValueError("llm_provider='openai-compatible' needs llm_model, the name of a "
                             "model your server serves (e.g. 'llama3.1')")
        return OpenAIProvider(api_key=api_key or env.get("OPENAI_API_KEY") or "not-needed",
                              model=model, base_url=base, name="openai-compatible", **options)
    key_env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    key = (api_key or env.get(key_env) or "").strip()
    if not key:
        log.info("SmartMemory: no %s key (llm_api_key or %s): using the offline rule "
                 "extractor", provider, key_env)
        return None
    chosen = model or DEFAULT_MODELS[provider]
    if provider == "openai":
        return OpenAIProvider(api_key=key, model=chosen, base_url=base_url, **options)
    return AnthropicProvider(api_key=key, model=chosen, base_url=base_url, **options)


def describe(provider: LLMProvider | None) -> str:
    """``openai:gpt-4o-mini``, ``custom:my_llm`` or ``rules``: which extractor runs."""
    return "rules" if provider is None else f"{provider.name}:{provider.model}"

