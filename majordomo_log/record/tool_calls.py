"""How many tool calls the model asked for (``tool_call_count``), read off the response
in the background (``CallRecord.priced``), never on the caller's path.

Counted: the calls the model hands to the caller to run. OpenAI chat: every
``choices[].message.tool_calls`` entry (a legacy ``function_call`` counts one); the
Responses API: ``function_call`` output items and the other kinds the caller executes
(``custom_tool_call``, ``computer_call``, ``local_shell_call``, ``shell_call``,
``apply_patch_call``); Anthropic: ``tool_use`` content blocks; Gemini: parts of the
candidates' content with a ``function_call``; Bedrock Converse: ``toolUse`` blocks of
the output message, and an ``invoke_model`` body by its own (Anthropic) shape. Not
counted: tools the provider runs itself (web or file search, code interpreter, MCP, Anthropic's
``server_tool_use``), which bill as fees, not as work for the caller.

One small function per response shape, in ``SHAPES``: each returns None when the
response is not of its shape, else its count (0 included). The first that recognizes
the response answers; none: NULL (not known, never 0). A stream is counted on the
response ``record/assemble.py`` put together from its chunks, which keeps the tool
calls in the shape of a plain response. To add a provider, write its function and add
it to ``SHAPES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .usage import field_of

# Responses API output items the caller runs (the rest the provider runs itself).
RESPONSES_CALLER_TOOLS = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
    }
)


def _sequence(value: Any) -> list[Any] | tuple[Any, ...] | None:
    return value if isinstance(value, (list, tuple)) else None


def openai_chat(response: Any) -> int | None:
    """Chat Completions: ``choices[].message.tool_calls``."""
    choices = _sequence(field_of(response, "choices"))
    if choices is None:
        return None
    count = 0
    for choice in choices:
        message = field_of(choice, "message")
        calls = _sequence(field_of(message, "tool_calls"))
        if calls:
            count += len(calls)
        elif field_of(message, "function_call") is not None:  # the functions API before tools
            count += 1
    return count


def openai_responses(response: Any) -> int | None:
    """Responses API: the ``output`` items of a kind the caller runs."""
    output = _sequence(field_of(response, "output"))
    if output is None:
        return None
    return sum(1 for item in output if field_of(item, "type") in RESPONSES_CALLER_TOOLS)


def anthropic_messages(response: Any) -> int | None:
    """Anthropic Messages: ``tool_use`` blocks of ``content`` (a list; chat's is text)."""
    content = _sequence(field_of(response, "content"))
    if content is None or field_of(response, "choices") is not None:
        return None
    return sum(1 for block in content if field_of(block, "type") == "tool_use")


def gemini(response: Any) -> int | None:
    """google-genai: ``candidates[].content.parts[].function_call``."""
    candidates = _sequence(field_of(response, "candidates"))
    if candidates is None:
        return None
    count = 0
    for candidate in candidates:
        parts = _sequence(field_of(field_of(candidate, "content"), "parts")) or ()
        count += sum(1 for part in parts if field_of(part, "function_call") is not None)
    return count


def bedrock_converse(response: Any) -> int | None:
    """Bedrock Converse (plain, or a stream as record/bedrock.py assembles it):
    ``output.message.content[]`` blocks with a ``toolUse``."""
    output = field_of(response, "output")
    if not isinstance(output, dict) or not isinstance(output.get("message"), dict):
        return None
    content = _sequence(output["message"].get("content")) or ()
    return sum(1 for block in content if isinstance(block, dict) and "toolUse" in block)


def bedrock_invoke(response: Any) -> int | None:
    """Bedrock ``invoke_model``: the model's own reply is the parsed ``body``."""
    body = field_of(response, "body") if isinstance(response, dict) else None
    return anthropic_messages(body) if isinstance(body, dict) else None


SHAPES: tuple[Callable[[Any], int | None], ...] = (
    openai_chat,
    openai_responses,
    anthropic_messages,
    gemini,
    bedrock_converse,
    bedrock_invoke,
)


def count_tool_calls(response: Any) -> int | None:
    """The response's tool calls, or None when no shape knows it (or it has none: an
    error, a call that returned nothing)."""
    if response is None:
        return None
    for shape in SHAPES:
        count = shape(response)
        if count is not None:
            return count
    return None
