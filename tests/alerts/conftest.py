"""Fixtures for the alert tests: a real receiver on loopback, dispatchers that are
always closed, and fresh once-per-process warnings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from majordomo_log._log import reset_warnings
from majordomo_log.alerts.dispatch import AlertDispatcher
from majordomo_log.testing.receiver import AlertReceiver


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    reset_warnings()  # warn_once is per process: each test sees its own first warning
    yield
    reset_warnings()


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as server:
        yield server


@pytest.fixture
def dispatchers() -> Iterator[Callable[..., AlertDispatcher]]:
    """Makes dispatchers with test-sized backoffs; closes them all at the end."""
    made: list[AlertDispatcher] = []

    def make(sinks: Any, **options: Any) -> AlertDispatcher:
        options.setdefault("backoff", 0.01)
        options.setdefault("max_backoff", 0.05)
        dispatcher = AlertDispatcher(sinks, **options)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.close(timeout=0.5)
