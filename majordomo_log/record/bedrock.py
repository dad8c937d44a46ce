"""Background: AWS Bedrock Runtime results (botocore dicts) become one response and one
usage.

The caller's path (``capture/bedrock.py``) keeps ``record.stream_chunks`` as: the result's
head (the dict without its stream or body: ``ResponseMetadata``, and for ``converse`` the
whole result), then ``invoke_model``'s body bytes, or the stream's events as botocore
parsed them. Usage, by method:

* ``converse`` / ``converse_stream`` (the ``metadata`` event): ``inputTokens``,
  ``outputTokens``, ``cacheReadInputTokens``, ``cacheWriteInputTokens``: additive, like
  Anthropic's; ``cacheDetails`` (a list of ``{ttl, inputTokens}``) splits the writes into
  5-minute and 1-hour ones.
* ``invoke_model``: the model's own JSON: Claude's Anthropic ``usage``, Nova's ``usage``
  (``inputTokens``, ``cacheReadInputTokenCount``...), an OpenAI-shaped ``usage``, Llama's
  ``prompt_token_count`` / ``generation_token_count``, Titan's ``inputTextTokenCount``;
  else the token counts Bedrock puts in the response headers
  (``x-amzn-bedrock-input-token-count``...), which it sends for every model.
* ``invoke_model_with_response_stream``: Claude's events (``message_start`` and the
  cumulative ``message_delta``), Nova's Converse-shaped events, else the
  ``amazon-bedrock-invocationMetrics`` of the last chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from .usage import Usage, field_of, normalize_anthropic, normalize_openai


class Assembled(Protocol):
    """What ``record/assemble.py`` fills (its ``Assembled``), as far as this module goes."""

    response: Any
    usage: Any
    served_model: str | None


OPERATIONS = frozenset(
    {"converse", "converse_stream", "invoke_model", "invoke_model_with_response_stream"}
)
_HEADER = "x-amzn-bedrock-{}-token-count"


def is_botocore_result(chunks: list[Any]) -> bool:
    """Whether chunks were kept by ``capture/bedrock.py`` (botocore always answers with
    ``ResponseMetadata``), not by an unrelated client's method of the same name."""
    return bool(chunks) and type(chunks[0]) is dict and "ResponseMetadata" in chunks[0]


def assemble_bedrock(operation: str, chunks: list[Any], into: Assembled) -> None:
    head: dict[str, Any] = chunks[0]
    if operation == "converse":
        into.response = head
        into.usage = converse_usage(head.get("usage")) or into.usage
    elif operation == "converse_stream":
        response, usage = _converse_events(chunks[1:])
        into.response = {**head, **response}
        into.usage = usage or into.usage
    elif operation == "invoke_model":
        _invoke(into, head, chunks[1] if len(chunks) > 1 else None)
    else:
        _invoke_stream(into, head, chunks[1:])


def converse_usage(usage: Any) -> Usage | None:
    """Converse's usage (also Nova's native one, whose cache counts end in ``Count``)."""
    if not isinstance(usage, Mapping):
        return None
    inp, out = usage.get("inputTokens"), usage.get("outputTokens")
    if inp is None and out is None:  # no counts is no usage, never a free call
        return None
    read = usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount"))
    write = usage.get("cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount"))
    w1h = None
    details = usage.get("cacheDetails")
    if isinstance(details, list) and details:
        by_ttl: dict[Any, int] = {}
        for entry in details:
            count = entry.get("inputTokens") if isinstance(entry, Mapping) else None
            if type(count) is int:
                ttl = entry.get("ttl")
                by_ttl[ttl] = by_ttl.get(ttl, 0) + count
        w1h = by_ttl.pop("1h", None)
        if w1h is not None and type(write) is int:
            write = max(write - w1h, 0)  # the rest of the writes are 5-minute ones
        elif by_ttl:
            write = sum(by_ttl.values())
    return Usage.additive(
        inp,
        out,
        cache_read_tokens=read,
        cache_write_5m_tokens=write,
        cache_write_1h_tokens=w1h,
    )


