"""Usage normalization: every provider's token counts into one set of buckets.

Providers disagree on whether cached and reasoning tokens are *inside* the
input/output counts (OpenAI, Gemini cache, DeepSeek) or *next to* them
(Anthropic, Bedrock, Gemini thoughts). Pricing each provider's numbers as they
come is how peer tools double-count. Here every shape is turned into six
non-overlapping buckets, each priced exactly once:

    input           input not read from or written to a cache
    cache_read      input served from a cache
    cache_write_5m  input written to a 5-minute cache
    cache_write_1h  input written to a 1-hour cache
    output          output excluding reasoning
    reasoning       reasoning/thinking output billed as output

Their sum is the call's total billed tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .usage_shapes import MAX_SANE_TOKENS as MAX_SANE_TOKENS  # its public home
from .usage_shapes import fast_buckets


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in non-overlapping buckets (see the module docstring)."""

    input: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0
    reasoning: int = 0
    flags: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return (
            self.input
            + self.cache_read
            + self.cache_write_5m
            + self.cache_write_1h
            + self.output
            + self.reasoning
        )

    @property
    def total_input(self) -> int:
        """All input tokens, cached or not: what long-context tiers count."""
        return self.input + self.cache_read + self.cache_write_5m + self.cache_write_1h

    def checked(self) -> Usage:
        """This usage if every count is a sane int; otherwise each bad count as 0 with
        its flag (a Usage built by an application's extractor may hold anything)."""
        counts = (
            self.input,
            self.cache_read,
            self.cache_write_5m,
            self.cache_write_1h,
            self.output,
            self.reasoning,
        )
        flags_ok = isinstance(self.flags, tuple) and all(isinstance(f, str) for f in self.flags)
        if flags_ok and all(type(c) is int and 0 <= c <= MAX_SANE_TOKENS for c in counts):
            return self
        flags: list[str] = list(self.flags) if flags_ok else ["unreadable_flags"]
        fixed = [_count(c, flags) for c in counts]
        return Usage(
            input=fixed[0],
            cache_read=fixed[1],
            cache_write_5m=fixed[2],
            cache_write_1h=fixed[3],
            output=fixed[4],
            reasoning=fixed[5],
            flags=tuple(flags),
        )

    @classmethod
    def inclusive(
        cls,
        input_tokens: Any,
        output_tokens: Any,
        *,
        cached_tokens: Any = 0,
        reasoning_tokens: Any = 0,
        cache_write_tokens: Any = 0,
    ) -> Usage:
        """Build from OpenAI-style counts, where cached and cache-written tokens are part
        of input and reasoning is part of output. OpenAI's cache writes (any retention)
        go to the ``cache_write_5m`` bucket, billed at the model's cache-write rate."""
        flags: list[str] = []
        total_in = _count(input_tokens, flags)
        cached = _count(cached_tokens, flags)
        written = _count(cache_write_tokens, flags)
        total_out = _count(output_tokens, flags)
        reasoning = _count(reasoning_tokens, flags)
        if cached + written > total_in:
            flags.append("cached_exceeds_input")
            cached = min(cached, total_in)
            written = total_in - cached
        if reasoning > total_out:
            flags.append("reasoning_exceeds_output")
            reasoning = total_out
        return cls(
            input=total_in - cached - written,
            cache_read=cached,
            cache_write_5m=written,
            output=total_out - reasoning,
            reasoning=reasoning,
            flags=tuple(flags),
        )

    @classmethod
    def additive(
        cls,
        input_tokens: Any,
        output_tokens: Any,
        *,
        cache_read_tokens: Any = 0,
        cache_write_5m_tokens: Any = 0,
        cache_write_1h_tokens: Any = 0,
        reasoning_tokens: Any = 0,
    ) -> Usage:
        """Build from Anthropic-style counts, where every count is its own bucket."""
        flags: list[str] = []
        return cls(
            input=_count(input_tokens, flags),
            cache_read=_count(cache_read_tokens, flags),
            cache_write_5m=_count(cache_write_5m_tokens, flags),
            cache_write_1h=_count(cache_write_1h_tokens, flags),
            output=_count(output_tokens, flags),
            reasoning=_count(reasoning_tokens, flags),
            flags=tuple(flags),
        )


def _count(value: Any, flags: list[str]) -> int:
    """A token count as a sane int; anything else becomes 0 and a flag."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        flags.append("non_numeric_count")
        return 0
    if value != value:  # NaN
        flags.append("nan_count")
        return 0
    if value < 0:
        flags.append("negative_count")
        return 0
    if value > MAX_SANE_TOKENS:
        flags.append("absurd_count")
        return 0
    if isinstance(value, float) and not value.is_integer():
        flags.append("fractional_count")
    return int(value)


_ABSENT = object()


def field_of(obj: Any, name: str) -> Any:
    """Read ``name`` from a pydantic model, plain object or mapping; None if absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):  # subclasses too: attribute-style dicts answer any name
        return obj.get(name)
    # Attributes before the Mapping ABC check, which costs a microsecond per call: SDK
    # usage objects are pydantic models.
    value = getattr(obj, name, _ABSENT)
    if value is not _ABSENT:
        return value
    return obj.get(name) if isinstance(obj, Mapping) else None


