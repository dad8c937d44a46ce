"""The one kind of timing a test holds: the same code at n and at ``GROWTH`` x n,
its least disturbed runs compared with each other (see tests/record/test_linear_time.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

GROWTH = 4
MAX_RATIO = 8.0  # between linear (4x) and quadratic (16x)
RUNS = 7
MORE_RUNS = 14  # when the first runs say more than MAX_RATIO: disturbed, or quadratic
RULE_CHARS = 12_000  # both sizes stay in one window: the rules themselves are timed


def least_seconds(calls: list[Callable[[], object]], runs: int, best: list[float]) -> None:
    """Lower ``best`` to the shortest of ``runs`` more runs of each call, the calls
    interleaved: a disturbance (a cache another process emptied) hits both sizes alike
    or is left out."""
    for _ in range(runs):
        for index, call in enumerate(calls):
            started = time.thread_time()
            call()
            best[index] = min(best[index], time.thread_time() - started)


def growth(run: Callable[[Any], object], small: Any, large: Any) -> float:
    """How much longer ``run`` takes on ``large`` than on ``small``, at best."""
    calls = [lambda: run(small), lambda: run(large)]
    best = [math.inf, math.inf]
    least_seconds(calls, RUNS, best)
    if best[1] > MAX_RATIO * best[0]:  # quadratic work stays at 16x however many runs
        least_seconds(calls, MORE_RUNS, best)
    return best[1] / max(best[0], 1e-9)


def repeated(fragment: str, chars: int) -> str:
    return fragment * max(1, chars // len(fragment))
