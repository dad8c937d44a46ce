"""Worker threads give the event loop a turn; a thread running a loop never sleeps; C work
on a large body (regex, compression) is cut into pieces with turns between."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import time
from types import SimpleNamespace

import orjson
import pytest

from majordomo_log import _loop_turns as _gil
from majordomo_log.record import redact as _redact
from majordomo_log.stores.bodies import layout as _bodies

# Work per item: three items stay under the millisecond between turns (0.9 ms), the
# fourth crosses it (1.2 ms), so a turn comes after every fourth item.
ITEM_SECONDS = 0.3 * _gil._WORK_SECONDS


class FakeClock:
    """The ``time`` that ``_loop_turns`` reads, moved only by the test: an item of work takes
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


# -- C work on a large body is cut into pieces, with a turn between ------------------------

MB = 2**20


def every_turn_counted(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A turn at every ``maybe_yield`` (no millisecond of work first), and a list of them:
    how many pieces the work was cut into, whatever the machine's speed."""
    turns: list[float] = []
    monkeypatch.setattr(_gil, "_WORK_SECONDS", 0.0)
    clock = SimpleNamespace(perf_counter=time.perf_counter, sleep=turns.append)
    monkeypatch.setattr(_gil, "time", clock)
    return turns


def large_envelope(size: int) -> bytes:
    line = "The quick brown fox, sk-not-a-key: password=hunter2 at https://u:p@host. "
    return orjson.dumps({"request": {"messages": [{"content": line * (size // len(line))}]}})


async def test_compressing_a_large_body_takes_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    turns = every_turn_counted(monkeypatch)
    payload = large_envelope(8 * MB)
    member = await asyncio.to_thread(_bodies.compress, payload, 1)
    assert gzip.decompress(member) == payload
    assert len(turns) >= len(payload) // _bodies._PIECE_BYTES - 1


async def test_a_segment_of_large_bodies_takes_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    turns = every_turn_counted(monkeypatch)
    payload = large_envelope(2 * MB)
    started = dt.datetime.now(dt.timezone.utc)
    bodies = [("0190a000-0000-7000-8000-00000000000" + str(n), started, payload) for n in (1, 2)]
    _, segment, suffixes = await asyncio.to_thread(_bodies.build_segment, bodies, 1)
    assert gzip.decompress(segment) == payload + b"\n" + payload + b"\n"
    assert len(suffixes) == 2
    assert len(turns) >= 2 * (len(payload) // _bodies._PIECE_BYTES - 1)


async def test_redacting_a_large_body_takes_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    turns = every_turn_counted(monkeypatch)
    envelope = large_envelope(4 * MB)
    scrubbed = await asyncio.to_thread(_redact.scrub, envelope, (b"sk-not-a-key",))
    assert b"hunter2" not in scrubbed and b"sk-not-a-key" not in scrubbed
    assert len(turns) >= len(envelope) // _redact._WINDOW


async def test_redacting_a_secret_many_windows_long_takes_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    turns = every_turn_counted(monkeypatch)
    text = "key: sk-" + "a" * (4 * MB) + " end"
    assert await asyncio.to_thread(_redact.redact_text, text) == "key: sk-[REDACTED] end"
    assert len(turns) >= 4 * MB // _redact._WINDOW
