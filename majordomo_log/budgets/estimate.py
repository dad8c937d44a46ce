"""The largest a call could cost, from its request alone: what a ``per="call"`` cap
is checked against before the call is sent.

How the estimate is made (and documented in docs/budgets.md):

* input: an upper bound on the tokens, the UTF-8 byte length of every string in the
  request's content (messages, input, system, prompt, contents, instructions, tools).
  The tokenizers of OpenAI, Anthropic, Gemini, Llama and Mistral are byte-level or
  close to it: a token covers at least one byte, so a request cannot hold more tokens
  than bytes. It over-counts (about 4 bytes make a token in English), never under.
* output: the request's own cap (``max_tokens``, ``max_completion_tokens``,
  ``max_output_tokens``, or google-genai's ``config.max_output_tokens``); reasoning
  tokens fall under the same cap, so they are priced as output.
* priced at the model's list rates for uncached input and output, with long-context
  tiers applied (no cache discount: the largest possible cost).

It is unknown (None), and the cap is not applied before the call, when the model has no
price, when the request gives no output cap (other than an embedding, which has no
output), or when it carries non-text parts (images, audio, files), whose tokens bytes do
not bound. The call's real cost is still checked once it completes.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..record.usage import Usage

if TYPE_CHECKING:
    from ..record.pricing import PriceTable

CONTENT_KEYS = ("messages", "input", "system", "prompt", "contents", "instructions", "tools")
OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Parts whose tokens are not bounded by their bytes (a base64 image is priced per tile).
NON_TEXT_TYPES = frozenset(
    {"image", "image_url", "input_image", "document", "input_audio", "audio", "file", "input_file"}
)
NON_TEXT_KEYS = frozenset({"image_url", "inline_data", "file_data", "image", "source"})


def input_bytes(request: Mapping[str, Any]) -> int | None:
    """Bytes of text in the request's content, or None if it holds a non-text part.
    Iterative and linear in the request's size (prompts are attacker-controlled)."""
    total = 0
    stack: list[Any] = [request.get(key) for key in CONTENT_KEYS]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, str):
            total += len(item) if item.isascii() else len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, Mapping):
            if item.get("type") in NON_TEXT_TYPES or any(k in item for k in NON_TEXT_KEYS):
                return None
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            return None
        elif isinstance(item, (int, float, bool)):
            continue
        else:  # an SDK object (google-genai Content, a pydantic model): read its fields
            fields = getattr(item, "__dict__", None)
            if fields is None:
                return None
            if any(fields.get(k) is not None for k in NON_TEXT_KEYS):
                return None
            stack.extend(fields.values())
    return total


def output_cap(request: Mapping[str, Any], operation: str) -> int | None:
    if operation == "embeddings" or operation.endswith("embed_content"):
        return 0
    for key in OUTPUT_CAPS:
        value = request.get(key)
        if type(value) is int and value >= 0:
            return value
    inference = request.get("inferenceConfig")  # Bedrock's converse
    if isinstance(inference, Mapping):
        value = inference.get("maxTokens")
        if type(value) is int and value >= 0:
            return value
    config = request.get("config")  # google-genai: GenerateContentConfig or a dict
    value = (
        config.get("max_output_tokens")
        if isinstance(config, Mapping)
        else (getattr(config, "max_output_tokens", None))
    )
    return value if type(value) is int and value >= 0 else None


def largest_cost(
    prices: PriceTable, model: str | None, operation: str, request: Mapping[str, Any], at: float
) -> Decimal | None:
    """The most the call could cost in USD, or None when that cannot be bounded."""
    entry = prices.resolve(model)
    if entry is None:
        return None
    output = output_cap(request, operation)
    if output is None:
        return None
    tokens = input_bytes(request)
    if tokens is None:
        return None
    return prices.cost_at(entry, Usage(input=tokens, output=output), at).total


def largest_tokens(request: Mapping[str, Any], operation: str) -> int | None:
    """The most tokens the call could use (a ``per="call"`` cap in tokens)."""
    output = output_cap(request, operation)
    tokens = input_bytes(request)
    return None if output is None or tokens is None else tokens + output
