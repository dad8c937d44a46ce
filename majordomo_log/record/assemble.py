"""Background: the chunks of a stream become one response and one usage.

The stream wrappers (``capture/streams.py``) only keep the chunks; this runs in the
writer's worker thread, when the record is priced.
"""

from __future__ import annotations

import json
from typing import Any

from .bedrock import OPERATIONS as BEDROCK_OPERATIONS
from .bedrock import assemble_bedrock, is_botocore_result
from .sdk_shapes import ASSEMBLERS
from .usage import field_of


class Assembled:
    """What the chunks of one stream add up to. Starts as the record's own values,
    which a stream may leave as they are (a stream with no usage chunk)."""

    __slots__ = (
        "error_message",
        "error_type",
        "response",
        "served_model",
        "service_tier",
        "status",
        "usage",
    )

    def __init__(self, status: str, usage: Any, served_model: str | None) -> None:
        self.response: Any = None
        self.usage = usage
        self.served_model = served_model
        self.status = status
        self.error_type: str | None = None
        self.error_message: str | None = None
        # A chat stream's service tier (each chunk has it): kept for pricing, not put in
        # the assembled response, which the stored body is.
        self.service_tier: str | None = None


def assemble_stream(operation: str, chunks: list[Any], into: Assembled) -> Assembled:
    """Worker thread: the response, usage and served model of a stream's chunks; the
    status too, for a Responses stream that ended normally but failed."""
    if operation == "chat.completions":
        _assemble_chat(into, chunks)
    elif operation == "responses":
        _assemble_responses(into, chunks)
    elif operation == "messages":
        _assemble_messages(into, chunks)
    elif operation in BEDROCK_OPERATIONS and is_botocore_result(chunks):
        assemble_bedrock(operation, chunks, into)  # botocore's dicts (record/bedrock.py)
    elif operation in ASSEMBLERS:  # google-genai, mistralai, LiteLLM (record/sdk_shapes.py)
        ASSEMBLERS[operation](into, chunks)
    else:
        into.response = {"chunks": [_dump(c) for c in chunks]}
        for chunk in chunks:
            into.usage = getattr(chunk, "usage", None) or into.usage
    return into


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", warnings=False) if callable(dump) else value


def _assemble_chat(into: Assembled, chunks: list[Any]) -> None:
    choices: dict[int, dict[str, Any]] = {}
    head: Any = None
    for chunk in chunks:
        head = head or chunk
        into.served_model = getattr(chunk, "model", None) or into.served_model
        tier = getattr(chunk, "service_tier", None)
        if isinstance(tier, str):
            into.service_tier = tier
        if getattr(chunk, "usage", None) is not None:
            into.usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or ():
            slot = choices.setdefault(
                choice.index,
                {
                    "index": choice.index,
                    "role": None,
                    "content": [],
                    "tool_calls": {},
                    "finish_reason": None,
                },
            )
            delta = choice.delta
            if delta is not None:
                slot["role"] = delta.role or slot["role"]
                if delta.content:
                    slot["content"].append(delta.content)
                for call in delta.tool_calls or ():
                    tool = slot["tool_calls"].setdefault(
                        call.index, {"id": None, "type": "function", "name": "", "arguments": ""}
                    )
                    tool["id"] = call.id or tool["id"]
                    if call.function is not None:
                        tool["name"] += call.function.name or ""
                        tool["arguments"] += call.function.arguments or ""
            slot["finish_reason"] = choice.finish_reason or slot["finish_reason"]
    into.response = {
        "id": getattr(head, "id", None),
        "object": "chat.completion",
        "model": into.served_model,
        "choices": [
            {
                "index": slot["index"],
                "message": {
                    "role": slot["role"] or "assistant",
                    "content": "".join(slot["content"]),
                    **(
                        {
                            "tool_calls": [
                                {
                                    "id": t["id"],
                                    "type": t["type"],
                                    "function": {"name": t["name"], "arguments": t["arguments"]},
                                }
                                for _, t in sorted(slot["tool_calls"].items())
                            ]
                        }
                        if slot["tool_calls"]
                        else {}
                    ),
                },
                "finish_reason": slot["finish_reason"],
            }
            for _, slot in sorted(choices.items())
        ],
        "usage": _dump(into.usage),
        "stream_chunks": len(chunks),
    }


def _assemble_responses(into: Assembled, chunks: list[Any]) -> None:
    final: Any = None
    for event in chunks:
        response = getattr(event, "response", None)
        if response is not None:  # created / in_progress / completed / incomplete / failed
            final = response
    if final is not None:
        into.response = final
        into.usage = getattr(final, "usage", None)
        into.served_model = getattr(final, "model", None)
        outcome = getattr(final, "status", None)
        if into.status == "ok" and outcome in ("failed", "incomplete"):
            # The stream ended normally but the response did not (response.failed or
            # response.incomplete events): say so instead of "ok".
            into.status = "error" if outcome == "failed" else "incomplete"
            error = getattr(final, "error", None)
            into.error_type = "response." + outcome
            into.error_message = None if error is None else str(getattr(error, "message", error))
    else:
        into.response = {"events": [_dump(e) for e in chunks]}


def _assemble_messages(into: Assembled, chunks: list[Any]) -> None:
    usage: dict[str, Any] = {}
    message: dict[str, Any] = {}
    texts: dict[int, list[str]] = {}
    # tool_use blocks by index, with their input's JSON as it streams in pieces
    tools: dict[int, tuple[dict[str, Any], list[str]]] = {}
    for event in chunks:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = _dump(event.message)
            _merge_usage(usage, message.get("usage"))
            into.served_model = message.get("model")
        elif kind == "content_block_start":
            block = _dump(getattr(event, "content_block", None))
            if isinstance(block, dict) and block.get("type") == "tool_use":
                tools[event.index] = (block, [])
        elif kind == "content_block_delta":
            text = field_of(event.delta, "text")
            if text:
                texts.setdefault(event.index, []).append(text)
            piece = field_of(event.delta, "partial_json")
            if piece and event.index in tools:
                tools[event.index][1].append(piece)
        elif kind == "message_delta":
            _merge_usage(usage, _dump(getattr(event, "usage", None)))
            message["stop_reason"] = field_of(event.delta, "stop_reason")
    if texts or tools:
        message["content"] = [
            _tool_use(*tools[index])
            if index in tools
            else {"type": "text", "text": "".join(texts[index])}
            for index in sorted(texts.keys() | tools.keys())
        ]
    message["usage"] = usage or None
    message["stream_events"] = len(chunks)
    into.response = message
    into.usage = usage or None


def _tool_use(block: dict[str, Any], pieces: list[str]) -> dict[str, Any]:
    """A streamed tool_use block with its input put together: the JSON object, or the
    text as it came when a stream ended before the JSON did."""
    if pieces:
        text = "".join(pieces)
        try:
            block["input"] = json.loads(text)
        except ValueError:
            block["input"] = text
    return block


def _merge_usage(into: dict[str, Any], update: Any) -> None:
    """Anthropic stream usage is cumulative: the latest non-null value of each field wins."""
    if isinstance(update, dict):
        for key, value in update.items():
            if value is not None:
                into[key] = value
