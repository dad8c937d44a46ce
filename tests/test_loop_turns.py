"""Worker threads give the event loop a turn; a thread running a loop never sleeps."""

from __future__ import annotations

import asyncio
import time

import pytest

from majordomo_log import _gil


def busy_with_turns(seconds: float) -> int:
    """CPU work for ``seconds``, with turns; how many times it slept."""
    turns = _gil.LoopTurns()
    slept = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        before = time.perf_counter()
        turns.maybe_yield()
        slept += time.perf_counter() - before >= _gil._TURN_SECONDS / 2
    return slept


async def test_a_worker_thread_takes_turns() -> None:
    slept = await asyncio.to_thread(busy_with_turns, 0.02)
    assert 5 <= slept <= 25  # about one turn per millisecond of work


async def test_the_event_loop_thread_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(_gil.time, "sleep", calls.append)
    busy_with_turns(0.01)  # on the loop's own thread, as when a caller spills a burst
    assert calls == []