def _converse_events(events: list[Any]) -> tuple[dict[str, Any], Usage | None]:
    """Converse stream events (also Nova's native stream, the same shape) -> the reply as
    ``converse`` returns it, and its usage."""
    blocks: dict[int, dict[str, Any]] = {}
    role, stop, usage, metrics = "assistant", None, None, None
    extra: dict[str, Any] = {}

    def block(event: Mapping[str, Any]) -> dict[str, Any]:
        index = event.get("contentBlockIndex", 0)
        return blocks.setdefault(index if type(index) is int else 0, {})

    for event in events:
        if not isinstance(event, Mapping):
            continue
        if (delta_event := event.get("contentBlockDelta")) is not None:
            slot = block(delta_event)
            delta = delta_event.get("delta") or {}
            if "text" in delta:
                slot.setdefault("text", []).append(str(delta["text"]))
            elif "toolUse" in delta:
                slot.setdefault("tool", {}).setdefault("input", []).append(
                    str(field_of(delta["toolUse"], "input") or "")
                )
            elif "reasoningContent" in delta:
                text = field_of(delta["reasoningContent"], "text")
                if text:
                    slot.setdefault("reasoning", []).append(str(text))
        elif (start := event.get("contentBlockStart")) is not None:
            tool = field_of(start.get("start"), "toolUse")
            if tool is not None:
                slot = block(start).setdefault("tool", {})
                slot["toolUseId"] = field_of(tool, "toolUseId")
                slot["name"] = field_of(tool, "name")
        elif (begin := event.get("messageStart")) is not None:
            role = begin.get("role") or role
        elif (end := event.get("messageStop")) is not None:
            stop = end.get("stopReason")
            if end.get("additionalModelResponseFields") is not None:
                extra["additionalModelResponseFields"] = end["additionalModelResponseFields"]
        elif (meta := event.get("metadata")) is not None:
            usage, metrics = meta.get("usage", usage), meta.get("metrics", metrics)
    content: list[dict[str, Any]] = []
    for _, slot in sorted(blocks.items()):
        if "reasoning" in slot:
            content.append(
                {"reasoningContent": {"reasoningText": {"text": "".join(slot["reasoning"])}}}
            )
        if "text" in slot:
            content.append({"text": "".join(slot["text"])})
        if "tool" in slot:
            tool = slot["tool"]
            raw = "".join(tool.get("input", ()))
            content.append(
                {
                    "toolUse": {
                        "toolUseId": tool.get("toolUseId"),
                        "name": tool.get("name"),
                        "input": _json(raw.encode("utf-8"), raw),
                    }
                }
            )
    response = {
        "output": {"message": {"role": role, "content": content}},
        "stopReason": stop,
        **extra,
        "usage": usage,
        "metrics": metrics,
        "stream_events": len(events),
    }
    return response, converse_usage(usage)


def _invoke(into: Assembled, head: dict[str, Any], body: Any) -> None:
    parsed = _json(body, None) if isinstance(body, (bytes, bytearray)) else None
    into.response = {**head, "body": parsed if parsed is not None else _text(body)}
    usage = model_usage(parsed) or _header_usage(head)
    into.usage = usage or into.usage
    if isinstance(parsed, Mapping) and isinstance(parsed.get("model"), str):
        into.served_model = parsed["model"]


def model_usage(body: Any) -> Usage | None:
    """The usage in a model's own JSON reply (``invoke_model``), any family's."""
    if not isinstance(body, Mapping):
        return None
    usage = body.get("usage")
    if isinstance(usage, Mapping):
        if usage.get("input_tokens") is not None:  # Claude
            return normalize_anthropic(usage)
        if usage.get("prompt_tokens") is not None:  # OpenAI-shaped (gpt-oss, Mistral chat)
            return normalize_openai(usage)
        return converse_usage(usage)  # Nova
    if body.get("prompt_token_count") is not None:  # Llama
        return Usage.additive(body.get("prompt_token_count"), body.get("generation_token_count"))
    if body.get("inputTextTokenCount") is not None:  # Titan text and embeddings
        results = body.get("results")
        output = 0
        if isinstance(results, list):
            output = sum(
                r.get("tokenCount") or 0
                for r in results
                if isinstance(r, Mapping) and type(r.get("tokenCount")) is int
            )
        return Usage.additive(body.get("inputTextTokenCount"), output)
    return None


