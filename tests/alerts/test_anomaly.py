"""The anomaly rules: each fires when it should and stays quiet when it should not, names
the occurrence the same way in every process, holds bounded memory whatever tag values
callers send, takes linear time, and never raises on a summary it cannot read.

Time is the calls' own (``CallSummary.at``), so every test here is deterministic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from linear_time import MAX_RATIO, growth

from majordomo_log._exceptions import ConfigError
from majordomo_log.alerts.anomaly import Anomalies, AnomalyDetector, CallSummary
from majordomo_log.alerts.events import AlertEvent

UTC = dt.timezone.utc
T = dt.datetime(2026, 12, 5, 10, tzinfo=UTC).timestamp()  # 10:00Z, on an hour
HOUR = 3600.0


def call(
    at: float = T,
    *,
    status: str = "ok",
    cost: str | None = "0.01",
    model: str | None = "gpt-4o",
    feature: Any = "search",
    user: Any = "u-1",
    cost_status: str = "computed",
    request_id: str = "req-1",
    tags: Mapping[str, Any] | None = None,
) -> CallSummary:
    return CallSummary(
        at=at,
        model=model,
        provider="openai",
        status=status,
        cost=None if cost is None else Decimal(cost),
        cost_status=cost_status,
        request_id=request_id,
        tags={"feature": feature, "user_id": user} if tags is None else tags,
    )


def feed(detector: AnomalyDetector, summaries: list[CallSummary]) -> list[AlertEvent]:
    return [event for summary in summaries for event in detector.observe(summary)]


def only(kind: str, rules: Anomalies | None = None, **changes: Any) -> AnomalyDetector:
    """A detector with one rule on, so a test sees that rule's alerts only."""
    off: dict[str, Any] = {
        "error_rate": None,
        "cost_spike": None,
        "spend_jump": None,
        "unpriced_models": False,
    }
    off.pop(kind)
    return AnomalyDetector(dataclasses.replace(rules or Anomalies(), **off, **changes))


# -- error rate ------------------------------------------------------------------------


def test_one_error_in_two_calls_is_not_an_alert() -> None:
    detector = AnomalyDetector(Anomalies())
    assert feed(detector, [call(status="error"), call(T + 1)]) == []


def test_the_error_rate_waits_for_min_calls() -> None:
    detector = only("error_rate")
    assert feed(detector, [call(T + i, status="error") for i in range(19)]) == []
    [event] = detector.observe(call(T + 19, status="error", request_id="req-20"))
    assert event.kind == "error_rate"
    assert event.title == "Error rate 100% over the last 5 min (20 of 20 calls) is above 25%"
    assert event.severity == "critical"  # at least twice the limit
    assert event.dedup_key == "error_rate:2026-12-05T10:00Z"
    assert event.at == dt.datetime(2026, 12, 5, 10, 0, 19, tzinfo=UTC)
    assert event.details == {
        "rate": 1.0,
        "errors": 20,
        "calls": 20,
        "limit": 0.25,
        "window_seconds": 300.0,
        "request_id": "req-20",
    }


def test_an_error_rate_just_above_the_limit_is_a_warning() -> None:
    detector = only("error_rate")
    summaries = [call(T + i) for i in range(14)] + [
        call(T + 14 + i, status="error") for i in range(6)
    ]
    [event] = feed(detector, summaries)
    assert event.title == "Error rate 30% over the last 5 min (6 of 20 calls) is above 25%"
    assert event.severity == "warning"


def test_a_rate_at_the_limit_is_not_above_it() -> None:
    detector = only("error_rate")
    summaries = [call(T + i) for i in range(15)] + [
        call(T + 15 + i, status="error") for i in range(5)
    ]
    assert feed(detector, summaries) == []  # 25% exactly


def test_incomplete_calls_are_not_errors_and_blocked_calls_are_not_calls() -> None:
    detector = only("error_rate")
    assert feed(detector, [call(T + i, status="incomplete") for i in range(40)]) == []
    detector = only("error_rate")
    blocked = [call(T + i, status="blocked", cost=None) for i in range(100)]
    errors = [call(T + 100 + i, status="error") for i in range(19)]
    assert feed(detector, blocked + errors) == []  # 19 calls: below min_calls


