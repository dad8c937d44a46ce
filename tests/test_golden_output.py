"""Rows and envelopes byte for byte as the corpus recorded them (tests/golden/corpus.py).

Every recorded call (chat, responses, embeddings, messages; plain, streamed, failed;
secrets, tags, unicode, a body over the cap, a long-context tier) is rebuilt as the
``CallRecord`` the writer receives and run through pricing, the envelope and the row.
A change meant to be faster only must leave all of it identical.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))

import corpus

CASES: list[dict[str, Any]] = orjson.loads(corpus.CORPUS.read_bytes())


def _name(case: dict[str, Any]) -> str:
    i = case["input"]
    return f"{i['operation']}-{i['model']}-{'stream' if i['stream'] else 'plain'}-{i['status']}"


def test_the_corpus_covers_each_shape() -> None:
    seen = {(c["input"]["operation"], c["input"]["stream"], c["input"]["status"]) for c in CASES}
    for shape in [
        ("chat.completions", False, "ok"),
        ("chat.completions", True, "ok"),
        ("responses", False, "ok"),
        ("responses", True, "ok"),
        ("embeddings", False, "ok"),
        ("messages", False, "ok"),
        ("messages", True, "ok"),
        ("chat.completions", False, "error"),
        ("messages", False, "error"),
    ]:
        assert shape in seen
    assert any("[REDACTED]" in c["expected"]["envelope"] for c in CASES)
    assert any('"$truncated"' in c["expected"]["envelope"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{n}-{_name(c)}" for n, c in enumerate(CASES)])
def test_row_and_envelope_are_unchanged(case: dict[str, Any]) -> None:
    [got] = corpus.outputs([corpus.from_input(case["input"])])
    assert got["row"] == case["expected"]["row"]
    assert got["envelope"] == case["expected"]["envelope"]


def test_a_whole_batch_gives_the_same_output_as_one_record_at_a_time() -> None:
    got = corpus.outputs([corpus.from_input(c["input"]) for c in CASES])
    assert got == [c["expected"] for c in CASES]
