"""Budgets and anomaly rules alerting through real sinks: a webhook on loopback, Slack-
and PagerDuty-shaped receivers, and the log."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.alerts.sinks import verify_signature
from majordomo_log.testing import FakeProvider, fake_sync_openai_client
from majordomo_log.testing.receiver import AlertReceiver

MESSAGES = [{"role": "user", "content": "hi"}]
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}
CALL_COST = Decimal("0.00021")  # gpt-4o-mini: 1000 × $0.15/M + 100 × $0.60/M


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(openai_usage=USAGE)  # type: ignore[typeddict-item]


def calls(llm: Any, n: int, model: str = "gpt-4o-mini", **tags: Any) -> None:
    with ml.tags(**tags):
        for _ in range(n):
            llm.chat.completions.create(model=model, messages=MESSAGES)


def test_each_threshold_alerts_once_per_scope_value(tmp_path: Path, provider: FakeProvider) -> None:
    budget = ml.Budget(
        CALL_COST * 4, per="day", scope="user_id", thresholds=(0.5, 1.0), name="daily"
    )
    with AlertReceiver() as receiver:
        sink = ml.WebhookAlert(receiver.url + "/hook", secret="s3cret-signing-key")
        with ml.LoggingLLM(
            fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[budget], alerts=[sink]
        ) as llm:
            calls(llm, 6, user_id="u-1")  # crosses 50% at the 2nd call, 100% at the 4th
            calls(llm, 1, user_id="u-2")  # 25%: nothing
            assert receiver.wait_for(2, timeout=10)
            time.sleep(0.3)  # and nothing more
        sent = receiver.requests
    assert len(sent) == 2 and len(provider.requests) == 7  # soft: nothing refused
    first, second = (r.json for r in sent)
    assert (first["threshold"], second["threshold"]) == (0.5, 1.0)
    for payload in (first, second):
        assert payload["kind"] == "budget" and payload["budget"] == "daily"
        assert payload["scope"] == ["user_id"] and payload["scope_value"] == ["u-1"]
        assert payload["period"] == "day" and payload["limit"] == str(CALL_COST * 4)
        assert payload["period_end"].startswith(payload["period_start"][:4])
    assert Decimal(first["spend"]) == CALL_COST * 2 and Decimal(second["spend"]) == CALL_COST * 4
    assert first["dedup_key"] != second["dedup_key"]
    for request in sent:
        assert verify_signature(
            request.body, request.headers["x-majordomo-signature"], "s3cret-signing-key"
        )


def test_slack_and_pagerduty_get_their_own_shapes(tmp_path: Path, provider: FakeProvider) -> None:
    budget = ml.Budget(limit_requests=2, per="hour", hard=True, thresholds=(1.0,), name="cap")
    with AlertReceiver() as slack, AlertReceiver(status=202) as pagerduty:
        sinks = [
            ml.SlackAlert(slack.url + "/services/T000/B000/XXXXSECRET"),
            ml.PagerDutyAlert("R0UTINGKEY0123456789", url=pagerduty.url + "/v2/enqueue"),
        ]
        with ml.LoggingLLM(
            fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[budget], alerts=sinks
        ) as llm:
            calls(llm, 2)
            with pytest.raises(ml.BudgetExceeded):
                calls(llm, 1)
            assert slack.wait_for(1, timeout=10) and pagerduty.wait_for(1, timeout=10)
            assert "XXXXSECRET" not in repr(sinks[0]) and "R0UTINGKEY" not in repr(sinks[1])
        message, event = slack.requests[0].json, pagerduty.requests[0].json
    assert "'cap'" in message["text"] and message["blocks"]
    assert event["routing_key"] == "R0UTINGKEY0123456789" and event["event_action"] == "trigger"
    assert event["payload"]["severity"] == "critical"  # a hard budget at its limit
    assert event["dedup_key"] and "'cap'" in event["payload"]["summary"]


def test_without_alerts_a_crossing_is_logged(
    tmp_path: Path, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    budget = ml.Budget(CALL_COST, per="day", thresholds=(1.0,), name="tiny")
    with caplog.at_level(logging.INFO, "majordomo_log"):
        with ml.LoggingLLM(
            fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[budget]
        ) as llm:
            calls(llm, 1)
        deadline = time.monotonic() + 10
        while "'tiny' at 100%" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "Budget 'tiny' at 100%" in caplog.text


def test_a_model_with_no_price_alerts_once(tmp_path: Path, provider: FakeProvider) -> None:
    with AlertReceiver() as receiver:
        with ml.LoggingLLM(
            fake_sync_openai_client(provider),
            tmp_path / "l.db",
            alerts=[ml.WebhookAlert(receiver.url)],
            anomalies=ml.Anomalies(),
        ) as llm:
            calls(llm, 3, model="gpt-nobody-priced")
            assert receiver.wait_for(1, timeout=10)
            time.sleep(0.8)  # the watch drains twice a second: nothing more comes
        kinds = [r.json["kind"] for r in receiver.requests]
    assert kinds == ["unpriced_model"]
    assert receiver.requests[0].json["details"]["model"] == "gpt-nobody-priced"


def test_anomalies_need_somewhere_to_go(tmp_path: Path) -> None:
    with pytest.raises(ml.ConfigError, match="alerts="):
        ml.LoggingLLM(
            fake_sync_openai_client(), tmp_path / "l.db", alerts=[], anomalies=ml.Anomalies()
        )


def test_scope_values_holding_the_separator_keep_their_own_alerts_and_counters() -> None:
    import datetime as dt

    from majordomo_log.budgets.alerting import budget_alert
    from majordomo_log.budgets.fleet import counter_key

    budget = ml.Budget("1", per="day", scope=("org_id", "user_id"))
    start = dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc)
    one, other = ("a\x1fb", "c"), ("a", "b\x1fc")
    assert (
        budget_alert(budget, one, start, None, 1, 1.0).dedup_key
        != budget_alert(budget, other, start, None, 1, 1.0).dedup_key
    )
    assert counter_key(budget.name, one, start) != counter_key(budget.name, other, start)
    # values without the separator keep their keys
    assert counter_key(budget.name, ("a", "b"), start) == counter_key(
        budget.name, ("a", "b"), start
    )


def test_closing_a_wrapper_stops_its_alert_threads(tmp_path: Path, provider: FakeProvider) -> None:
    """A wrapper built per request (URL stores allow it) must not leave a thread each."""
    import threading

    def ours() -> list[threading.Thread]:
        names = ("majordomo-log-anomalies", "majordomo-log-alerts")
        return [t for t in threading.enumerate() if t.name in names and t.is_alive()]

    before = len(ours())
    with AlertReceiver() as receiver:
        for _ in range(5):
            with ml.LoggingLLM(
                fake_sync_openai_client(provider),
                tmp_path / "l.db",
                alerts=[ml.WebhookAlert(receiver.url)],
                anomalies=ml.Anomalies(),
            ) as llm:
                calls(llm, 1, model="gpt-nobody-priced")  # an alert: both threads run
        deadline = time.monotonic() + 5
        while len(ours()) > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.requests) >= 1  # sent before close returned
    assert len(ours()) <= before
