"""Fixtures for the alert tests: a real receiver on loopback and fresh
once-per-process warnings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from majordomo_log._log import reset_warnings
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