def test_old_errors_leave_the_window() -> None:
    detector = only("error_rate")
    assert feed(detector, [call(T, status="error") for _ in range(10)]) == []
    # five minutes later the ten errors are out of the window: 10 more are 10 of 20
    later = [call(T + 400 + i) for i in range(10)] + [call(T + 410, status="error")] * 5
    assert feed(detector, later) == []


ERRORS_FAST = Anomalies(error_rate=0.5, error_window=60.0, min_calls=4)


def storm(start: float, count: int, status: str = "error") -> list[CallSummary]:
    return [call(start + i * 0.1, status=status) for i in range(count)]


def test_an_error_rate_alerts_once_per_window_while_it_stays_above() -> None:
    detector = only("error_rate", ERRORS_FAST)
    first = feed(detector, storm(T + 10, 4))
    assert [e.dedup_key for e in first] == ["error_rate:2026-12-05T10:00Z"]
    # still above, in the next aligned window but less than a window after the alert
    assert feed(detector, storm(T + 20, 50) + storm(T + 65, 50)) == []
    # a window after the alert, still above: a reminder
    [reminder] = feed(detector, storm(T + 70.5, 1))
    assert reminder.dedup_key == "error_rate:2026-12-05T10:01Z"


def test_an_error_rate_rearms_once_it_falls_back_below() -> None:
    detector = only("error_rate", ERRORS_FAST)
    assert len(feed(detector, storm(T + 50, 4))) == 1
    assert feed(detector, storm(T + 55, 20, status="ok")) == []  # 4 of 24: re-armed
    # above again, in the next aligned window, 10 s after the first alert
    [again] = feed(detector, storm(T + 60, 30))
    assert again.dedup_key == "error_rate:2026-12-05T10:01Z"
    assert again.title == "Error rate 51.2% over the last 1 min (21 of 41 calls) is above 50%"


def test_an_error_rate_alerts_once_per_aligned_window() -> None:
    # re-armed and above again inside the same aligned window: the same occurrence
    detector = only("error_rate", ERRORS_FAST)
    assert len(feed(detector, storm(T + 10, 4))) == 1
    assert feed(detector, storm(T + 12, 20, status="ok")) == []
    assert feed(detector, storm(T + 20, 40)) == []


# -- cost spike ------------------------------------------------------------------------


def usual(
    count: int, cost: str | None = "0.01", start: float = T, **fields: Any
) -> list[CallSummary]:
    return [call(start + i, cost=cost, **fields) for i in range(count)]


def test_a_call_costing_more_than_ten_times_the_median_alerts() -> None:
    detector = only("cost_spike")
    assert feed(detector, usual(20)) == []
    [event] = detector.observe(call(T + 30, cost="0.11", request_id="req-big"))
    assert event.kind == "cost_spike"
    assert event.title == (
        "A 'gpt-4o' call for feature 'search' cost $0.1100, "
        "11.0x its median of $0.0100 over its last 20 calls"
    )
    assert event.dedup_key == "cost_spike:model=gpt-4o:feature=search:2026-12-05T10:00Z"
    assert event.severity == "warning"
    assert event.details == {
        "cost": Decimal("0.11"),
        "median": Decimal("0.0100000000"),
        "ratio": 11.0,
        "limit": 10.0,
        "samples": 20,
        "model": "gpt-4o",
        "provider": "openai",
        "feature": "search",
        "request_id": "req-big",
    }


def test_a_cost_spike_waits_for_min_samples() -> None:
    detector = only("cost_spike")
    assert feed(detector, [*usual(19), call(T + 30, cost="5.00")]) == []


def test_ten_times_the_median_is_not_more_than_ten_times() -> None:
    detector = only("cost_spike")
    assert feed(detector, [*usual(20), call(T + 30, cost="0.10")]) == []


def test_a_spike_below_a_cent_is_not_an_alert() -> None:
    detector = only("cost_spike")
    assert feed(detector, [*usual(20, cost="0.0001"), call(T + 30, cost="0.009")]) == []
    assert len(feed(detector, [call(T + 31, cost="0.01")])) == 1  # min_spike_usd reached


