"""µs per 4 KB body envelope: the built-in redaction rules, next to orjson and gzip-1.

    .venv/bin/python bench/redaction.py

A chat request and response of English text (no secret in it: the common case), cut
to 4096 bytes; medians of 7 rounds, all in one run (compare ratios, not absolute
figures across machines).
"""

from __future__ import annotations

import gzip
import random
import statistics
import time
from collections.abc import Callable

import orjson

from majordomo_log.record.redact import redact_bytes

_WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people"
)
WORDS = _WORDS.split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def envelope() -> tuple[bytes, dict[str, object]]:
    rng = random.Random(1)
    value: dict[str, object] = {
        "format": "majordomo-log/body@1",
        "request_id": "0190a0b0-0000-7000-8000-000000000000",
        "started_at": "2026-01-01T00:00:00+00:00",
        "provider": "openai",
        "operation": "chat.completions",
        "model": "gpt-4o",
        "status": "ok",
        "request": {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": _text(rng, 300)},
                {"role": "user", "content": _text(rng, 250)},
            ],
        },
        "response": {
            "id": "chatcmpl-abc123",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"content": _text(rng, 250)}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300},
        },
    }
    return orjson.dumps(value)[:4096], value


def per_call_us(fn: Callable[[], object], n: int = 5000) -> float:
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def main() -> None:
    data, value = envelope()
    print(f"envelope: {len(data)} bytes")
    print(f"redact_bytes    {per_call_us(lambda: redact_bytes(data)):7.1f} µs")
    print(f"orjson.dumps    {per_call_us(lambda: orjson.dumps(value)):7.1f} µs")
    print(f"gzip level 1    {per_call_us(lambda: gzip.compress(data, 1, mtime=0), 2000):7.1f} µs")


if __name__ == "__main__":
    main()
