"""Background: the responses and stream chunks of google-genai, mistralai and LiteLLM.

``read_response`` (``record/call.py``) takes usage and the served model from a response;
for google-genai they are not where OpenAI keeps them (``usage_metadata``,
``model_version``), so ``RESPONSE_READERS`` reads them by operation. Mistral and LiteLLM
responses are OpenAI-shaped (``usage``, ``model``) and need nothing here.

``ASSEMBLERS`` (``record/assemble.py``) turn a stream's chunks into one response, its
usage and served model, by operation (the operations ``capture/families.py`` names):

* Gemini: each chunk's ``usage_metadata`` is the running total (google-genai also adds
  the earlier hops of an automatically continued stream), so the last one is the
  call's usage, never a sum; text parts are joined per candidate.
* Mistral: each event's ``data`` is an OpenAI-like chat chunk; usage comes with the
  last one, unasked.
* LiteLLM ``completion``: OpenAI chat chunks; usage on the chunk the wrapper asked for.

Chunks are read with ``field_of``: in the writer process they may arrive as the dicts
their JSON parses to, when the SDK's model refuses to validate them again. Time linear
in the chunks: text pieces are collected in lists and joined once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from .usage import Usage, field_of


class Into(Protocol):
    """What an assembler fills (``record/assemble.py``'s ``Assembled``)."""

    response: Any
    usage: Any
    served_model: str | None


# -- google-genai ----------------------------------------------------------------------------


def read_gemini(response: Any) -> tuple[Any, str | None, str | None]:
    """(usage, served model, response id) of a ``GenerateContentResponse`` or an
    ``EmbedContentResponse`` (the latter has no model version nor id)."""
    usage = field_of(response, "usage_metadata")
    version = field_of(response, "model_version")
    response_id = field_of(response, "response_id")
    return (
        usage,
        version if isinstance(version, str) else None,
        response_id if isinstance(response_id, str) else None,
    )


# -- LiteLLM -------------------------------------------------------------------------------


def litellm_usage(usage: Any) -> Any:
    """LiteLLM's usage, with the cache writes it reports its own way.

    LiteLLM makes every provider's usage OpenAI-shaped and inclusive: for Anthropic (and
    Bedrock, Vertex AI's Claude) ``prompt_tokens`` counts the cache reads and writes,
    ``prompt_tokens_details.cached_tokens`` the reads and ``cache_creation_tokens`` the
    writes, split by TTL in ``cache_creation_token_details`` when it knows it (its streams
    do not say: their writes are taken as 5-minute ones). Read as plain OpenAI usage, the
    writes would be billed as uncached input. Anything without such writes is returned
    as it came (the OpenAI shape reads it right)."""
    details = field_of(usage, "prompt_tokens_details")
    written = field_of(details, "cache_creation_tokens")
    if type(written) is not int or written <= 0:
        return usage
    split = field_of(details, "cache_creation_token_details")
    one_hour = field_of(split, "ephemeral_1h_input_tokens")
    one_hour = one_hour if type(one_hour) is int and 0 <= one_hour <= written else 0
    base = Usage.inclusive(
        field_of(usage, "prompt_tokens"),
        field_of(usage, "completion_tokens"),
        cached_tokens=field_of(details, "cached_tokens"),
        cache_write_tokens=written,
        reasoning_tokens=field_of(field_of(usage, "completion_tokens_details"), "reasoning_tokens"),
    )
    one_hour = min(one_hour, base.cache_write_5m)  # what is left of the writes once checked
    return Usage(
        input=base.input,
        cache_read=base.cache_read,
        cache_write_5m=base.cache_write_5m - one_hour,
        cache_write_1h=one_hour,
        output=base.output,
        reasoning=base.reasoning,
        flags=base.flags,
    )


def read_litellm(response: Any) -> tuple[Any, str | None, str | None]:
    """(usage, served model, None) of a LiteLLM ``ModelResponse`` or ``EmbeddingResponse``
    (its provider and request id were read on the caller's path: capture/families.py)."""
    model = field_of(response, "model")
    return (
        litellm_usage(field_of(response, "usage")),
        model if isinstance(model, str) else None,
        None,
    )


RESPONSE_READERS: dict[str, Callable[[Any], tuple[Any, str | None, str | None]]] = {
    "generate_content": read_gemini,
    "embed_content": read_gemini,
    "completion": read_litellm,
    "text_completion": read_litellm,
    "embedding": read_litellm,
}


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True, warnings=False)
    return value


def _text(value: Any) -> Any:
    return getattr(value, "value", value)  # an enum member (FinishReason) as its string


def assemble_gemini(into: Into, chunks: list[Any]) -> None:
    candidates: dict[int, dict[str, Any]] = {}
    response_id: Any = None
    for chunk in chunks:
        response_id = response_id or field_of(chunk, "response_id")
        usage = field_of(chunk, "usage_metadata")
        if usage is not None:  # a running total: the latest wins
            into.usage = usage
        version = field_of(chunk, "model_version")
        if isinstance(version, str) and version:
            into.served_model = version
        for position, candidate in enumerate(field_of(chunk, "candidates") or ()):
            index = field_of(candidate, "index")
            index = position if not isinstance(index, int) else index
            slot = candidates.setdefault(
                index, {"index": index, "role": None, "parts": [], "finish_reason": None}
            )
            content = field_of(candidate, "content")
            slot["role"] = field_of(content, "role") or slot["role"]
            for part in field_of(content, "parts") or ():
                _add_part(slot["parts"], part)
            reason = field_of(candidate, "finish_reason")
            if reason is not None:
                slot["finish_reason"] = _text(reason)
    into.response = {
        "response_id": response_id,
        "model_version": into.served_model,
        "candidates": [
            {
                "index": slot["index"],
                "content": {"role": slot["role"] or "model", "parts": _parts(slot["parts"])},
                "finish_reason": slot["finish_reason"],
            }
            for _, slot in sorted(candidates.items())
        ],
        "usage_metadata": _dump(into.usage),
        "stream_chunks": len(chunks),
    }