def test_unpriced_calls_are_not_samples() -> None:
    detector = only("cost_spike")
    assert feed(detector, [*usual(30, cost=None), call(T + 40, cost="5.00")]) == []


def test_a_cost_spike_alerts_once_per_key_per_cooldown() -> None:
    detector = only("cost_spike")
    feed(detector, usual(20))
    assert len(feed(detector, [call(T + 30, cost="1.00")])) == 1
    assert feed(detector, [call(T + 599, cost="1.00")]) == []  # same 10 minutes
    [later] = feed(detector, [call(T + 600, cost="1.00")])
    assert later.dedup_key == "cost_spike:model=gpt-4o:feature=search:2026-12-05T10:10Z"


def test_each_model_and_feature_has_its_own_median() -> None:
    detector = only("cost_spike")
    feed(detector, usual(20) + usual(20, cost="1.00", feature="report"))
    feed(detector, usual(20, cost="1.00", model="gpt-4.1"))
    assert feed(detector, [call(T + 30, cost="2.00", feature="report")]) == []
    assert feed(detector, [call(T + 30, cost="2.00", model="gpt-4.1")]) == []
    [spike] = feed(detector, [call(T + 30, cost="2.00")])
    assert spike.details["feature"] == "search" and spike.details["ratio"] == 200.0


def test_a_spike_barely_moves_the_median() -> None:
    detector = only("cost_spike")
    feed(detector, usual(20))
    assert len(feed(detector, [call(T + 30, cost="3.00")])) == 1
    assert feed(detector, usual(50, start=T + 31)) == []


def test_a_paid_call_after_free_ones_alerts_without_a_ratio() -> None:
    detector = only("cost_spike")
    [event] = feed(detector, [*usual(20, cost="0"), call(T + 30, cost="0.50")])
    assert event.title == (
        "A 'gpt-4o' call for feature 'search' cost $0.5000, "
        "while its median over its last 20 calls is $0"
    )
    assert event.details["ratio"] is None


# -- spend jump ------------------------------------------------------------------------


def hourly(amounts: list[str], first_hour: int = 0, **fields: Any) -> list[CallSummary]:
    """One call per hour from 10:00Z + ``first_hour``, costing each amount."""
    return [call(T + (first_hour + h) * HOUR + 60, cost=a, **fields) for h, a in enumerate(amounts)]


def test_a_feature_and_a_user_spending_past_three_times_their_baseline_alert() -> None:
    detector = only("spend_jump")
    assert feed(detector, hourly(["1.00", "1.00", "1.00"])) == []
    this_hour = [call(T + 3 * HOUR + 100 + i, cost="1.00") for i in range(3)]
    assert feed(detector, this_hour) == []  # $3.00: three times, not more
    feature, user = detector.observe(call(T + 3 * HOUR + 200, cost="1.00", request_id="req-4"))
    assert feature.title == (
        "Spend of feature 'search' is $4.00 in the hour from 2026-12-05 13:00 UTC, "
        "4.0x its baseline of $1.00 per hour over the 3 hours before"
    )
    assert feature.dedup_key == "spend_jump:feature=search:2026-12-05T13:00Z"
    assert user.dedup_key == "spend_jump:user_id=u-1:2026-12-05T13:00Z"
    assert (feature.scope, feature.scope_value, feature.period) == (
        ("feature",),
        ("search",),
        "hour",
    )
    assert feature.period_start == dt.datetime(2026, 12, 5, 13, tzinfo=UTC)
    assert feature.period_end == dt.datetime(2026, 12, 5, 14, tzinfo=UTC)
    assert (feature.unit, feature.spend) == ("usd", Decimal("4.00"))
    assert feature.details == {
        "tag": "feature",
        "value": "search",
        "spend": Decimal("4.00"),
        "baseline": Decimal("1.0000000000"),
        "ratio": 4.0,
        "limit": 3.0,
        "baseline_periods": 3,
        "period_seconds": 3600.0,
        "request_id": "req-4",
    }
    # once per value and hour; the next hour is a new occurrence
    assert feed(detector, [call(T + 3 * HOUR + 300, cost="10.00")]) == []
    assert len(feed(detector, [call(T + 4 * HOUR + 1, cost="30.00")])) == 2


