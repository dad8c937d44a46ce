"""Worker threads give the event loop a turn; a thread running a loop never sleeps."""

from __future__ import annotations

import asyncio

import pytest

from majordomo_log import _gil

# Work per item: three items stay under the millisecond between turns (0.9 ms), the
# fourth crosses it (1.2 ms), so a turn comes after every fourth item.
ITEM_SECONDS = 0.3 * _gil._WORK_SECONDS


class FakeClock:
    """The ``time`` that ``_gil`` reads, moved only by the test: an item of work takes
    exactly ``ITEM_SECONDS`` however busy the machine is, and every turn is recorded
    instead of slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.turns: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.turns.append(seconds)
        self.now += seconds


def work_with_turns(clock: FakeClock, items: int) -> None:
    turns = _gil.LoopTurns()
    for _ in range(items):
        clock.now += ITEM_SECONDS
        turns.maybe_yield()


async def test_a_worker_thread_takes_a_turn_after_each_millisecond_of_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_gil, "time", clock)
    await asyncio.to_thread(work_with_turns, clock, 100)
    assert clock.turns == [_gil._TURN_SECONDS] * 25


async def test_the_event_loop_thread_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_gil, "time", clock)
    work_with_turns(clock, 100)  # on the loop's own thread, as when a caller spills a burst
    assert clock.turns == []
