"""The largest a call could cost, from its request alone: what a ``per="call"`` cap
is checked against before the call is sent.

How the estimate is made (and documented in docs/budgets.md):

* input: an upper bound on the tokens, the UTF-8 byte length of every string in the
  request's content (messages, input, system, prompt, contents, instructions, tools).
  The tokenizers of OpenAI, Anthropic, Gemini, Llama and Mistral are byte-level or
  close to it: a token covers at least one byte, so a request cannot hold more tokens
  than bytes. It over-counts (about 4 bytes make a token in English), never under.
  Mapping keys count too (a tool's parameter names are sent), and numbers by their
  digits (a legacy ``prompt`` of token ids is a token per number).
* output: the request's own cap (``max_tokens``, ``max_completion_tokens``,
  ``max_output_tokens``, or google-genai's ``config.max_output_tokens``), times the
  completions asked for (``n``, ``best_of``, ``config.candidate_count``); reasoning
  tokens fall under the same cap, so they are priced as output.
* priced at the model's list rates for uncached input and output, with long-context
  tiers applied (no cache discount: the largest possible cost).

It is unknown (None), and the cap is not applied before the call, when the model has no
price, when the request gives no output cap (other than an embedding, which has no
output), when it carries non-text parts (images, audio, files), whose tokens bytes do
not bound, when the provider adds input of its own (``previous_response_id``,
``conversation``, a stored ``prompt`` template, a server-side tool such as web or file
search), or when the request is too large to walk (more than ``MAX_NODES`` parts, or one
that contains itself). The call's real cost is still checked once it completes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..record.usage import Usage

if TYPE_CHECKING:
    from ..record.pricing import PriceTable

CONTENT_KEYS = (
    "messages",
    "input",
    "system",
    "prompt",
    "contents",
    "instructions",
    "tools",
    "toolConfig",  # Bedrock's converse
)
# google-genai's config: text sent with the contents
CONFIG_CONTENT_KEYS = ("system_instruction", "tools")
OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Parts whose tokens are not bounded by their bytes (a base64 image is priced per tile).
NON_TEXT_TYPES = frozenset(
    {"image", "image_url", "input_image", "document", "input_audio", "audio", "file", "input_file"}
)
NON_TEXT_KEYS = frozenset({"image_url", "inline_data", "file_data", "image", "source"})
# Requests whose input the provider takes partly from elsewhere (a stored conversation, a
# prompt template, a server-side tool's results): their tokens are not in the request.
SERVER_CONTEXT_KEYS = ("previous_response_id", "conversation")
CONFIG_SERVER_CONTEXT_KEYS = ("cached_content",)  # google-genai
CLIENT_TOOL_TYPES = frozenset({None, "function", "custom"})
# More nodes than this (a part repeated over and over), or a part inside itself (a cycle):
# not estimated, let through to the SDK, which refuses a cyclic request itself.
MAX_NODES = 5_000_000
# How many completions one request may bill: OpenAI's n and best_of, google-genai's
# config.candidate_count.
CHOICE_COUNTS = ("n", "best_of")


def input_bytes(request: Mapping[str, Any]) -> int | None:
    """Bytes of text in the request's content, or None if it holds a non-text part.
    Iterative and linear in the request's size (prompts are attacker-controlled)."""
    if any(isinstance(request.get(key), (str, Mapping)) for key in SERVER_CONTEXT_KEYS):
        return None
    config = request.get("config")  # google-genai: GenerateContentConfig or a dict
    read = _field_reader(config)
    if config is not None and any(read(key) is not None for key in CONFIG_SERVER_CONTEXT_KEYS):
        return None
    if isinstance(request.get("prompt"), Mapping):  # a stored prompt template (Responses)
        return None
    tools = request.get("tools")
    if isinstance(tools, (list, tuple)) and any(
        isinstance(tool, Mapping) and tool.get("type") not in CLIENT_TOOL_TYPES for tool in tools
    ):
        return None  # a server-side tool (web search, file search...) adds its results
    total = 0
    nodes = 0
    path: set[int] = set()  # the containers being walked: one met inside itself is a cycle
    stack: list[Any] = [request.get(key) for key in CONTENT_KEYS]
    if config is not None:
        stack.extend(read(key) for key in CONFIG_CONTENT_KEYS)
    while stack:
        item = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return None
        if item is None:
            continue
        if type(item) is _Leave:
            path.discard(item.marker)
            continue
        if isinstance(item, str):
            total += len(item) if item.isascii() else len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, (Mapping, list, tuple)) and _enter(item, path, stack):
            return None
        elif isinstance(item, Mapping):
            if item.get("type") in NON_TEXT_TYPES or any(k in item for k in NON_TEXT_KEYS):
                return None
            # keys are sent too (a tool's parameter names)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            return None
        elif isinstance(item, bool):
            total += 5  # true, false
        elif isinstance(item, int):
            # its decimal digits and sign, from its size (str() of a huge int is quadratic)
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 24  # the longest repr of a float
        else:  # an SDK object (google-genai Content, a pydantic model): read its fields
            fields = getattr(item, "__dict__", None)
            if fields is None:
                return None
            if any(fields.get(k) is not None for k in NON_TEXT_KEYS) or _enter(item, path, stack):
                return None
            stack.extend(fields.keys())
            stack.extend(fields.values())
    return total


class _Leave:
    """On the walk's stack under a container's parts: popped once they all are."""

    __slots__ = ("marker",)

    def __init__(self, marker: int) -> None:
        self.marker = marker


def _enter(item: Any, path: set[int], stack: list[Any]) -> bool:
    """Walk into ``item``; True if it is already being walked (it contains itself)."""
    marker = id(item)
    if marker in path:
        return True
    path.add(marker)
    stack.append(_Leave(marker))
    return False


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


def choices(request: Mapping[str, Any]) -> int:
    """How many completions the request asks for (each up to the output cap)."""
    most = 1
    config = request.get("config")
    counts = [request.get(key) for key in CHOICE_COUNTS]
    counts.append(
        config.get("candidate_count")
        if isinstance(config, Mapping)
        else getattr(config, "candidate_count", None)
    )
    for value in counts:
        if type(value) is int and value > most:
            most = value
    return most


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
    output *= choices(request)
    tokens = input_bytes(request)
    if tokens is None:
        return None
    return prices.cost_at(entry, Usage(input=tokens, output=output), at).total


def largest_tokens(request: Mapping[str, Any], operation: str) -> int | None:
    """The most tokens the call could use (a ``per="call"`` cap in tokens)."""
    output = output_cap(request, operation)
    tokens = input_bytes(request)
    if output is None or tokens is None:
        return None
    return tokens + output * choices(request)


def _field_reader(config: Any) -> Callable[[str], Any]:
    """How to read a field of google-genai's ``config``: a dict or a config object."""
    if isinstance(config, Mapping):
        return config.get

    def read(key: str) -> Any:
        return getattr(config, key, None)

    return read