def _header_usage(head: Mapping[str, Any]) -> Usage | None:
    """The counts Bedrock sends in ``invoke_model``'s response headers."""
    headers = field_of(head.get("ResponseMetadata"), "HTTPHeaders")
    if not isinstance(headers, Mapping):
        return None
    counts = {}
    for name in ("input", "output", "cache-read-input", "cache-write-input"):
        value = headers.get(_HEADER.format(name))
        try:
            counts[name] = int(value) if value is not None else None
        except (TypeError, ValueError):
            counts[name] = None
    if counts["input"] is None and counts["output"] is None:
        return None
    return Usage.additive(
        counts["input"],
        counts["output"],
        cache_read_tokens=counts["cache-read-input"],
        cache_write_5m_tokens=counts["cache-write-input"],
    )


def _invoke_stream(into: Assembled, head: dict[str, Any], events: list[Any]) -> None:
    parsed: list[Any] = []
    for event in events:
        chunk = event.get("chunk") if isinstance(event, Mapping) else None
        data = chunk.get("bytes") if isinstance(chunk, Mapping) else None
        if isinstance(data, (bytes, bytearray)):
            parsed.append(_json(data, _text(data)))
    metrics = next(
        (
            p["amazon-bedrock-invocationMetrics"]
            for p in reversed(parsed)
            if isinstance(p, Mapping) and "amazon-bedrock-invocationMetrics" in p
        ),
        None,
    )
    if any(isinstance(p, Mapping) and p.get("type") == "message_start" for p in parsed):
        response, usage = _claude_events(parsed)
        model = response.get("model")
        into.served_model = model if isinstance(model, str) else into.served_model
    elif any(
        isinstance(p, Mapping) and ("contentBlockDelta" in p or "metadata" in p) for p in parsed
    ):
        response, usage = _converse_events(parsed)
    else:
        response, usage = {"events": parsed}, None
    if usage is None and isinstance(metrics, Mapping):
        usage = _metrics_usage(metrics)
    into.response = {**head, "body": {**response, "amazon-bedrock-invocationMetrics": metrics}}
    into.usage = usage or into.usage


def _claude_events(events: list[Any]) -> tuple[dict[str, Any], Usage | None]:
    """Claude's stream events as dicts: usage is cumulative, the latest value wins."""
    usage: dict[str, Any] = {}
    message: dict[str, Any] = {}
    texts: dict[int, list[str]] = {}
    for event in events:
        if not isinstance(event, Mapping):
            continue
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), Mapping):
            message = dict(event["message"])
            _latest(usage, message.get("usage"))
        elif kind == "content_block_delta":
            text = field_of(event.get("delta"), "text")
            index = event.get("index", 0)
            if text:
                texts.setdefault(index if type(index) is int else 0, []).append(str(text))
        elif kind == "message_delta":
            _latest(usage, event.get("usage"))
            message["stop_reason"] = field_of(event.get("delta"), "stop_reason")
    if texts:
        message["content"] = [
            {"type": "text", "text": "".join(t)} for _, t in sorted(texts.items())
        ]
    message["usage"] = usage or None
    message["stream_events"] = len(events)
    return message, normalize_anthropic(usage) if usage else None


def _latest(into: dict[str, Any], update: Any) -> None:
    if isinstance(update, Mapping):
        into.update((k, v) for k, v in update.items() if v is not None)


def _metrics_usage(metrics: Mapping[str, Any]) -> Usage | None:
    if metrics.get("inputTokenCount") is None and metrics.get("outputTokenCount") is None:
        return None
    return Usage.additive(
        metrics.get("inputTokenCount"),
        metrics.get("outputTokenCount"),
        cache_read_tokens=metrics.get("cacheReadInputTokenCount"),
        cache_write_5m_tokens=metrics.get("cacheWriteInputTokenCount"),
    )


def _json(data: bytes | bytearray, default: Any) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return default


def _text(data: Any) -> Any:
    """Bytes that are not JSON, kept readable; anything else as it is."""
    if isinstance(data, (bytes, bytearray)):
        return {"$text": bytes(data).decode("utf-8", "replace")}
    return data
