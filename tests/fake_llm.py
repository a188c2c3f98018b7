"""A fake LLM server on loopback speaking the real OpenAI chat and Anthropic Messages protocols.

The real ``openai`` and ``anthropic`` client libraries talk HTTP to it, so what is tested is
what runs in production: request shapes, auth headers, status errors and timeouts as the
libraries see them. Answers come from a script (``fake.replies``: text, `Failure` or `Slow`)
or, when the script is empty, from ``fake.responder(prompt_text)``. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_KEY = "sk-test-openai"
ANTHROPIC_KEY = "sk-ant-test"


@dataclass(frozen=True)
class Failure:
    """Answer with this HTTP status and the provider's error body carrying ``message``."""

    status: int
    message: str
    error_type: str = "api_error"


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds`` before answering ``text`` (to trip client timeouts)."""

    seconds: float
    text: str = '{"facts": []}'


def facts_json(*facts: dict[str, Any]) -> str:
    return json.dumps({"facts": list(facts)})


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: deque[str | Failure | Slow] = deque()
        self.responder: Callable[[str], str] = lambda _prompt: '{"facts": []}'
        #: The key OpenAI-protocol requests must carry; None accepts any (a local server).
        self.openai_key: str | None = OPENAI_KEY
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                anthropic = self.path.rstrip("/").endswith("/v1/messages")
                openai = self.path.rstrip("/").endswith("/chat/completions")
                headers = {name.lower(): value for name, value in self.headers.items()}
                with fake.lock:
                    fake.requests.append({"path": self.path, "json": body, "headers": headers,
                                          "protocol": "anthropic" if anthropic else "openai"})
                    scripted = fake.replies.popleft() if fake.replies else None
                if not (anthropic or openai):
                    return self.error(404, "Not found", "not_found_error", anthropic)
                if anthropic and fake.anthropic_key(self.headers) != ANTHROPIC_KEY:
                    return self.error(401, "invalid x-api-key", "authentication_error", True)
                if (openai and fake.openai_key is not None
                        and self.headers.get("Authorization") != f"Bearer {fake.openai_key}"):
                    return self.error(401, "Incorrect API key provided: sk-wr***ng.",
                                      "invalid_request_error", False)
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    return self.error(400, "messages: field required", "invalid_request_error",
                                      anthropic)
                if anthropic and not self.headers.get("anthropic-version"):
                    return self.error(400, "anthropic-version header is required",
                                      "invalid_request_error", True)
                if isinstance(scripted, Failure):
                    return self.error(scripted.status, scripted.message, scripted.error_type,
                                      anthropic)
                if isinstance(scripted, Slow):
                    time.sleep(scripted.seconds)
                    text = scripted.text
                elif isinstance(scripted, str):
                    text = scripted
                else:
                    text = fake.responder(fake.prompt_text(body, anthropic=anthropic))
                if anthropic:
                    return self.reply(200, {
                        "id": "msg_fake", "type": "message", "role": "assistant",
                        "model": body.get("model"), "stop_reason": "end_turn",
                        "stop_sequence": None, "content": [{"type": "text", "text": text}],
                        "usage": {"input_tokens": 10, "output_tokens": 10},
                    })
                return self.reply(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                    "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                })

            def error(self, status: int, message: str, kind: str, anthropic: bool) -> None:
                if anthropic:
                    payload = {"type": "error", "error": {"type": kind, "message": message}}
                else:
                    payload = {"error": {"message": message, "type": kind, "code": None}}
                self.reply(status, payload)

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                encoded = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client that timed out closes the socket under a slow answer: expected, not news.
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @staticmethod
    def anthropic_key(headers: Any) -> str | None:
        """Anthropic's clients send ``x-api-key`` (1.x) or ``Authorization: Bearer`` (2.x)."""
        lowered = {str(name).lower(): value for name, value in headers.items()}
        bearer = str(lowered.get("authorization") or "")
        return lowered.get("x-api-key") or bearer.removeprefix("Bearer ") or None

    @staticmethod
    def prompt_text(body: dict[str, Any], *, anthropic: bool) -> str:
        """System prompt and messages as one text, whichever protocol carried them."""
        parts = [str(body.get("system", ""))] if anthropic else []
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(part.get("text", "")) for part in content)
            parts.append(str(content))
        return "\n".join(parts)

    @property
    def url(self) -> str:
        """Root URL (Anthropic's client appends /v1/messages)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def openai_url(self) -> str:
        """OpenAI-style base URL (the client appends /chat/completions)."""
        return f"{self.url}/v1"

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.requests)

    def start(self) -> FakeLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
