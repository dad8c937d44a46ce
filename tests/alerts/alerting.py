"""Shared by the alert tests: the secrets they put in sink URLs and keys (registered with
the session's secret scan, which then checks that no log line of the whole run holds
them), an event factory, and the fixtures (a real receiver on loopback, dispatchers that
are always closed, fresh once-per-process warnings), which the test modules import.

Not a conftest.py: tests elsewhere import the top-level ``conftest`` by name, and a second
conftest.py module would stand in for it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from secret_scan import register_secret

from majordomo_log._log import reset_warnings
from majordomo_log.alerts.dispatch import AlertDispatcher
from majordomo_log.alerts.events import AlertEvent
from majordomo_log.testing.receiver import AlertReceiver

SLACK_TOKEN = "xoxALERTSslackTOKEN9f8e7d6c"
SLACK_PATH = f"/services/T0ALERTS/B0ALERTS/{SLACK_TOKEN}"
ROUTING_KEY = "pdALERTSroutingKEY0123456789abcd"
SIGNING_SECRET = "whsec-ALERTS-0123456789"
URL_PASSWORD = "pw-ALERTS-hunter22"
QUERY_TOKEN = "qtok-ALERTS-987654"
SECRETS = (SLACK_TOKEN, ROUTING_KEY, SIGNING_SECRET, URL_PASSWORD, QUERY_TOKEN)
for _secret in SECRETS:
    register_secret(_secret)

UTC = dt.timezone.utc


def budget_event(key: str = "budget:day:alice:2024-05-01:0.8", **changes: Any) -> AlertEvent:
    """A budget crossing: $4.12 of a $5.00 daily budget for user_id=alice, at 80%."""
    fields: dict[str, Any] = {
        "kind": "budget",
        "title": "Budget '$5.00 per day by user_id' at 80% for user_id=alice",
        "severity": "warning",
        "dedup_key": key,
        "at": dt.datetime(2024, 5, 1, 15, 30, tzinfo=UTC),
        "budget": "$5.00 per day by user_id",
        "scope": ("user_id",),
        "scope_value": ("alice",),
        "period": "day",
        "period_start": dt.datetime(2024, 5, 1, tzinfo=UTC),
        "period_end": dt.datetime(2024, 5, 2, tzinfo=UTC),
        "unit": "usd",
        "spend": Decimal("4.1234"),
        "limit": Decimal("5.00"),
        "threshold": 0.8,
    }
    fields.update(changes)
    return AlertEvent(**fields)


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
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