def normalize_openai(usage: Any) -> Usage:
    """OpenAI Chat Completions, Responses and Embeddings (and DeepSeek) usage."""
    if field_of(usage, "prompt_tokens") is not None:  # chat completions, embeddings
        details = field_of(usage, "prompt_tokens_details")
        cached = field_of(details, "cached_tokens")
        if cached is None:  # DeepSeek reports hits next to the OpenAI fields
            cached = field_of(usage, "prompt_cache_hit_tokens")
        return Usage.inclusive(
            field_of(usage, "prompt_tokens"),
            field_of(usage, "completion_tokens"),
            cached_tokens=cached,
            cache_write_tokens=field_of(details, "cache_write_tokens"),
            reasoning_tokens=field_of(
                field_of(usage, "completion_tokens_details"), "reasoning_tokens"
            ),
        )
    details = field_of(usage, "input_tokens_details")
    return Usage.inclusive(  # Responses API
        field_of(usage, "input_tokens"),
        field_of(usage, "output_tokens"),
        cached_tokens=field_of(details, "cached_tokens"),
        cache_write_tokens=field_of(details, "cache_write_tokens"),
        reasoning_tokens=field_of(field_of(usage, "output_tokens_details"), "reasoning_tokens"),
    )


def normalize_anthropic(usage: Any) -> Usage:
    """Anthropic Messages usage: input excludes cache reads and writes."""
    breakdown = field_of(usage, "cache_creation")
    w5 = field_of(breakdown, "ephemeral_5m_input_tokens")
    w1 = field_of(breakdown, "ephemeral_1h_input_tokens")
    if w5 is None and w1 is None:  # older API versions: every write is a 5-minute write
        w5 = field_of(usage, "cache_creation_input_tokens")
    return Usage.additive(
        field_of(usage, "input_tokens"),
        field_of(usage, "output_tokens"),
        cache_read_tokens=field_of(usage, "cache_read_input_tokens"),
        cache_write_5m_tokens=w5,
        cache_write_1h_tokens=w1,
    )


def normalize_gemini(usage: Any) -> Usage:
    """Google Gemini ``usage_metadata``: cache ⊂ prompt, thoughts next to candidates."""
    base = Usage.inclusive(
        field_of(usage, "prompt_token_count"),
        field_of(usage, "candidates_token_count"),
        cached_tokens=field_of(usage, "cached_content_token_count"),
    )
    flags: list[str] = list(base.flags)
    return Usage(
        input=base.input + _count(field_of(usage, "tool_use_prompt_token_count"), flags),
        cache_read=base.cache_read,
        output=base.output,
        reasoning=_count(field_of(usage, "thoughts_token_count"), flags),
        flags=tuple(flags),
    )


def normalize_bedrock(usage: Any) -> Usage:
    """AWS Bedrock Converse usage: additive, like Anthropic."""
    return Usage.additive(
        field_of(usage, "inputTokens"),
        field_of(usage, "outputTokens"),
        cache_read_tokens=field_of(usage, "cacheReadInputTokens"),
        cache_write_5m_tokens=field_of(usage, "cacheWriteInputTokens"),
    )


def normalize_any(usage: Any, provider: str | None = None) -> Usage | None:
    """Normalize a usage payload of any known shape; None if it has no counts."""
    if usage is None:
        return None
    # The common payloads (SDK models, dicts) with sane counts are read directly; anything
    # else, odd values included, by the generic path, which decides every flag.
    buckets = fast_buckets(usage, provider)
    if buckets is None:
        return normalize_generic(usage, provider)
    usage_ = _new_usage(Usage)
    s_in, s_read, s_w5, s_w1, s_out, s_reason, s_flags = _USAGE_SLOTS
    s_in(usage_, buckets[0])
    s_read(usage_, buckets[1])
    s_w5(usage_, buckets[2])
    s_w1(usage_, buckets[3])
    s_out(usage_, buckets[4])
    s_reason(usage_, buckets[5])
    s_flags(usage_, ())
    return usage_


_new_usage = object.__new__
# Usage is frozen: its slots are filled through their descriptors, as the dataclass's own
# __init__ does through object.__setattr__, at a fraction of the cost.
_USAGE_SLOTS = tuple(
    Usage.__dict__[name].__set__
    for name in (
        "input",
        "cache_read",
        "cache_write_5m",
        "cache_write_1h",
        "output",
        "reasoning",
        "flags",
    )
)


def normalize_generic(usage: Any, provider: str | None = None) -> Usage | None:
    """``normalize_any`` through ``field_of`` only: any object, mapping or model."""
    if usage is None:
        return None
    if field_of(usage, "prompt_tokens") is not None:
        return normalize_openai(usage)
    if field_of(usage, "prompt_token_count") is not None:
        return normalize_gemini(usage)
    if field_of(usage, "inputTokens") is not None:
        return normalize_bedrock(usage)
    if field_of(usage, "input_tokens") is not None:
        if field_of(usage, "input_tokens_details") is not None or (provider in ("openai", "azure")):
            return normalize_openai(usage)
        return normalize_anthropic(usage)
    return None
