"""A budget's charge prices the common call on the caller's path with integer arithmetic:
it must be exactly what the full pricing gives, to the unit, or step aside."""

from __future__ import annotations

import time
from typing import Any

import anthropic.types
import openai.types.chat
from hypothesis import given, settings
from hypothesis import strategies as st

from majordomo_log.budgets.charge import completed_cost
from majordomo_log.budgets.fleet import to_units
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import price_table

CTX = CallContext(prices=price_table(None), api_key_alias=None, tags={}, secrets=())
OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "o3-mini", "gpt-4.1", "gpt-5"]
ANTHROPIC_MODELS = ["claude-sonnet-4-5", "claude-3-5-haiku-20241022", "claude-opus-4-1"]


def record(provider: str, operation: str, model: str, response: Any) -> CallRecord:
    made = CallRecord(
        None, time.time(), time.perf_counter(), provider, operation, model, False, None, None, CTX
    )
    made.response = response
    made.response_unread = True
    return made


def chat(model: str, prompt: int, cached: int, completion: int, reasoning: int, tier: Any) -> Any:
    return openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "c", "object": "chat.completion", "created": 1, "model": model,
            "choices": [], "service_tier": tier,
            "usage": {
                "prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
                "completion_tokens_details": {"reasoning_tokens": reasoning},
            },
        }
    )  # fmt: skip


def message(model: str, inp: int, read: int, w5: int, w1: int, out: int) -> Any:
    return anthropic.types.Message.model_validate(
        {
            "id": "m", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {
                "input_tokens": inp, "output_tokens": out,
                "cache_read_input_tokens": read, "cache_creation_input_tokens": w5 + w1,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1
                },
            },
        }
    )  # fmt: skip


def full_total(provider: str, operation: str, model: str, response: Any) -> int | None:
    """The full path's total, in the charge's units of 1e-10 USD."""
    _, cost, _ = record(provider, operation, model, response).priced()
    return None if cost is None else to_units(cost.total, "usd")


counts = st.integers(min_value=0, max_value=400_000)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(OPENAI_MODELS), counts, counts, counts, counts,
    st.sampled_from([None, "default", "flex", "priority"]),
)  # fmt: skip
def test_openai_chat_is_priced_as_the_full_path_does(
    model: str, prompt: int, cached: int, completion: int, reasoning: int, tier: Any
) -> None:
    cached, reasoning = min(cached, prompt), min(reasoning, completion)
    response = chat(model, prompt, cached, completion, reasoning, tier)
    made = record("openai", "chat.completions", model, response)
    _, quick, _ = completed_cost(made)
    assert quick == full_total("openai", "chat.completions", model, response)
    # the standard tier is the integer path (a long-context tier too); others are priced
    assert made.is_priced == (tier in ("flex", "priority"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ANTHROPIC_MODELS), counts, counts, counts, counts, counts)
def test_anthropic_messages_are_priced_as_the_full_path_does(
    model: str, inp: int, read: int, w5: int, w1: int, out: int
) -> None:
    response = message(model, inp, read, w5, w1, out)
    made = record("anthropic", "messages", model, response)
    _, quick, _ = completed_cost(made)
    assert quick == full_total("anthropic", "messages", model, response)
    assert not made.is_priced


def test_an_unknown_model_is_left_to_the_full_path() -> None:
    response = chat("gpt-nobody", 10, 0, 5, 0, None)
    assert completed_cost(record("openai", "chat.completions", "gpt-nobody", response)) == (
        completed_cost(record("openai", "chat.completions", "gpt-nobody", response))
    )
    _, cost, status = completed_cost(record("openai", "chat.completions", "gpt-nobody", response))
    assert cost is None and status == "unknown_model"