def test_a_jump_needs_three_hours_that_had_spend() -> None:
    detector = only("spend_jump")
    assert feed(detector, hourly(["1.00", "0", "1.00", "100.00"])) == []


def test_pennies_never_alert() -> None:
    detector = only("spend_jump")
    assert feed(detector, hourly(["0.01", "0.01", "0.01", "0.90"])) == []  # 90x, under $1
    assert len(feed(detector, [call(T + 3 * HOUR + 120, cost="0.10", user=None)])) == 1


def test_quiet_hours_count_in_the_baseline() -> None:
    # $3 in each of three hours, then six hours with no call: a mean of $1 per hour
    detector = only("spend_jump", jump_by=("feature",))
    assert feed(detector, hourly(["3.00", "3.00", "3.00"])) == []
    [event] = feed(detector, hourly(["3.50"], first_hour=9))
    assert event.details["baseline"] == Decimal("1.0000000000")
    assert event.details["baseline_periods"] == 9


def test_the_baseline_is_the_last_periods_only() -> None:
    detector = only("spend_jump", jump_by=("feature",), baseline_periods=3)
    quiet_then_busy = ["100.00", "100.00", "100.00", "10.00", "10.00", "10.00", "40.00"]
    [event] = feed(detector, hourly(quiet_then_busy))
    assert event.details["baseline"] == Decimal("10.0000000000")


def test_a_late_call_for_a_past_hour_does_not_alert() -> None:
    detector = only("spend_jump")
    feed(detector, hourly(["1.00", "1.00", "1.00", "1.00"]))
    assert feed(detector, [call(T + 2 * HOUR + 5, cost="50.00")]) == []


def test_calls_without_the_tag_or_the_cost_are_not_counted() -> None:
    detector = only("spend_jump")
    no_tags = hourly(["1.00", "1.00", "1.00", "50.00"], tags={})
    no_cost = [call(T + 3 * HOUR + 9, cost=None) for _ in range(5)]
    assert feed(detector, no_tags + no_cost) == []


def test_any_tag_can_be_watched_and_values_are_read_as_text() -> None:
    detector = only("spend_jump", jump_by="team")
    tags = {"team": 42, "feature": "search"}
    events = feed(detector, hourly(["1.00", "1.00", "1.00", "9.00"], tags=tags))
    assert [e.dedup_key for e in events] == ["spend_jump:team=42:2026-12-05T13:00Z"]


# -- unpriced models -------------------------------------------------------------------


def unpriced(model: str | None, at: float = T) -> CallSummary:
    return call(at, model=model, cost=None, cost_status="unknown_model", request_id="req-u")


def test_a_model_with_no_price_alerts_once() -> None:
    detector = only("unpriced_models")
    [event] = feed(detector, [unpriced("gpt-9"), unpriced("gpt-9", T + 1)])
    assert event.kind == "unpriced_model"
    assert event.title == (
        "Model 'gpt-9' (openai) has no price: its calls are logged with no cost "
        "until it is added to a price file"
    )
    assert event.dedup_key == "unpriced_model:gpt-9"
    assert event.details == {"model": "gpt-9", "provider": "openai", "request_id": "req-u"}
    assert len(feed(detector, [unpriced("gpt-10"), unpriced(None)])) == 1


def test_every_rule_can_be_turned_off() -> None:
    rules = Anomalies(error_rate=None, cost_spike=None, spend_jump=None, unpriced_models=False)
    detector = AnomalyDetector(rules)
    summaries = (
        [call(T + i, status="error") for i in range(50)]
        + hourly(["1.00", "1.00", "1.00", "100.00"])
        + [unpriced("gpt-9")]
    )
    assert feed(detector, summaries) == []


# -- dedup keys and titles -------------------------------------------------------------


