"""The common usage payloads read straight into buckets: ``normalize_any``'s fast path.

``normalize_generic`` (``record/usage.py``) reads every field through ``field_of``. For
an SDK model, each name it does not declare (``prompt_token_count`` on an OpenAI usage,
``cache_write_tokens`` on most details) goes through pydantic's ``__getattr__`` and an
AttributeError, and every count through ``_count`` into a fresh flag list and a frozen
dataclass: 45k CPU instructions per record. Here a payload whose type reads like a dict
(a dict, or a pydantic model: see ``_reads_as_dict``) becomes one dict read with
``.get``, with the same shape decisions in the same order, and counts that are all sane
ints become the six buckets directly. Anything else (a bool, float, negative or huge
count, counts that overlap more than they hold, a nested value of another type) answers
None, and the generic path, the definition, reads the payload and decides every flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A broken proxy can report anything; counts above this are treated as garbage.
MAX_SANE_TOKENS = 100_000_000

Buckets = tuple[
    int, int, int, int, int, int
]  # input, cache read, write 5m, write 1h, out, reasoning

_EMPTY: dict[str, Any] = {}
# Every name a shape reads: a class attribute with one of these names would answer
# getattr() before the instance does, so such a class does not read as a dict.
_USAGE_NAMES = (
    *("prompt_tokens", "completion_tokens", "prompt_tokens_details"),
    *("completion_tokens_details", "cached_tokens", "cache_write_tokens", "reasoning_tokens"),
    *("prompt_cache_hit_tokens", "input_tokens", "output_tokens", "input_tokens_details"),
    *("output_tokens_details", "cache_creation", "ephemeral_5m_input_tokens"),
    *("ephemeral_1h_input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"),
    *("prompt_token_count", "candidates_token_count", "cached_content_token_count"),
    *("tool_use_prompt_token_count", "thoughts_token_count", "inputTokens", "outputTokens"),
    *("cacheReadInputTokens", "cacheWriteInputTokens"),
)
# type -> whether its instances read as a dict; one entry per class seen (bounded)
_reads_as_dict_cache: dict[type, bool] = {dict: True}


def _reads_as_dict(cls: type) -> bool:
    """Whether ``field_of(obj, name)`` is ``obj.__dict__``, then ``obj.__pydantic_extra__``,
    for every usage name: a pydantic v2 model with the default attribute lookup (instance
    ``__dict__``, then pydantic's ``__getattr__``, which reads the extras or raises) whose
    class answers none of those names itself (fields are no class attributes in v2)."""
    getattr_hook = getattr(cls, "__getattr__", None)
    return (
        not issubclass(cls, (Mapping, str, bytes))
        and hasattr(cls, "__pydantic_extra__")
        and cls.__getattribute__ is object.__getattribute__
        and getattr(getattr_hook, "__module__", None) == "pydantic.main"
        and not any(hasattr(cls, name) for name in _USAGE_NAMES)
    )


def _fields_view(obj: Any) -> dict[str, Any] | None:
    """A dict whose ``.get(name)`` is ``field_of(obj, name)``, or None when ``obj``'s type
    does not read as a dict. None reads as an empty dict, as ``field_of(None, ...)`` does."""
    if obj is None:
        return _EMPTY
    cls = type(obj)
    if cls is dict:  # exactly: a subclass may answer get() its own way
        return obj  # type: ignore[no-any-return]
    known = _reads_as_dict_cache.get(cls)
    if known is None:
        known = _reads_as_dict(cls)
        if len(_reads_as_dict_cache) < 256:  # classes made on the fly must not grow it
            _reads_as_dict_cache[cls] = known
    if not known:
        return None
    fields: dict[str, Any] = obj.__dict__
    try:
        extra = obj.__pydantic_extra__
    except AttributeError:  # a model whose __init__ did not run
        extra = None
    if extra:  # an instance attribute is found before pydantic's extras
        return {**extra, **fields}
    return fields


def fast_buckets(usage: Any, provider: str | None) -> Buckets | None:
    """The buckets ``normalize_generic`` gives ``usage`` with no flags, or None when this
    fast path cannot tell (then ``normalize_generic`` is the answer)."""
    fields = _fields_view(usage)
    if fields is None:
        return None
    get = fields.get
    if get("prompt_tokens") is not None:
        return _openai(fields, "prompt_tokens_details", "completion_tokens_details", True)
    if get("prompt_token_count") is not None:
        return _gemini(fields)
    if get("inputTokens") is not None:  # AWS Bedrock Converse: additive
        return _additive(
            get("inputTokens"),
            get("outputTokens"),
            get("cacheReadInputTokens"),
            get("cacheWriteInputTokens"),
            None,
        )
    if get("input_tokens") is not None:
        if get("input_tokens_details") is not None or (provider in ("openai", "azure")):
            return _openai(fields, "input_tokens_details", "output_tokens_details", False)
        return _anthropic(fields)
    return None


# Below, a count is sane when ``_count`` keeps it as it is without a flag: None (read as
# 0) or an int (not a bool) from 0 to MAX_SANE_TOKENS. The checks are written out, not
# called, and compared one by one: a call per count, or min() and max() over them, cost
# more than the rest of this path.


def _openai(
    fields: dict[str, Any], in_details: str, out_details: str, chat: bool
) -> Buckets | None:
    """Chat Completions (and Embeddings, DeepSeek) or Responses usage: inclusive counts."""
    details = fields.get(in_details)
    if details is not None:
        details = _fields_view(details)
        if details is None:
            return None
        written = details.get("cache_write_tokens")
        cached = details.get("cached_tokens")
    else:
        written = cached = None
    reasoning_details = fields.get(out_details)
    if reasoning_details is not None:
        reasoning_details = _fields_view(reasoning_details)
        if reasoning_details is None:
            return None
        reasoning = reasoning_details.get("reasoning_tokens")
    else:
        reasoning = None
    if chat:
        total_in, total_out = fields.get("prompt_tokens"), fields.get("completion_tokens")
        if cached is None:  # DeepSeek reports hits next to the OpenAI fields
            cached = fields.get("prompt_cache_hit_tokens")
    else:
        total_in, total_out = fields.get("input_tokens"), fields.get("output_tokens")
    total_in = 0 if total_in is None else total_in
    total_out = 0 if total_out is None else total_out
    cached = 0 if cached is None else cached
    written = 0 if written is None else written
    reasoning = 0 if reasoning is None else reasoning
    if not (
        type(total_in) is int
        and type(total_out) is int
        and type(cached) is int
        and type(written) is int
        and type(reasoning) is int
        and 0 <= total_in <= MAX_SANE_TOKENS
        and 0 <= total_out <= MAX_SANE_TOKENS
        and cached >= 0
        and written >= 0
        and reasoning >= 0
        and cached + written <= total_in  # else flagged: the generic path
        and reasoning <= total_out
    ):
        return None
    return (total_in - cached - written, cached, written, 0, total_out - reasoning, reasoning)


def _anthropic(fields: dict[str, Any]) -> Buckets | None:
    """Anthropic Messages usage: input excludes cache reads and writes."""
    breakdown = _fields_view(fields.get("cache_creation"))
    if breakdown is None:
        return None
    w5 = breakdown.get("ephemeral_5m_input_tokens")
    w1 = breakdown.get("ephemeral_1h_input_tokens")
    if w5 is None and w1 is None:  # older API versions: every write is a 5-minute write
        w5 = fields.get("cache_creation_input_tokens")
    return _additive(
        fields.get("input_tokens"),
        fields.get("output_tokens"),
        fields.get("cache_read_input_tokens"),
        w5,
        w1,
    )


def _additive(inp: Any, out: Any, read: Any, w5: Any, w1: Any) -> Buckets | None:
    inp = 0 if inp is None else inp
    out = 0 if out is None else out
    read = 0 if read is None else read
    w5 = 0 if w5 is None else w5
    w1 = 0 if w1 is None else w1
    if (
        type(inp) is int
        and type(out) is int
        and type(read) is int
        and type(w5) is int
        and type(w1) is int
        and 0 <= inp <= MAX_SANE_TOKENS
        and 0 <= out <= MAX_SANE_TOKENS
        and 0 <= read <= MAX_SANE_TOKENS
        and 0 <= w5 <= MAX_SANE_TOKENS
        and 0 <= w1 <= MAX_SANE_TOKENS
    ):
        return (inp, read, w5, w1, out, 0)
    return None


def _gemini(fields: dict[str, Any]) -> Buckets | None:
    """Gemini ``usage_metadata``: cache ⊂ prompt, thoughts next to candidates."""
    get = fields.get
    prompt, output = get("prompt_token_count"), get("candidates_token_count")
    cached, tool = get("cached_content_token_count"), get("tool_use_prompt_token_count")
    thoughts = get("thoughts_token_count")
    prompt = 0 if prompt is None else prompt
    output = 0 if output is None else output
    cached = 0 if cached is None else cached
    tool = 0 if tool is None else tool
    thoughts = 0 if thoughts is None else thoughts
    if (
        type(prompt) is int
        and type(output) is int
        and type(cached) is int
        and type(tool) is int
        and type(thoughts) is int
        and 0 <= prompt <= MAX_SANE_TOKENS
        and 0 <= output <= MAX_SANE_TOKENS
        and 0 <= cached <= MAX_SANE_TOKENS
        and 0 <= tool <= MAX_SANE_TOKENS
        and 0 <= thoughts <= MAX_SANE_TOKENS
        and cached <= prompt  # else flagged: the generic path
    ):
        return (prompt - cached + tool, cached, 0, 0, output, thoughts)
    return None
