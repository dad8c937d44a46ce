"""``MistralServer``: Mistral's La Plateforme API served on a local port, for the real
``mistralai`` client (``fake_mistral_client``).

Served: ``POST /v1/chat/completions``, ``/v1/fim/completions``,
``/v1/agents/completions`` (plain, and ``"stream": true`` as server-sent events ending
in ``[DONE]``, usage in the last chunk, as Mistral sends it without being asked) and
``/v1/embeddings``. Anything else is a Mistral-shaped 404.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypedDict

from .keys import remember_key
from .provider import DEFAULT_REPLY
from .server import LocalServer, Reply, StreamReply, paced, sse
from .wire import JSON, ReceivedRequest, random_id, split_text

if TYPE_CHECKING:
    from mistralai.client import Mistral

DEFAULT_MISTRAL_KEY = "fake-mistral-key-0123456789abcdef"


class MistralUsage(TypedDict, total=False):
    """OpenAI-shaped, inclusive: ``cached_tokens`` (``prompt_tokens_details``) ⊂ prompt."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


_ERRORS = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "Unauthorized"),
    404: ("invalid_request_error", "Not found"),
    422: ("invalid_request_error", "Unprocessable entity"),
    429: ("rate_limited", "Requests rate limit exceeded"),
    500: ("internal_server_error", "Internal server error"),
    503: ("service_unavailable", "Service unavailable"),
}
_COMPLETIONS = {
    "/v1/chat/completions": "chat.completion",
    "/v1/fim/completions": "fim.completion",
    "/v1/agents/completions": "chat.completion",
}


class MistralServer(LocalServer):
    """Answers like Mistral's API. Knobs (also mutable attributes): ``reply_text``,
    ``stream_chunks``, ``usage`` (missing counts: small defaults), ``embedding_tokens``,
    ``served_model`` (default: the requested one; an agent call's default is
    ``mistral-medium-latest``), ``omit_usage``, ``first_chunk_delay`` / ``chunk_delay``."""

    def __init__(
        self,
        *,
        reply_text: str = DEFAULT_REPLY,
        stream_chunks: int = 4,
        usage: MistralUsage | None = None,
        embedding_tokens: int = 5,
        served_model: str | None = None,
        omit_usage: bool = False,
        first_chunk_delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        self.reply_text = reply_text
        self.stream_chunks = stream_chunks
        self.usage: MistralUsage = usage or {}
        self.embedding_tokens = embedding_tokens
        self.served_model = served_model
        self.omit_usage = omit_usage
        self.first_chunk_delay = first_chunk_delay
        self.chunk_delay = chunk_delay
        super().__init__()

    def error(self, status: int, message: str | None) -> Reply:
        kind, default = _ERRORS.get(status, ("api_error", "Error"))
        body = {"object": "error", "message": message or default, "type": kind, "param": None}
        return Reply(status, {**body, "code": str(status * 10)})

    def answer(self, request: ReceivedRequest) -> Reply | StreamReply:
        body = request.body
        if request.method != "POST" or not isinstance(body, dict):
            return self.error(404, f"Invalid URL ({request.method} {request.path})")
        model = body.get("model") or ("mistral-medium-latest" if body.get("agent_id") else None)
        if not isinstance(model, str):
            return self.error(422, "model: Field required")
        served = self.served_model or model
        if request.path == "/v1/embeddings":
            return Reply(200, self._embeddings(body, served))
        kind = _COMPLETIONS.get(request.path)
        if kind is None:
            return self.error(404, f"Invalid URL ({request.method} {request.path})")
        if body.get("stream"):
            return StreamReply(
                paced(self._chunks(served), self.first_chunk_delay, self.chunk_delay)
            )
        pieces = len(split_text(self.reply_text, self.stream_chunks))
        time.sleep(max(0.0, self.first_chunk_delay + self.chunk_delay * (pieces - 1)))
        reply: JSON = {
            "id": random_id("cmpl-", 16),
            "object": kind,
            "model": served,
            "created": int(time.time()),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.reply_text,
                        "tool_calls": None,
                    },
                    "finish_reason": "stop",
                }
            ],
        }
        if not self.omit_usage:  # without it the SDK refuses the reply (usage is required)
            reply["usage"] = self._usage()
        return Reply(200, reply)

    def _usage(self) -> JSON:
        u = self.usage
        prompt, out = u.get("prompt_tokens", 12), u.get("completion_tokens", 8)
        usage: JSON = {
            "prompt_tokens": prompt,
            "completion_tokens": out,
            "total_tokens": prompt + out,
        }
        if "cached_tokens" in u:
            usage["prompt_tokens_details"] = {"cached_tokens": u["cached_tokens"]}
        return usage

    def _chunks(self, served: str) -> list[bytes]:
        common: JSON = {"id": random_id("cmpl-", 16), "object": "chat.completion.chunk"}
        common |= {"created": int(time.time()), "model": served}
        pieces = split_text(self.reply_text, self.stream_chunks)
        events = []
        for index, piece in enumerate(pieces):
            delta: JSON = {"content": piece}
            if index == 0:
                delta["role"] = "assistant"
            last = index == len(pieces) - 1
            chunk: JSON = {
                **common,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                ],
            }
            if last and not self.omit_usage:
                chunk["usage"] = self._usage()  # Mistral sends it unasked, with the last delta
            events.append(sse(chunk))
        events.append(sse("[DONE]"))
        return events

    def _embeddings(self, body: JSON, served: str) -> JSON:
        inputs = body.get("input")  # the SDK's `inputs=` goes on the wire as `input`
        count = len(inputs) if isinstance(inputs, list) else 1
        tokens = self.embedding_tokens
        reply: JSON = {
            "id": random_id("embd-", 16),
            "object": "list",
            "model": served,
            "data": [
                {"object": "embedding", "embedding": [0.25, -0.5, 0.125], "index": i}
                for i in range(count)
            ],
        }
        if not self.omit_usage:
            reply["usage"] = {
                "prompt_tokens": tokens,
                "completion_tokens": 0,
                "total_tokens": tokens,
            }
        return reply


def fake_mistral_client(
    server: MistralServer, *, api_key: str = DEFAULT_MISTRAL_KEY, **kwargs: Any
) -> Mistral:
    """A real ``mistralai.client.Mistral`` pointed at ``server`` (``server_url=``)."""
    from mistralai.client import Mistral

    remember_key(api_key)
    return Mistral(api_key=api_key, server_url=server.url, **kwargs)