def test_two_processes_name_the_same_occurrence_the_same_way() -> None:
    one, two = AnomalyDetector(Anomalies()), AnomalyDetector(Anomalies())
    first = feed(one, [call(T + i, status="error", request_id=f"a{i}") for i in range(20)])
    second = feed(two, [call(T + 250 + i, status="error", request_id=f"b{i}") for i in range(30)])
    assert [e.dedup_key for e in first] == [e.dedup_key for e in second]
    one_jump = feed(one, hourly(["1.00", "2.00", "1.50", "9.00"], user=None, first_hour=1))
    two_jump = feed(two, hourly(["2.00", "1.00", "1.00", "12.00"], user=None, first_hour=1))
    assert [e.dedup_key for e in one_jump] == [e.dedup_key for e in two_jump]
    assert one_jump[-1].dedup_key == "spend_jump:feature=search:2026-12-05T14:00Z"


def test_caller_chosen_values_cannot_forge_a_key_or_break_a_title() -> None:
    detector = only("spend_jump")
    sly = "x:2026-12-05T13:00Z\nuser_id=u-1"
    events = feed(detector, hourly(["1.00", "1.00", "1.00", "9.00"], feature=sly, user="a" * 500))
    feature, user = events
    assert feature.dedup_key == (
        "spend_jump:feature=x%3A2026-12-05T13%3A00Z%0Auser_id%3Du-1:2026-12-05T13:00Z"
    )
    assert "\n" not in feature.title
    assert user.dedup_key.startswith("spend_jump:user_id=sha256-") and len(user.dedup_key) < 100
    assert len(user.title) < 250


def test_every_alert_is_json_able() -> None:
    detector = AnomalyDetector(Anomalies())
    events = feed(
        detector,
        [call(T + i, status="error") for i in range(20)]
        + usual(25, start=T + 30)
        + [call(T + 60, cost="1.00"), unpriced("gpt-9")]
        + hourly(["1.00", "1.00", "1.00", "9.00"], first_hour=1),
    )
    assert {e.kind for e in events} == {"error_rate", "cost_spike", "spend_jump", "unpriced_model"}
    for event in events:
        json.dumps(event.to_dict())


# -- bad summaries, memory, time -------------------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


BAD_SUMMARIES: list[Any] = [
    None,
    "a call",
    dataclasses.replace(call(), at="yesterday"),  # type: ignore[arg-type]
    dataclasses.replace(call(), at=float("nan")),
    dataclasses.replace(call(), at=True),
    dataclasses.replace(call(), cost=0.5),  # type: ignore[arg-type]
    dataclasses.replace(call(), cost=Decimal("NaN")),
    dataclasses.replace(call(), cost=Decimal("-1")),
    dataclasses.replace(call(), tags=None),  # type: ignore[arg-type]
    dataclasses.replace(call(), model=5),  # type: ignore[arg-type]
    dataclasses.replace(call(), status=None),  # type: ignore[arg-type]
    call(user=Unprintable()),
]


@pytest.mark.parametrize("bad", BAD_SUMMARIES)
def test_a_bad_summary_costs_only_itself(bad: Any) -> None:
    detector = only("error_rate")
    summaries = [call(T + i, status="error") for i in range(19)]
    assert feed(detector, summaries) == []
    assert detector.observe(bad) == []
    assert detector.bad_summaries == 1
    assert len(detector.observe(call(T + 20, status="error"))) == 1
    assert detector.observed == 20


def test_memory_is_bounded_under_a_flood_of_distinct_values() -> None:
    # 100,000 distinct feature and user values, 20,000 distinct unknown models: each rule
    # keeps the 10,000 most recent keys (one window of costs or spend each), no more
    detector = AnomalyDetector(Anomalies())
    for i in range(50_000):
        detector.observe(call(T + i * 0.01, feature=f"f-{i}", user=f"u-{i}", model=f"m-{i % 3}"))
    for i in range(20_000):
        detector.observe(unpriced(f"model-{i}", T + 500 + i * 0.01))
    kept = detector.tracked_keys()
    assert kept == {"cost_spike": 10_000, "spend_jump": 10_000, "unpriced_model": 10_000}


