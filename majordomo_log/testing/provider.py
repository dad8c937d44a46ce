"""``FakeProvider``: an httpx2 transport that answers like the OpenAI and Anthropic APIs,
records each request, and serves queued errors and paced streams."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar

import httpx2

from .keys import remember_sent_keys
from .wire import (
    ENDPOINT_PATH,
    JSON,
    AnthropicUsage,
    Failure,
    OpenAIUsage,
    ReceivedRequest,
    ResponsesUsage,
    SseEvent,
    anthropic_headers,
    error_response,
    openai_headers,
    parse_json,
    random_id,
    split_text,
    typed_event,
)

# Set while a sync client's request is answered: its stream must be a plain iterator.
_blocking: ContextVar[bool] = ContextVar("fake_provider_blocking", default=False)
DEFAULT_REPLY = "Hello from the fake provider! This reply is canned."
_FINGERPRINT = "fp_fake0000"


class FakeProvider:
    """Serves provider-shaped HTTP in-process; pass ``provider.transport`` to an httpx2 client.

    Every knob is also a mutable attribute:

    - ``reply_text`` / ``stream_chunks``: the canned reply and how many content deltas a
      stream splits it into.
    - ``openai_usage`` (chat; also Responses unless ``responses_usage`` is set),
      ``responses_usage``, ``anthropic_usage``, ``embedding_tokens``: reported usage.
      Missing keys fall back to small defaults.
    - ``served_model`` replaces the model echoed back; ``model_suffix`` is appended to the
      requested one (e.g. ``"-2024-07-18"``).
    - ``omit_usage``: leave usage out everywhere. Anthropic's ``messages.stream()`` helper
      cannot accumulate such a stream (an SDK limitation); raw ``stream=True`` works.
    - ``first_chunk_delay`` / ``chunk_delay``: seconds before the first / each later content
      delta. Non-streaming replies wait as long as the whole stream would.
    - ``embedding_dimensions``: vector length when the request has no ``dimensions``.
    - ``service_tier``: the ``service_tier`` OpenAI responses and chunks report (``"default"``
      when None); Anthropic's is ``anthropic_usage["service_tier"]``.
    - ``web_search_calls``: how many ``web_search_call`` items a Responses output starts with
      (Anthropic: ``anthropic_usage["web_search_requests"]``).
    """

    def __init__(
        self,
        *,
        reply_text: str = DEFAULT_REPLY,
        stream_chunks: int = 4,
        openai_usage: OpenAIUsage | None = None,
        responses_usage: ResponsesUsage | None = None,
        anthropic_usage: AnthropicUsage | None = None,
        embedding_tokens: int = 5,
        embedding_dimensions: int = 8,
        served_model: str | None = None,
        model_suffix: str = "",
        omit_usage: bool = False,
        chunk_delay: float = 0.0,
        first_chunk_delay: float = 0.0,
        service_tier: str | None = None,
        web_search_calls: int = 0,
    ) -> None:
        self.reply_text = reply_text
        self.stream_chunks = stream_chunks
        self.openai_usage: OpenAIUsage = openai_usage or {}
        # None: report the same numbers as chat completions.
        self.responses_usage = responses_usage
        self.anthropic_usage: AnthropicUsage = anthropic_usage or {}
        self.embedding_tokens = embedding_tokens
        self.embedding_dimensions = embedding_dimensions
        self.served_model = served_model
        self.model_suffix = model_suffix
        self.omit_usage = omit_usage
        self.chunk_delay = chunk_delay
        self.first_chunk_delay = first_chunk_delay
        self.service_tier = service_tier
        self.web_search_calls = web_search_calls
        self.requests: list[ReceivedRequest] = []
        self._failures: deque[Failure] = deque()
        self._endpoints: dict[str, Callable[[JSON], httpx2.Response]] = {
            "/chat/completions": self._chat_completions,
            "/responses": self._responses,
            "/embeddings": self._embeddings,
            "/messages": self._messages,
        }
        self.transport = httpx2.MockTransport(self._handle)
        # For sync clients (openai.OpenAI, anthropic.Anthropic): same answers, blocking.
        self.sync_transport = httpx2.MockTransport(self._handle_sync)

    def fail_next(
        self,
        status: int = 429,
        times: int = 1,
        *,
        message: str | None = None,
        retry_after_ms: int | None = 1,
    ) -> None:
        """Answer the next `times` requests with a provider-shaped error.

        `retry-after-ms` is honoured by both SDKs, so a small value keeps retry tests fast.
        """
        self._failures.extend(Failure(status, message, retry_after_ms) for _ in range(times))

    def reset(self) -> None:
        self.requests.clear()
        self._failures.clear()

    # -- dispatch ---------------------------------------------------------------------

    async def _handle(self, request: httpx2.Request) -> httpx2.Response:
        delay, respond = self._dispatch(request)
        if delay > 0:
            await asyncio.sleep(delay)
        return respond()

    def _handle_sync(self, request: httpx2.Request) -> httpx2.Response:
        token = _blocking.set(True)  # streams are paced with time.sleep
        try:
            delay, respond = self._dispatch(request)
            if delay > 0:
                time.sleep(delay)
            return respond()
        finally:
            _blocking.reset(token)

    def _dispatch(self, request: httpx2.Request) -> tuple[float, Callable[[], httpx2.Response]]:
        """(seconds to wait first, how to answer) for a request."""
        body = parse_json(request.content)
        path = request.url.path
        remember_sent_keys(request.headers)
        self.requests.append(
            ReceivedRequest(
                method=request.method,
                path=path,
                headers=dict(request.headers),
                body=body,
                query=dict(request.url.params),
            )
        )
        anthropic = "anthropic-version" in request.headers or path.startswith("/v1/messages")
        if self._failures:
            failure = self._failures.popleft()
            error = error_response(
                failure.status, anthropic, failure.message, failure.retry_after_ms
            )
            return 0.0, lambda: error

        match = ENDPOINT_PATH.match(path)
        handler = self._endpoints.get(match.group(1)) if match else None
        if handler is None or request.method != "POST":
            error = error_response(404, anthropic, f"Invalid URL ({request.method} {path})")
            return 0.0, lambda: error
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            error = error_response(400, anthropic, "model: Field required")
            return 0.0, lambda: error
        delay = 0.0
        if not body.get("stream"):
            # A non-streaming reply takes as long as the whole stream would have.
            delay = self.first_chunk_delay + self.chunk_delay * (len(self._pieces()) - 1)
        return delay, lambda: handler(body)

    def _model(self, body: JSON) -> str:
        return self.served_model or f"{body['model']}{self.model_suffix}"

    def _pieces(self) -> list[str]:
        return split_text(self.reply_text, self.stream_chunks)

    async def _paced(self, events: list[SseEvent]) -> AsyncIterator[bytes]:
        first = True
        for event in events:
            if event.is_content:
                delay = self.first_chunk_delay if first else self.chunk_delay
                first = False
                if delay > 0:
                    await asyncio.sleep(delay)
            data = event.data if isinstance(event.data, str) else json.dumps(event.data)
            prefix = f"event: {event.name}\n" if event.name else ""
            yield f"{prefix}data: {data}\n\n".encode()

    def _paced_sync(self, events: list[SseEvent]) -> Iterator[bytes]:
        first = True
        for event in events:
            if event.is_content:
                delay = self.first_chunk_delay if first else self.chunk_delay
                first = False
                if delay > 0:
                    time.sleep(delay)
            data = event.data if isinstance(event.data, str) else json.dumps(event.data)
            prefix = f"event: {event.name}\n" if event.name else ""
            yield f"{prefix}data: {data}\n\n".encode()

    def _sse(self, events: list[SseEvent], anthropic: bool) -> httpx2.Response:
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        headers.update(anthropic_headers() if anthropic else openai_headers())
        content = self._paced_sync(events) if _blocking.get() else self._paced(events)
        return httpx2.Response(200, headers=headers, content=content)

    # -- OpenAI chat completions ---------------------------------------------------------

    def _chat_usage(self) -> JSON:
        u = self.openai_usage
        prompt, completion = u.get("prompt_tokens", 12), u.get("completion_tokens", 8)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {
                "cached_tokens": u.get("cached_tokens", 0),
                "audio_tokens": u.get("audio_tokens", 0),
            },
            "completion_tokens_details": {
                "reasoning_tokens": u.get("reasoning_tokens", 0),
                "audio_tokens": u.get("completion_audio_tokens", 0),
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _chat_completions(self, body: JSON) -> httpx2.Response:
        common = {
            "id": random_id("chatcmpl-"),
            "created": int(time.time()),
            "model": self._model(body),
            "service_tier": self.service_tier or "default",
            "system_fingerprint": _FINGERPRINT,
        }
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return self._sse(self._chat_chunks(common, include_usage), anthropic=False)
        message: JSON = {
            "role": "assistant",
            "content": self.reply_text,
            "refusal": None,
            "annotations": [],
        }
        payload: JSON = {
            **common,
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
        }
        if not self.omit_usage:
            payload["usage"] = self._chat_usage()
        return httpx2.Response(200, json=payload, headers=openai_headers())

    def _chat_chunks(self, common: JSON, include_usage: bool) -> list[SseEvent]:
        send_usage = include_usage and not self.omit_usage

        def chunk(delta: JSON, finish_reason: str | None = None, content: bool = False) -> SseEvent:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            data: JSON = {**common, "object": "chat.completion.chunk", "choices": [choice]}
            if send_usage:
                data["usage"] = None  # the real API nulls usage on every chunk but the last
            return SseEvent(None, data, is_content=content)

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}, content=True) for piece in self._pieces()]
        events.append(chunk({}, finish_reason="stop"))
        if send_usage:
            usage_chunk = {**common, "object": "chat.completion.chunk", "choices": []}
            events.append(SseEvent(None, {**usage_chunk, "usage": self._chat_usage()}))
        events.append(SseEvent(None, "[DONE]"))
        return events

    # -- OpenAI responses ---------------------------------------------------------------

    def _responses_usage(self) -> JSON:
        if self.responses_usage is not None:
            u = self.responses_usage
            inp, cached = u.get("input_tokens", 12), u.get("cached_tokens", 0)
            out, reasoning = u.get("output_tokens", 8), u.get("reasoning_tokens", 0)
        else:
            o = self.openai_usage
            inp, cached = o.get("prompt_tokens", 12), o.get("cached_tokens", 0)
            out, reasoning = o.get("completion_tokens", 8), o.get("reasoning_tokens", 0)
        return {
            "input_tokens": inp,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inp + out,
        }

    def _response_object(self, rid: str, body: JSON, created: int, output: list[JSON]) -> JSON:
        done = bool(output)
        return {
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": "completed" if done else "in_progress",
            "completed_at": int(time.time()) if done else None,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self._model(body),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": self.service_tier or "default",
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": self._responses_usage() if done and not self.omit_usage else None,
            "user": None,
            "metadata": {},
        }

    def _responses(self, body: JSON) -> httpx2.Response:
        rid, mid, created = random_id("resp_", 24), random_id("msg_", 24), int(time.time())
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": self.reply_text}
        item = {"id": mid, "type": "message", "status": "completed", "role": "assistant"}
        searches: list[JSON] = [
            {
                "id": random_id("ws_", 24),
                "type": "web_search_call",
                "status": "completed",
                "action": {"type": "search", "query": f"query {n}"},
            }
            for n in range(self.web_search_calls)
        ]
        final = self._response_object(rid, body, created, [*searches, {**item, "content": [part]}])
        if not body.get("stream"):
            return httpx2.Response(200, json=final, headers=openai_headers())

        started = self._response_object(rid, body, created, [])
        index = len(searches)  # the message follows the web search calls
        at: JSON = {"item_id": mid, "output_index": index, "content_index": 0}
        events = [
            typed_event("response.created", response=started),
            typed_event("response.in_progress", response=started),
            typed_event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            ),
            typed_event("response.content_part.added", **at, part={**part, "text": ""}),
            *[
                typed_event("response.output_text.delta", True, **at, delta=piece, logprobs=[])
                for piece in self._pieces()
            ],
            typed_event("response.output_text.done", **at, text=self.reply_text, logprobs=[]),
            typed_event("response.content_part.done", **at, part=part),
            typed_event(
                "response.output_item.done", output_index=index, item=final["output"][index]
            ),
            typed_event("response.completed", response=final),
        ]
        for seq, event in enumerate(events):
            assert isinstance(event.data, dict)
            event.data["sequence_number"] = seq
        return self._sse(events, anthropic=False)

    # -- OpenAI embeddings --------------------------------------------------------------

    def _embeddings(self, body: JSON) -> httpx2.Response:
        inputs = body.get("input")
        # A string or a flat token list is one input; any other list is a batch.
        count = (
            len(inputs)
            if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int)
            else 1
        )
        dims = int(body.get("dimensions") or self.embedding_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index in range(count):
            # Multiples of 1/16 survive the float32 round trip, so both encodings agree exactly.
            vector = [((index + j) % 16 + 1) / 16 for j in range(dims)]
            encoded: list[float] | str = vector
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        payload: JSON = {"object": "list", "data": data, "model": self._model(body)}
        if not self.omit_usage:
            tokens = self.embedding_tokens
            payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return httpx2.Response(200, json=payload, headers=openai_headers())

    # -- Anthropic messages -------------------------------------------------------------

    def _anthropic_usage(self, output_tokens: int | None = None) -> JSON:
        u = self.anthropic_usage
        c5m, c1h = u.get("cache_creation_5m", 0), u.get("cache_creation_1h", 0)
        usage: JSON = {
            "input_tokens": u.get("input_tokens", 25),
            "cache_creation_input_tokens": c5m + c1h,
            "cache_read_input_tokens": u.get("cache_read_input_tokens", 0),
            "cache_creation": {"ephemeral_5m_input_tokens": c5m, "ephemeral_1h_input_tokens": c1h},
            "output_tokens": u.get("output_tokens", 9) if output_tokens is None else output_tokens,
            "service_tier": u.get("service_tier", "standard"),
        }
        if "speed" in u:
            usage["speed"] = u["speed"]
        if "web_search_requests" in u:
            usage["server_tool_use"] = {
                "web_search_requests": u["web_search_requests"],
                "web_fetch_requests": 0,
            }
        return usage

    def _anthropic_message(self, body: JSON, content: list[JSON], done: bool) -> JSON:
        message: JSON = {
            "id": "msg_01" + secrets.token_hex(11),
            "type": "message",
            "role": "assistant",
            "model": self._model(body),
            "content": content,
            "stop_reason": "end_turn" if done else None,
            "stop_sequence": None,
        }
        if not self.omit_usage:
            # A stream's message_start reports output_tokens=1; message_delta has the total.
            message["usage"] = self._anthropic_usage(None if done else 1)
        return message

    def _messages(self, body: JSON) -> httpx2.Response:
        if body.get("max_tokens") is None:
            return error_response(400, True, "max_tokens: Field required")
        if not body.get("stream"):
            message = self._anthropic_message(
                body, [{"type": "text", "text": self.reply_text}], True
            )
            return httpx2.Response(200, json=message, headers=anthropic_headers())

        delta: JSON = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        if not self.omit_usage:
            # Cumulative totals; the real API repeats the input and cache counts here.
            usage = self._anthropic_usage().items()
            # (server tool use is cumulative too; the tier is only in message_start's usage)
            delta["usage"] = {
                k: v for k, v in usage if k.endswith("tokens") or k == "server_tool_use"
            }
        text_block = {"type": "text", "text": ""}
        events = [
            typed_event("message_start", message=self._anthropic_message(body, [], False)),
            typed_event("content_block_start", index=0, content_block=text_block),
            typed_event("ping"),
            *[
                typed_event(
                    "content_block_delta", True, index=0, delta={"type": "text_delta", "text": p}
                )
                for p in self._pieces()
            ],
            typed_event("content_block_stop", index=0),
            SseEvent("message_delta", delta),
            typed_event("message_stop"),
        ]
        return self._sse(events, anthropic=True)
