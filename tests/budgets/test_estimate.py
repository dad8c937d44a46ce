"""The largest cost of a call, from its request: what a ``per="call"`` cap is checked
against. An upper bound, or None, never an under-estimate."""

from __future__ import annotations

import time
from decimal import Decimal

from majordomo_log.budgets.estimate import input_bytes, largest_cost, largest_tokens, output_cap
from majordomo_log.record.pricing import price_table

PRICES = price_table(None)
NOW = time.time()


def test_text_is_counted_in_utf8_bytes_which_bound_the_tokens() -> None:
    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "héllo 你好"}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
    }
    text = ["system", "Be brief.", "user", "text", "héllo 你好", "function", "f", "d"]
    keys = ["role", "content"] * 2 + ["type", "text", "type", "function", "name", "description"]
    text += keys  # keys are sent too
    assert input_bytes(request) == sum(len(t.encode()) for t in text)


def test_non_text_parts_make_the_estimate_unknown() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert input_bytes({"messages": [{"role": "user", "content": [image]}]}) is None
    bedrock_image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}
    assert input_bytes({"messages": [{"role": "user", "content": [bedrock_image]}]}) is None


def test_the_output_cap_comes_from_the_request() -> None:
    assert output_cap({"max_tokens": 50}, "messages") == 50
    assert output_cap({"max_completion_tokens": 70}, "chat.completions") == 70
    assert output_cap({"max_output_tokens": 90}, "responses") == 90
    assert output_cap({"inferenceConfig": {"maxTokens": 30}}, "converse") == 30
    assert output_cap({"config": {"max_output_tokens": 11}}, "models.generate_content") == 11
    assert output_cap({}, "embeddings") == 0
    assert output_cap({}, "chat.completions") is None
    assert output_cap({"max_tokens": True}, "chat.completions") is None


def test_the_largest_cost_is_list_price_for_every_byte_and_the_whole_output_cap() -> None:
    request = {"messages": [{"role": "user", "content": "x" * 985}], "max_tokens": 1000}
    # 1000 input bytes ("role", "content", "user" + 985) at $0.15/M, 1000 output tokens at
    # $0.60/M
    cost = largest_cost(PRICES, "gpt-4o-mini", "chat.completions", request, NOW)
    assert cost == Decimal("0.00015") + Decimal("0.0006")
    assert largest_tokens(request, "chat.completions") == 2000
    assert largest_cost(PRICES, "no-such-model", "chat.completions", request, NOW) is None


def test_estimating_is_linear_in_the_size_of_the_prompt() -> None:
    """Prompts are attacker-controlled: twice the parts, about twice the time."""

    def timed(parts: int) -> float:
        request = {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "ab"}] * parts}]
        }
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            input_bytes(request)
            best = min(best, time.perf_counter() - start)
        return best

    small, large = timed(50_000), timed(100_000)
    assert large < small * 3.5


def test_every_completion_asked_for_is_counted() -> None:
    """n=128 is 128 completions of up to max_tokens each, not one."""
    request = {"messages": [], "max_tokens": 1000}
    one = largest_cost(PRICES, "gpt-4o-mini", "chat.completions", request, NOW)
    many = largest_cost(PRICES, "gpt-4o-mini", "chat.completions", {**request, "n": 128}, NOW)
    assert one == Decimal("0.0006") and many == Decimal("0.0006") * 128
    assert largest_tokens({**request, "best_of": 3}, "completions") == 3000
    config = {"max_output_tokens": 10, "candidate_count": 4}
    assert largest_tokens({"contents": [], "config": config}, "models.generate_content") == 40


def test_keys_and_numbers_are_sent_and_counted() -> None:
    names = {f"{'k' * 1000}{i}": {"type": "string"} for i in range(100)}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"properties": names}}}]
    counted = input_bytes({"tools": tools})
    assert counted is not None and counted > sum(len(name) for name in names)
    # a legacy prompt of token ids: at least a byte per token
    assert (input_bytes({"prompt": [[1] * 5000]}) or 0) >= 5000
    assert (input_bytes({"prompt": [2**4000]}) or 0) >= len(str(2**4000))


def test_input_the_provider_adds_itself_makes_the_estimate_unknown() -> None:
    text = [{"role": "user", "content": "hi"}]
    assert input_bytes({"input": "hi", "previous_response_id": "resp_1"}) is None
    assert input_bytes({"input": "hi", "conversation": "conv_1"}) is None
    assert input_bytes({"input": "hi", "prompt": {"id": "pmpt_1"}}) is None
    assert input_bytes({"input": "hi", "tools": [{"type": "web_search"}]}) is None
    assert input_bytes({"contents": "hi", "config": {"cached_content": "c/1"}}) is None
    assert input_bytes({"messages": text, "tools": [{"type": "function"}]}) is not None


def test_system_instructions_and_tools_outside_the_messages_are_counted() -> None:
    config = {"system_instruction": "s" * 5000, "max_output_tokens": 1}
    assert (input_bytes({"contents": "hi", "config": config}) or 0) >= 5000
    bedrock = {"messages": [], "toolConfig": {"tools": [{"toolSpec": {"name": "t" * 5000}}]}}
    assert (input_bytes(bedrock) or 0) >= 5000


def test_a_request_that_contains_itself_is_not_estimated_and_does_not_hang() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    cycle.append(cycle)
    start = time.perf_counter()
    assert input_bytes({"messages": [{"role": "user", "content": cycle}]}) is None
    assert time.perf_counter() - start < 30
