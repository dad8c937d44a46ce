"""What a page may be asked (majordomo_log/dashboard/params.py): windows aligned to whole
hours and days, and every bad parameter a BadRequest that says what was wrong."""

from __future__ import annotations

import datetime as dt

import pytest

from majordomo_log.dashboard.params import (
    BadRequest,
    calls_params,
    overview_params,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 28, 13, 45, 10, tzinfo=UTC)


def q(**values: str) -> dict[str, list[str]]:
    return {k: [v] for k, v in values.items()}


def test_defaults_are_thirty_whole_days_by_model() -> None:
    p = overview_params({}, NOW)
    assert (p.by, p.window.step, p.window_name) == ("model", "day", "30d")
    assert p.window.until == dt.datetime(2026, 11, 29, tzinfo=UTC)  # today, whole
    assert p.window.since == dt.datetime(2026, 10, 30, tzinfo=UTC)
    assert len(p.window.buckets()) == 30


def test_hours_end_with_the_current_hour() -> None:
    p = overview_params(q(window="24h", step="hour", by="user_id"), NOW)
    assert p.window.until == dt.datetime(2026, 11, 28, 14, tzinfo=UTC)
    assert len(p.window.buckets()) == 24 and p.by == "user_id"


def test_until_takes_dates_times_and_zones() -> None:
    p = overview_params(q(until="2026-01-10", step="hour", window="24h"), NOW)
    assert p.window.until == dt.datetime(2026, 1, 10, tzinfo=UTC)  # midnight is whole
    p = overview_params(q(until="2026-01-10T10:30+02:00", step="hour", window="24h"), NOW)
    assert p.window.until == dt.datetime(2026, 1, 10, 9, tzinfo=UTC)
    assert p.until_text == "2026-01-10T10:30+02:00"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (q(by="password"), "by='password' is not one of model, feature"),
        (q(by="model; DROP TABLE llm_requests"), "is not one of"),
        (q(step="minute"), "step='minute' is not one of hour, day"),
        (q(window="2y"), "window='2y' is not one of 24h"),
        (q(until="yesterday"), "until='yesterday' is not a date"),
        (q(until="0001-01-01"), "is out of range"),
        (q(colour="red"), "unknown parameter 'colour'"),
        ({"by": ["model", "feature"]}, "parameter 'by' is given 2 times"),
    ],
)
def test_bad_overview_parameters(query: dict[str, list[str]], message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        overview_params(query, NOW)
    assert message in str(caught.value)


def test_a_long_bad_value_is_quoted_short() -> None:
    with pytest.raises(BadRequest) as caught:
        overview_params(q(by="x" * 10_000), NOW)
    assert len(str(caught.value)) < 200


def test_calls_parameters() -> None:
    p = calls_params(q(limit="5", feature="chat", window="7d", until="2026-11-20T06:00"), NOW)
    assert (p.limit, p.filter) == (5, ("feature", "chat"))
    assert p.window.until == dt.datetime(2026, 11, 20, 6, tzinfo=UTC)
    assert p.window.since == p.window.until - dt.timedelta(days=7)
    assert calls_params({}, NOW).limit == 50 and calls_params({}, NOW).filter is None
    assert calls_params(q(feature=""), NOW).filter == ("feature", "")  # the empty value
    for bad in ("0", "501", "-1", "ten", "1e3"):
        with pytest.raises(BadRequest, match="limit="):
            calls_params(q(limit=bad), NOW)
    with pytest.raises(BadRequest, match="one of"):
        calls_params(q(model="gpt-4o", feature="chat"), NOW)
    with pytest.raises(BadRequest, match="longer than 255"):
        calls_params(q(user_id="u" * 256), NOW)
    with pytest.raises(BadRequest, match="unknown parameter 'status'"):
        calls_params(q(status="ok"), NOW)
