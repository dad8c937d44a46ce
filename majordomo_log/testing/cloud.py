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
Claude, a ``prompt`` body as Llama, anything else as Amazon Nova), and Vertex's
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
import urllib.parse
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypedDict

from . import eventstream
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
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeCloud:
        handler = type("_Handler", (_Handler,), {"cloud": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-cloud", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
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
        return f"http://127.0.0.1:{self._server.server_address[1]}"

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

    # -- replies ---------------------------------------------------------------------

    def _next_failure(self) -> CloudFailure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _take_stream_failure(self) -> tuple[int, str, str] | None:
        failure, self._stream_failure = self._stream_failure, None
        return failure

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
        failure = self._take_stream_failure()
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


class _Handler(BaseHTTPRequestHandler):
    cloud: FakeCloud
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the test output is not the place for an access log

    def do_GET(self) -> None:
        self._send_json(
            404, {"message": "Not found"}, {"x-amzn-ErrorType": "UnknownOperationException"}
        )

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("authorization", "").lower().startswith("bearer "):
            remember_sent_keys(headers)  # Vertex's token, a Bedrock API key (not SigV4)
        cloud = self.cloud
        with cloud._lock:
            cloud.requests.append(
                ReceivedRequest(
                    method="POST",
                    path=path,
                    headers=headers,
                    body=parse_json(raw),
                    query=dict(urllib.parse.parse_qsl(parts.query)),
                )
            )
        body = parse_json(raw)
        body = body if isinstance(body, dict) else {}
        bedrock = _BEDROCK_PATH.match(path)
        vertex = _VERTEX_PATH.match(path)
        failure = cloud._next_failure()
        if failure is not None:
            self._send_failure(failure, vertex=vertex is not None)
        elif bedrock:
            self._bedrock(bedrock.group(1), bedrock.group(2), body)
        elif vertex:
            self._vertex(vertex.group(1), vertex.group(2), body)
        else:
            self._send_json(
                404,
                {"message": f"No route for {path}"},
                {"x-amzn-ErrorType": "UnknownOperationException"},
            )

    # -- Bedrock ----------------------------------------------------------------------

    def _bedrock(self, model_id: str, action: str, body: JSON) -> None:
        cloud = self.cloud
        if action == "converse":
            usage = {} if cloud.omit_usage else {"usage": cloud.converse_usage_json()}
            reply = {
                "output": {
                    "message": {"role": "assistant", "content": [{"text": cloud.reply_text}]}
                },
                "stopReason": "end_turn",
                **usage,
                "metrics": {"latencyMs": 42},
            }
            self._send_json(200, reply, _aws_headers())
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
                    for p in cloud._pieces()
                ],
                (eventstream.event("contentBlockStop", {"contentBlockIndex": 0}), False),
                (eventstream.event("messageStop", {"stopReason": "end_turn"}), False),
            ]
            metadata: JSON = {"metrics": {"latencyMs": 42}}
            if not cloud.omit_usage:
                metadata["usage"] = cloud.converse_usage_json()
            items.append((eventstream.event("metadata", metadata), False))
            self._send_stream(
                cloud.paced(items), "application/vnd.amazon.eventstream", _aws_headers()
            )
        elif action == "invoke":
            reply, counts = self._invoke_reply(model_id, body)
            headers = _aws_headers()
            if counts is not None:
                headers["X-Amzn-Bedrock-Input-Token-Count"] = str(counts[0])
                headers["X-Amzn-Bedrock-Output-Token-Count"] = str(counts[1])
            headers["X-Amzn-Bedrock-Invocation-Latency"] = "42"
            self._send_json(200, reply, headers)
        else:  # invoke-with-response-stream: Claude events in base64 chunks
            events = cloud.claude_events(model_id)
            if not cloud.omit_usage:
                usage = cloud.anthropic_usage_json()
                events[-1][0]["amazon-bedrock-invocationMetrics"] = {
                    "inputTokenCount": usage["input_tokens"],
                    "outputTokenCount": usage["output_tokens"],
                    "invocationLatency": 42,
                    "firstByteLatency": 7,
                }
            chunks = [(eventstream.chunk_event(e), content) for e, content in events]
            self._send_stream(
                cloud.paced(chunks), "application/vnd.amazon.eventstream", _aws_headers()
            )

    def _invoke_reply(self, model_id: str, body: JSON) -> tuple[JSON, tuple[int, int] | None]:
        cloud = self.cloud
        if "anthropic_version" in body:
            message = cloud.claude_message(
                model_id, [{"type": "text", "text": cloud.reply_text}], True
            )
            usage = message.get("usage")
            counts = None if usage is None else (usage["input_tokens"], usage["output_tokens"])
            return message, counts
        u = cloud.converse_usage_json()
        counts = (u["inputTokens"], u["outputTokens"])
        if "prompt" in body:  # Meta Llama's native format
            reply: JSON = {"generation": cloud.reply_text, "stop_reason": "stop"}
            if not cloud.omit_usage:
                reply["prompt_token_count"] = counts[0]
                reply["generation_token_count"] = counts[1]
            return reply, None if cloud.omit_usage else counts
        reply = {  # Amazon Nova's native format
            "output": {"message": {"role": "assistant", "content": [{"text": cloud.reply_text}]}},
            "stopReason": "end_turn",
        }
        if not cloud.omit_usage:
            reply["usage"] = {
                "inputTokens": counts[0],
                "outputTokens": counts[1],
                "totalTokens": counts[0] + counts[1],
                "cacheReadInputTokenCount": u.get("cacheReadInputTokens", 0),
                "cacheWriteInputTokenCount": u.get("cacheWriteInputTokens", 0),
            }
        return reply, None if cloud.omit_usage else counts

    # -- Vertex -----------------------------------------------------------------------

    def _vertex(self, model: str, action: str, body: JSON) -> None:
        cloud = self.cloud
        if action == "rawPredict":
            message = cloud.claude_message(
                model, [{"type": "text", "text": cloud.reply_text}], True
            )
            self._send_json(200, message, {"request-id": "req_vrtx_" + secrets.token_hex(8)})
            return
        items = [
            (f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode(), content)
            for e, content in cloud.claude_events(model)
        ]
        self._send_stream(
            cloud.paced(items),
            "text/event-stream",
            {"request-id": "req_vrtx_" + secrets.token_hex(8)},
        )

    # -- HTTP -------------------------------------------------------------------------

    def _send_failure(self, failure: CloudFailure, *, vertex: bool) -> None:
        if vertex:
            payload: JSON = {
                "type": "error",
                "error": {"type": failure.code, "message": failure.message},
            }
            self._send_json(failure.status, payload, {})
            return
        headers = _aws_headers()
        headers["x-amzn-ErrorType"] = (
            f"{failure.code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        )
        self._send_json(failure.status, {"message": failure.message}, headers)

    def _send_json(self, status: int, payload: JSON, headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(
        self, chunks: Iterator[bytes], content_type: str, headers: dict[str, str]
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for data in chunks:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client closed the stream early
            self.close_connection = True


def _aws_headers() -> dict[str, str]:
    return {"x-amzn-RequestId": _uuid()}


def _uuid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
