"""Per chunk, on the caller's path: what counts as the first token of a google-genai,
mistralai or LiteLLM stream, and which LiteLLM chunk only carries the usage the wrapper
asked for (``capture/streams.py`` uses both; ``capture/families.py`` names the
operations).

Each check reads a few attributes of one chunk and stops at the first answer: a
stream's cost stays one append per chunk once its first token has been seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def gemini_token(chunk: Any) -> bool:
    """A google-genai ``GenerateContentResponse`` chunk with any part of a candidate's
    content (text, thought, function call): not one carrying only usage or safety data."""
    for candidate in getattr(chunk, "candidates", None) or ():
        content = getattr(candidate, "content", None)
        if content is not None and getattr(content, "parts", None):
            return True
    return False


def _delta_token(delta: Any) -> bool:
    return bool(getattr(delta, "content", None) or getattr(delta, "tool_calls", None))


def mistral_token(event: Any) -> bool:
    """A mistralai ``CompletionEvent`` whose chunk (``event.data``) has content or a tool
    call in a choice's delta; the SDK's unset fields are falsy."""
    for choice in getattr(getattr(event, "data", None), "choices", None) or ():
        if _delta_token(getattr(choice, "delta", None)):
            return True
    return False


FIRST_TOKEN: dict[str, Callable[[Any], bool]] = {
    "generate_content": gemini_token,
    "chat.complete": mistral_token,
    "fim.complete": mistral_token,
    "agents.complete": mistral_token,
}


def litellm_usage_chunk(chunk: Any) -> bool:
    """The chunk LiteLLM adds at the end of a stream asked for usage
    (``stream_options.include_usage``): the usage, and one choice with an empty delta and
    no finish reason (where OpenAI sends ``choices: []``)."""
    if getattr(chunk, "usage", None) is None:
        return False
    for choice in getattr(chunk, "choices", None) or ():
        if getattr(choice, "finish_reason", None) is not None:
            return False
        delta = getattr(choice, "delta", None)
        if _delta_token(delta) or getattr(delta, "role", None):
            return False
        if getattr(delta, "function_call", None) or getattr(delta, "reasoning_content", None):
            return False
    return True


# operation -> the chunk to hide from a caller who did not ask for usage
USAGE_ONLY: dict[str, Callable[[Any], bool]] = {"completion": litellm_usage_chunk}