def _add_part(parts: list[Any], part: Any) -> None:
    """Text parts in a row (thoughts apart from the answer) become one; any other part
    (a function call, inline data) is kept as it came."""
    text = field_of(part, "text")
    if isinstance(text, str):
        thought = bool(field_of(part, "thought"))
        last = parts[-1] if parts else None
        if isinstance(last, _TextRun) and last.thought == thought:
            last.pieces.append(text)
        else:
            parts.append(_TextRun(thought, [text]))
    else:
        parts.append(_dump(part))


class _TextRun:
    __slots__ = ("pieces", "thought")

    def __init__(self, thought: bool, pieces: list[str]) -> None:
        self.thought = thought
        self.pieces = pieces


def _parts(parts: list[Any]) -> list[Any]:
    out = []
    for part in parts:
        if isinstance(part, _TextRun):
            joined: dict[str, Any] = {"text": "".join(part.pieces)}
            if part.thought:
                joined["thought"] = True
            out.append(joined)
        else:
            out.append(part)
    return out


# -- chat chunks: mistralai (inside its events), LiteLLM --------------------------------------


def assemble_mistral(into: Into, chunks: list[Any]) -> None:
    assemble_chat_chunks(into, [field_of(event, "data") for event in chunks])


def assemble_chat_chunks(into: Into, chunks: list[Any]) -> None:
    """OpenAI-like chat chunks into one chat completion. Content may be a string or, for
    Mistral (thinking, references), a list of content chunks: text joined, the others
    kept."""
    choices: dict[int, dict[str, Any]] = {}
    head: Any = None
    for chunk in chunks:
        if chunk is None:
            continue
        head = head if head is not None else chunk
        model = field_of(chunk, "model")
        if isinstance(model, str) and model:
            into.served_model = model
        usage = field_of(chunk, "usage")
        if usage:  # Mistral's unset usage is falsy
            into.usage = usage
        for position, choice in enumerate(field_of(chunk, "choices") or ()):
            index = field_of(choice, "index")
            index = position if not isinstance(index, int) else index
            slot = choices.setdefault(
                index,
                {"role": None, "text": [], "other": [], "tool_calls": {}, "finish_reason": None},
            )
            _add_delta(slot, field_of(choice, "delta"))
            reason = field_of(choice, "finish_reason")
            if reason:
                slot["finish_reason"] = _text(reason)
    into.response = {
        "id": field_of(head, "id"),
        "object": "chat.completion",
        "model": into.served_model,
        "choices": [_choice(index, slot) for index, slot in sorted(choices.items())],
        "usage": _dump(into.usage),
        "stream_chunks": len(chunks),
    }


def _add_delta(slot: dict[str, Any], delta: Any) -> None:
    if not delta:
        return
    role = field_of(delta, "role")
    if isinstance(role, str) and role:
        slot["role"] = role
    content = field_of(delta, "content")
    if isinstance(content, str):
        slot["text"].append(content)
    elif isinstance(content, list):
        for item in content:
            text = field_of(item, "text")
            if isinstance(text, str) and field_of(item, "type") in (None, "text"):
                slot["text"].append(text)
            else:
                slot["other"].append(_dump(item))
    for position, call in enumerate(field_of(delta, "tool_calls") or ()):
        index = field_of(call, "index")
        index = position if not isinstance(index, int) else index
        tool = slot["tool_calls"].setdefault(index, {"id": None, "name": [], "arguments": []})
        call_id = field_of(call, "id")
        # The first id wins: mistralai fills an id the chunk lacks with the string "null".
        if tool["id"] is None and isinstance(call_id, str) and call_id not in ("", "null"):
            tool["id"] = call_id
        function = field_of(call, "function")
        name, arguments = field_of(function, "name"), field_of(function, "arguments")
        if isinstance(name, str):
            tool["name"].append(name)
        if isinstance(arguments, str):
            tool["arguments"].append(arguments)
        elif arguments is not None:  # Mistral may send the arguments as an object
            tool["arguments"].append(orjson.dumps(_dump(arguments), default=str).decode())


def _choice(index: int, slot: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": slot["role"] or "assistant",
        "content": "".join(slot["text"]),
    }
    if slot["other"]:
        message["content_parts"] = slot["other"]
    if slot["tool_calls"]:
        message["tool_calls"] = [
            {
                "id": tool["id"],
                "type": "function",
                "function": {
                    "name": "".join(tool["name"]),
                    "arguments": "".join(tool["arguments"]),
                },
            }
            for _, tool in sorted(slot["tool_calls"].items())
        ]
    return {"index": index, "message": message, "finish_reason": slot["finish_reason"]}


def assemble_litellm(into: Into, chunks: list[Any]) -> None:
    assemble_chat_chunks(into, chunks)
    into.usage = litellm_usage(into.usage)  # the body keeps LiteLLM's own (assembled above)


ASSEMBLERS: dict[str, Callable[[Into, list[Any]], None]] = {
    "generate_content": assemble_gemini,
    "chat.complete": assemble_mistral,
    "fim.complete": assemble_mistral,
    "agents.complete": assemble_mistral,
    "completion": assemble_litellm,
}