def workload(count: int) -> list[CallSummary]:
    """Calls of 40 features and 3,000 users (past the detector's key cap, so keys churn),
    with errors, spikes and a new hour every 1,000 calls."""
    return [
        call(
            T + i * 3.6,
            status="error" if i % 7 == 0 else "ok",
            cost=("2.50" if i % 97 == 0 else f"0.0{i % 9 + 1}"),
            feature=f"f-{i % 40}",
            user=f"u-{i * 7919 % 3000}",
            model=f"m-{i % 4}",
            request_id=f"r-{i}",
        )
        for i in range(count)
    ]


def test_observing_takes_linear_time() -> None:
    rules = Anomalies(max_keys=1_000)

    def run(summaries: list[CallSummary]) -> None:
        feed(AnomalyDetector(rules), summaries)

    assert growth(run, workload(2_000), workload(8_000)) < MAX_RATIO


# -- options ---------------------------------------------------------------------------


def test_the_defaults_are_the_documented_ones() -> None:
    rules = Anomalies()
    assert (rules.error_rate, rules.error_window, rules.min_calls) == (0.25, 300.0, 20)
    assert (rules.cost_spike, rules.spike_window, rules.min_samples) == (10.0, 200, 20)
    assert (rules.min_spike_usd, rules.spike_cooldown) == (Decimal("0.01"), 600.0)
    assert (rules.spend_jump, rules.jump_period, rules.baseline_periods) == (3.0, 3600.0, 24)
    assert (rules.min_baseline_periods, rules.min_jump_usd) == (3, Decimal("1.00"))
    assert (rules.jump_by, rules.unpriced_models, rules.max_keys) == (
        ("feature", "user_id"),
        True,
        10_000,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.error_rate = 0.5  # type: ignore[misc]


def test_options_are_coerced_to_their_types() -> None:
    rules = Anomalies(min_jump_usd="2.50", min_spike_usd=0.1, jump_by="team", error_window=60)  # type: ignore[arg-type]
    assert (rules.min_jump_usd, rules.min_spike_usd) == (Decimal("2.50"), Decimal("0.1"))
    assert rules.jump_by == ("team",)
    assert rules.error_window == 60.0 and type(rules.error_window) is float
    assert Anomalies(min_jump_usd=Decimal(0)).min_jump_usd == 0


@pytest.mark.parametrize(
    "options",
    [
        {"error_rate": 0},
        {"error_rate": 1},
        {"error_rate": -0.1},
        {"error_rate": float("nan")},
        {"error_rate": True},
        {"error_rate": "0.2"},
        {"error_window": 0},
        {"error_window": -5},
        {"error_window": float("inf")},
        {"spike_cooldown": float("nan")},
        {"jump_period": 0},
        {"min_calls": 0},
        {"min_calls": 2.5},
        {"min_calls": True},
        {"cost_spike": 1},
        {"cost_spike": 0.5},
        {"cost_spike": float("nan")},
        {"spend_jump": 0},
        {"spend_jump": -3},
        {"spike_window": 0},
        {"spike_window": 10_001},
        {"min_samples": 201},
        {"baseline_periods": 0},
        {"min_baseline_periods": 25},
        {"min_baseline_periods": 0},
        {"min_jump_usd": -1},
        {"min_jump_usd": "a dollar"},
        {"min_jump_usd": Decimal("NaN")},
        {"min_jump_usd": True},
        {"min_spike_usd": float("inf")},
        {"jump_by": ()},
        {"jump_by": ("user id",)},
        {"jump_by": ("feature", "feature")},
        {"jump_by": 5},
        {"unpriced_models": "yes"},
        {"max_keys": 0},
    ],
    ids=repr,
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="Anomalies"):
        Anomalies(**options)


def test_the_detector_takes_anomalies() -> None:
    with pytest.raises(ConfigError):
        AnomalyDetector({"error_rate": 0.25})  # type: ignore[arg-type]


def test_a_summary_reads_its_feature_from_its_tags() -> None:
    assert call(feature="search").feature == "search"
    assert call(tags={}).feature is None
    assert call(feature="").feature is None
