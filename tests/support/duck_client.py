"""A duck-typed LLM client (no SDK): every call returns a result that carries
majordomo-llm style usage, so the wrapper logs it as an LLM call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reply:
    content: str
    model: str
    input_tokens: int = 1000
    output_tokens: int = 500


class Acme:
    provider = "acme"

    async def complete(self, prompt: str, *, model: str = "gpt-4o-mini") -> Reply:
        return Reply(prompt, model)
