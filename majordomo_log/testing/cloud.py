"""``FakeCloud``: a real HTTP server on 127.0.0.1 that answers like AWS Bedrock Runtime
and like Google Vertex AI's Anthropic endpoints, for tests of the clients that reach
models through a cloud: boto3 / aioboto3 ``bedrock-runtime``, ``anthropic.AnthropicBedrock``
and ``anthropic.AnthropicVertex`` (sync and async).

A real server rather than a transport: botocore and aiobotocore bring their own HTTP
stacks (urllib3, aiohttp), and their request signing, retries, response parsing and
event-stream decoding should all run as in production::

    with FakeCloud() as cloud:
        client = bedrock_client(cloud)  # boto3, with test credentials
        client.converse(modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0", messages=[...])
        assert cloud.requests[-1].path.endswith("/converse")

Served (POST): ``/model/{modelId}/converse``, ``/converse-stream``, ``/invoke`` and
``/invoke-with-response-stream`` (an Anthropic ``anthropic_version`` body answers as
Claude, a ``prompt`` body as Llama, or as Mistral for a ``mistral.`` model, whose body has
no usage, only the token-count headers; anything else as Amazon Nova), and Vertex's
``/v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict`` and
``:streamRawPredict`` (server-sent events). Streams of Bedrock are AWS event-stream
frames (``testing/eventstream.py``). Client constructors: ``testing/cloud_clients.py``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TypedDict

from . import eventstream
from .cloud_http import LocalServer, Reply, Request
from .keys import remember_sent_keys
from .provider import DEFAULT_REPLY
from .wire import JSON, AnthropicUsage, ReceivedRequest, parse_json, split_text


class ConverseUsage(TypedDict, total=False):
    """Bedrock Converse usage: additive (``inputTokens`` excludes cache reads and writes)."""

    inputTokens: int
    outputTokens: int
    cacheReadInputTokens: int
    cacheWriteInputTokens: int


@dataclass(frozen=True)
class CloudFailure:
    status: int
    code: str  # AWS error code (``ThrottlingException``), or Anthropic error type (Vertex)
    message: str


_BEDROCK_PATH = re.compile(
    r"^/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)$"
)
_VERTEX_PATH = re.compile(
    r"^/v1/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)$"
)
_GEO_PREFIX = re.compile(r"^(?:[a-z-]+\.)?anthropic\.")


class FakeCloud:
    """Knobs (mutable attributes, as ``FakeProvider``'s): ``reply_text``, ``stream_chunks``,
    ``converse_usage``, ``anthropic_usage`` (Claude through ``invoke`` and Vertex),
    ``served_model`` (the ``model`` of a Claude reply; by default the requested id without
    its region prefix and version), ``omit_usage``, ``first_chunk_delay``, ``chunk_delay``.
    ``fail_next()`` queues error answers; ``fail_stream_after()`` ends the next stream with
    an exception event after some events."""

    def __init__(
        self,
        *,
        reply_text: str = DEFAULT_REPLY,
        stream_chunks: int = 4,
        converse_usage: ConverseUsage | None = None,
        anthropic_usage: AnthropicUsage | None = None,
        served_model: str | None = None,
        omit_usage: bool = False,
        first_chunk_delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        self.reply_text = reply_text
        self.stream_chunks = stream_chunks
        self.converse_usage: ConverseUsage = converse_usage or {}
        self.anthropic_usage: AnthropicUsage = anthropic_usage or {}
        self.served_model = served_model
        self.omit_usage = omit_usage
        self.first_chunk_delay = first_chunk_delay
        self.chunk_delay = chunk_delay
        self.requests: list[ReceivedRequest] = []
        self._failures: deque[CloudFailure] = deque()
        self._stream_failure: tuple[int, str, str] | None = None
        self._lock = threading.Lock()
        self._server: LocalServer | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeCloud:
        self._server = LocalServer(self.handle)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> FakeCloud:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the ``endpoint_url`` / ``base_url`` to give a client."""
        assert self._server is not None, "FakeCloud is not started"
        return f"http://127.0.0.1:{self._server.port}"

    # -- knobs -----------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 400,
        code: str = "ValidationException",
        message: str = "The provided model identifier is invalid.",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with an error (AWS-shaped for Bedrock,
        Anthropic-shaped for Vertex). botocore retries 429/5xx and throttling codes:
        give the client ``retries={"total_max_attempts": 1}`` to see the first."""
        with self._lock:
            self._failures.extend(CloudFailure(status, code, message) for _ in range(times))

    def fail_stream_after(
        self,
        events: int,
        exception: str = "throttlingException",
        message: str = "Too many tokens, please wait before trying again.",
    ) -> None:
        """End the next stream with an exception event after ``events`` events."""
        self._stream_failure = (events, exception, message)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()
        self._stream_failure = None

    # -- routing ---------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """The server's app: record the request, then answer it."""
        if request.headers.get("authorization", "").lower().startswith("bearer "):
            remember_sent_keys(request.headers)  # Vertex's token, a Bedrock API key (not SigV4)
        parsed = parse_json(request.body)
        body: JSON = parsed if isinstance(parsed, dict) else {}
        with self._lock:
            self.requests.append(
                ReceivedRequest(
                    method=request.method,
                    path=request.path,
                    headers=request.headers,
                    body=parsed,
                    query=request.query,
                )
            )
            failure = self._failures.popleft() if self._failures else None
        bedrock = _BEDROCK_PATH.match(request.path)
        vertex = _VERTEX_PATH.match(request.path)
        if request.method != "POST" or not (bedrock or vertex):
            return Reply(
                404,
                {"message": f"No route for {request.method} {request.path}"},
                headers={"x-amzn-ErrorType": "UnknownOperationException", **_aws_headers()},
            )
        if failure is not None:
            return self._failure(failure, vertex=vertex is not None)
        if vertex:
            return self._vertex(vertex.group(1), vertex.group(2))
        assert bedrock is not None
        return self._bedrock(bedrock.group(1), bedrock.group(2), body)

    def _failure(self, failure: CloudFailure, *, vertex: bool) -> Reply:
        if vertex:
            error = {"type": failure.code, "message": failure.message}
            return Reply(failure.status, {"type": "error", "error": error})
        headers = _aws_headers()
        headers["x-amzn-ErrorType"] = (
            f"{failure.code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        )
        return Reply(failure.status, {"message": failure.message}, headers=headers)

    # -- replies ---------------------------------------------------------------------

    def _pieces(self) -> list[str]:
        return split_text(self.reply_text, self.stream_chunks)

    def claude_name(self, model_id: str) -> str:
        """The ``model`` a Claude reply names: Anthropic's own name for the model."""
        if self.served_model is not None:
            return self.served_model
        name = _GEO_PREFIX.sub("", model_id)
        name = re.sub(r"-v\d+(:\d+)?$", "", name)
        return name.replace("@", "-")

    def converse_usage_json(self) -> JSON:
        u = self.converse_usage
        usage: JSON = {
            "inputTokens": u.get("inputTokens", 25),
            "outputTokens": u.get("outputTokens", 9),
        }
        if "cacheReadInputTokens" in u:
            usage["cacheReadInputTokens"] = u["cacheReadInputTokens"]
        if "cacheWriteInputTokens" in u:
            usage["cacheWriteInputTokens"] = u["cacheWriteInputTokens"]
        usage["totalTokens"] = sum(v for v in usage.values())
        return usage

    def anthropic_usage_json(self, output_tokens: int | None = None) -> JSON:
        u = self.anthropic_usage
        c5m, c1h = u.get("cache_creation_5m", 0), u.get("cache_creation_1h", 0)
        return {
            "input_tokens": u.get("input_tokens", 25),
            "cache_creation_input_tokens": c5m + c1h,
            "cache_read_input_tokens": u.get("cache_read_input_tokens", 0),
            "cache_creation": {"ephemeral_5m_input_tokens": c5m, "ephemeral_1h_input_tokens": c1h},
            "output_tokens": u.get("output_tokens", 9) if output_tokens is None else output_tokens,
        }

    def claude_message(self, model_id: str, content: list[JSON], done: bool) -> JSON:
        message: JSON = {
            "id": "msg_bdrk_" + secrets.token_hex(11),
            "type": "message",
            "role": "assistant",
            "model": self.claude_name(model_id),
            "content": content,
            "stop_reason": "end_turn" if done else None,
            "stop_sequence": None,
        }
        if not self.omit_usage:
            message["usage"] = self.anthropic_usage_json(None if done else 1)
        return message

    def claude_events(self, model_id: str) -> list[tuple[JSON, bool]]:
        """A Claude stream's events, each with whether it carries content (is paced)."""
        delta: JSON = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        if not self.omit_usage:
            delta["usage"] = {"output_tokens": self.anthropic_usage_json()["output_tokens"]}
        return [
            ({"type": "message_start", "message": self.claude_message(model_id, [], False)}, False),
            (
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                False,
            ),
            *[
                (
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": p},
                    },
                    True,
                )
                for p in self._pieces()
            ],
            ({"type": "content_block_stop", "index": 0}, False),
            (delta, False),
            ({"type": "message_stop"}, False),
        ]

    def paced(self, items: list[tuple[bytes, bool]]) -> Iterator[bytes]:
        """Each encoded event after its delay; an exception event where one was asked for."""
        failure, self._stream_failure = self._stream_failure, None
        first = True
        for index, (data, is_content) in enumerate(items):
            if failure is not None and index == failure[0]:
                yield eventstream.exception_event(failure[1], failure[2])
                return
            if is_content:
                delay = self.first_chunk_delay if first else self.chunk_delay
                first = False
                if delay:
                    time.sleep(delay)
            yield data

    def _bedrock(self, model_id: str, action: str, body: JSON) -> Reply:
        if action == "converse":
            usage = {} if self.omit_usage else {"usage": self.converse_usage_json()}
            reply = {
                "output": {
                    "message": {"role": "assistant", "content": [{"text": self.reply_text}]}
                },
                "stopReason": "end_turn",
                **usage,
                "metrics": {"latencyMs": 42},
            }
            return Reply(json=reply, headers=_aws_headers())
        elif action == "converse-stream":
            items: list[tuple[bytes, bool]] = [
                (eventstream.event("messageStart", {"role": "assistant"}), False),
                *[
                    (
                        eventstream.event(
                            "contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": 0}
                        ),
                        True,
                    )
                    for p in self._pieces()
                ],
                (eventstream.event("contentBlockStop", {"contentBlockIndex": 0}), False),
                (eventstream.event("messageStop", {"stopReason": "end_turn"}), False),
            ]
            metadata: JSON = {"metrics": {"latencyMs": 42}}
            if not self.omit_usage:
                metadata["usage"] = self.converse_usage_json()
            items.append((eventstream.event("metadata", metadata), False))
            return _event_stream(self.paced(items))
        elif action == "invoke":
            reply, counts = self._invoke_reply(model_id, body)
            headers = _aws_headers()
            if counts is not None:
                headers["X-Amzn-Bedrock-Input-Token-Count"] = str(counts[0])
                headers["X-Amzn-Bedrock-Output-Token-Count"] = str(counts[1])
            headers["X-Amzn-Bedrock-Invocation-Latency"] = "42"
            return Reply(json=reply, headers=headers)
        else:  # invoke-with-response-stream: Claude events in base64 chunks
            events = self.claude_events(model_id)
            if not self.omit_usage:
                usage = self.anthropic_usage_json()
                events[-1][0]["amazon-bedrock-invocationMetrics"] = {
                    "inputTokenCount": usage["input_tokens"],
                    "outputTokenCount": usage["output_tokens"],
                    "invocationLatency": 42,
                    "firstByteLatency": 7,
                }
            chunks = [(eventstream.chunk_event(e), content) for e, content in events]
            return _event_stream(self.paced(chunks))

    def _invoke_reply(self, model_id: str, body: JSON) -> tuple[JSON, tuple[int, int] | None]:
        if "anthropic_version" in body:
            message = self.claude_message(
                model_id, [{"type": "text", "text": self.reply_text}], True
            )
            usage = message.get("usage")
            counts = None if usage is None else (usage["input_tokens"], usage["output_tokens"])
            return message, counts
        u = self.converse_usage_json()
        counts = (u["inputTokens"], u["outputTokens"])
        reply: JSON
        if "prompt" in body and "mistral." in model_id:  # Mistral's: no usage in the body
            reply = {"outputs": [{"text": self.reply_text, "stop_reason": "stop"}]}
            return reply, None if self.omit_usage else counts
        if "prompt" in body:  # Meta Llama's native format
            reply = {"generation": self.reply_text, "stop_reason": "stop"}
            if not self.omit_usage:
                reply["prompt_token_count"] = counts[0]
                reply["generation_token_count"] = counts[1]
            return reply, None if self.omit_usage else counts
        reply = {  # Amazon Nova's native format
            "output": {"message": {"role": "assistant", "content": [{"text": self.reply_text}]}},
            "stopReason": "end_turn",
        }
        if not self.omit_usage:
            reply["usage"] = {
                "inputTokens": counts[0],
                "outputTokens": counts[1],
                "totalTokens": counts[0] + counts[1],
                "cacheReadInputTokenCount": u.get("cacheReadInputTokens", 0),
                "cacheWriteInputTokenCount": u.get("cacheWriteInputTokens", 0),
            }
        return reply, None if self.omit_usage else counts

    def _vertex(self, model: str, action: str) -> Reply:
        if action == "rawPredict":
            content = [{"type": "text", "text": self.reply_text}]
            return Reply(json=self.claude_message(model, content, True))
        items = [
            (f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode(), is_content)
            for e, is_content in self.claude_events(model)
        ]
        return Reply(stream=self.paced(items), content_type="text/event-stream")


def _event_stream(chunks: Iterator[bytes]) -> Reply:
    return Reply(
        stream=chunks, content_type="application/vnd.amazon.eventstream", headers=_aws_headers()
    )


def _aws_headers() -> dict[str, str]:
    return {"x-amzn-RequestId": _uuid()}


def _uuid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
