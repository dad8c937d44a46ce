"""``GeminiServer``: the Gemini Developer API (``generativelanguage``) served on a local
port, for the real ``google-genai`` client (``fake_gemini_client``).

Served: ``POST /{version}/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:embedContent``, ``:batchEmbedContents`` and
``:countTokens``.
Anything else is a Google-shaped 404.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, TypedDict

from .keys import remember_key
from .provider import DEFAULT_REPLY
from .server import LocalServer, Reply, StreamReply, paced, sse
from .wire import JSON, ReceivedRequest, random_id, split_text

if TYPE_CHECKING:
    from google.genai import Client

DEFAULT_GEMINI_KEY = "AIzaFakeGeminiKey0000000000000000000000"


class GeminiUsage(TypedDict, total=False):
    """``usageMetadata`` counts, by the SDK's (snake case) names. Gemini's own meaning:
    cached ⊂ prompt, thoughts and tool-use prompt next to candidates and prompt."""

    prompt_token_count: int
    cached_content_token_count: int
    candidates_token_count: int
    thoughts_token_count: int
    tool_use_prompt_token_count: int


_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_CAMEL = {
    "prompt_token_count": "promptTokenCount",
    "cached_content_token_count": "cachedContentTokenCount",
    "candidates_token_count": "candidatesTokenCount",
    "thoughts_token_count": "thoughtsTokenCount",
    "tool_use_prompt_token_count": "toolUsePromptTokenCount",
}
_PATH = re.compile(r"^/[^/]+/(?:.+/)?models/([^/:]+):([A-Za-z]+)$")


class GeminiServer(LocalServer):
    """Answers like the Gemini API. Knobs (also mutable attributes): ``reply_text``,
    ``stream_chunks``, ``usage`` (missing counts: small defaults), ``embedding_tokens``,
    ``model_version`` (the served model; default: the requested one), ``omit_usage``,
    ``first_chunk_delay`` / ``chunk_delay`` (seconds before the first / each later chunk;
    a whole reply waits as long as the stream would)."""

    def __init__(
        self,
        *,
        reply_text: str = DEFAULT_REPLY,
        stream_chunks: int = 4,
        usage: GeminiUsage | None = None,
        embedding_tokens: int = 5,
        model_version: str | None = None,
        omit_usage: bool = False,
        first_chunk_delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        self.reply_text = reply_text
        self.stream_chunks = stream_chunks
        self.usage: GeminiUsage = usage or {}
        self.embedding_tokens = embedding_tokens
        self.model_version = model_version
        self.omit_usage = omit_usage
        self.first_chunk_delay = first_chunk_delay
        self.chunk_delay = chunk_delay
        super().__init__()

    def error(self, status: int, message: str | None) -> Reply:
        code = _STATUS.get(status, "UNKNOWN")
        text = message or f"Fake Gemini error ({code})."
        return Reply(status, {"error": {"code": status, "message": text, "status": code}})

    def answer(self, request: ReceivedRequest) -> Reply | StreamReply:
        match = _PATH.match(request.path)
        if match is None or request.method != "POST" or not isinstance(request.body, dict):
            return self.error(404, f"Invalid URL ({request.method} {request.path})")
        model, method = match.groups()
        if method == "generateContent":
            time.sleep(self._whole_delay())
            return Reply(200, self._response(model, self.reply_text, final=True))
        if method == "streamGenerateContent":
            return StreamReply(paced(self._chunks(model), self.first_chunk_delay, self.chunk_delay))
        if method == "batchEmbedContents":
            requests = request.body.get("requests") or []
            return Reply(200, self._embeddings(len(requests)))
        if method == "embedContent":
            body = self._embeddings(1)
            return Reply(200, {"embedding": body["embeddings"][0], **_without(body, "embeddings")})
        if method == "countTokens":  # a call that is not billed: no usage
            return Reply(200, {"totalTokens": self.counts()["prompt_token_count"]})
        return self.error(404, f"Unknown method {method!r}")

    # -- shapes -------------------------------------------------------------------------

    def _whole_delay(self) -> float:
        pieces = len(split_text(self.reply_text, self.stream_chunks))
        return max(0.0, self.first_chunk_delay + self.chunk_delay * (pieces - 1))

    def counts(self) -> dict[str, int]:
        """The usage counts this server reports, defaults filled in."""
        u = self.usage
        counts = {
            "prompt_token_count": u.get("prompt_token_count", 12),
            "candidates_token_count": u.get("candidates_token_count", 8),
        }
        for name in ("cached_content_token_count", "thoughts_token_count"):
            if name in u:
                counts[name] = u[name]
        if "tool_use_prompt_token_count" in u:
            counts["tool_use_prompt_token_count"] = u["tool_use_prompt_token_count"]
        return counts

    def _usage_metadata(self, candidates: int | None = None) -> JSON:
        counts = self.counts()
        if candidates is not None:
            counts["candidates_token_count"] = candidates
        total = sum(v for k, v in counts.items() if k != "cached_content_token_count")
        out: JSON = {_CAMEL[k]: v for k, v in counts.items()}
        out["totalTokenCount"] = total
        out["promptTokensDetails"] = [
            {"modality": "TEXT", "tokenCount": counts["prompt_token_count"]}
        ]
        return out

    def _response(
        self, model: str, text: str, *, final: bool, candidates: int | None = None, rid: str = ""
    ) -> JSON:
        candidate: JSON = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if final:
            candidate["finishReason"] = "STOP"
        body: JSON = {
            "candidates": [candidate],
            "modelVersion": self.model_version or model,
            "responseId": rid or random_id("", 11),
        }
        if not self.omit_usage:
            body["usageMetadata"] = self._usage_metadata(None if final else candidates)
        return body

    def _chunks(self, model: str) -> list[bytes]:
        """The stream: one chunk per piece of the reply, each with Gemini's running usage
        (the prompt counts, and the candidates so far): the last one is the total."""
        pieces = split_text(self.reply_text, self.stream_chunks)
        total_out = self.counts()["candidates_token_count"]
        rid = random_id("", 11)
        events = []
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            so_far = total_out * (index + 1) // len(pieces)
            events.append(sse(self._response(model, piece, final=last, candidates=so_far, rid=rid)))
        return events

    def _embeddings(self, count: int) -> JSON:
        body: JSON = {"embeddings": [{"values": [0.25, -0.5, 0.125]} for _ in range(count)]}
        if not self.omit_usage:
            tokens = self.embedding_tokens
            body["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
        return body


def _without(body: JSON, key: str) -> JSON:
    return {k: v for k, v in body.items() if k != key}


def fake_gemini_client(
    server: GeminiServer, *, api_key: str = DEFAULT_GEMINI_KEY, **http_options: Any
) -> Client:
    """A real ``google.genai.Client`` pointed at ``server`` (both its sync surface and
    ``.aio``). Close it with ``client.close()`` and ``await client.aio.aclose()``."""
    from google import genai
    from google.genai import types

    remember_key(api_key)
    options = types.HttpOptions(base_url=server.url, **http_options)
    return genai.Client(api_key=api_key, http_options=options)
