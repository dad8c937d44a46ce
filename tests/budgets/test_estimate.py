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
    request = {"messages": [{"role": "user", "content": "x" * 996}], "max_tokens": 1000}
    # 1000 input bytes ("user" + 996) at $0.15/M, 1000 output tokens at $0.60/M
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
