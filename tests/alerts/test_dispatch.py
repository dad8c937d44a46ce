"""The dispatcher over real HTTP on loopback: retries then success, final refusals, a sink
down for good given up and counted while the others still get the alert at once,
Retry-After, dedupe in the process and through ``claim``, a submit that never blocks or
raises, a full queue, flush, close, the exit flush and fork."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import alerting
import pytest
from alerting import SECRETS, SLACK_PATH, budget_event

from majordomo_log._exceptions import ConfigError
from majordomo_log.alerts.dispatch import THREAD_NAME, AlertDispatcher
from majordomo_log.alerts.pending import SinkStats
from majordomo_log.alerts.sinks import LogAlert, SlackAlert, WebhookAlert
from majordomo_log.testing.receiver import AlertReceiver

Make = Callable[..., AlertDispatcher]
REPO = Path(__file__).parents[2]

# The shared fixtures (alerting.py says why it is not a conftest.py).
dispatchers = alerting.dispatchers
fresh_warnings = alerting.fresh_warnings
receiver = alerting.receiver


def test_each_sink_gets_each_alert(dispatchers: Make, receiver: AlertReceiver) -> None:
    slack, hook = SlackAlert(receiver.url + SLACK_PATH), WebhookAlert(receiver.url + "/hook")
    dispatcher = dispatchers([slack, hook, LogAlert()])
    dispatcher.submit(budget_event("a"))
    dispatcher.submit(budget_event("b"))
    assert dispatcher.flush(5)
    hooked = sorted(r.json["dedup_key"] for r in receiver.requests if r.path == "/hook")
    assert hooked == ["a", "b"]
    assert len(receiver.requests) == 4
    stats = dispatcher.stats()
    assert stats.submitted == 2 and stats.pending == 0
    assert dict(stats.sinks) == {
        slack.name: SinkStats(sent=2),
        hook.name: SinkStats(sent=2),
        "log": SinkStats(sent=2),
    }


def test_retried_after_two_503s_then_delivered(dispatchers: Make, receiver: AlertReceiver) -> None:
    receiver.fail_next(2, status=503)
    dispatcher = dispatchers(WebhookAlert(receiver.url))
    dispatcher.submit(budget_event())
    assert dispatcher.flush(5)
    assert len(receiver.requests) == 3
    assert dispatcher.stats().sinks[f"webhook:{receiver.url}"] == SinkStats(sent=1, retried=2)


def test_a_400_is_not_retried(
    dispatchers: Make, receiver: AlertReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="majordomo_log")
    receiver.fail_next(2, status=400, body="invalid_payload")
    sink = SlackAlert(receiver.url + SLACK_PATH)
    dispatcher = dispatchers(sink)
    dispatcher.submit(budget_event("a"))
    dispatcher.submit(budget_event("b"))
    assert dispatcher.flush(5)
    assert len(receiver.requests) == 2
    assert dispatcher.stats().sinks[sink.name] == SinkStats(failed=2)
    (warning,) = [r.getMessage() for r in caplog.records]  # once per sink
    assert "refused an alert" in warning and "not retried" in warning
    assert "HTTP 400 (invalid_payload)" in warning
    assert all(secret not in caplog.text for secret in SECRETS)


def test_a_sink_down_for_good_is_given_up_and_the_others_are_not_held_back(
    dispatchers: Make, receiver: AlertReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="majordomo_log")
    with AlertReceiver() as dead:
        dead_url = dead.url
    down = SlackAlert(dead_url + SLACK_PATH)  # nothing listens there any more
    up = WebhookAlert(receiver.url + "/hook")
    dispatcher = dispatchers([down, up], max_attempts=4)
    submitted = time.monotonic()
    dispatcher.submit(budget_event("a"))
    assert receiver.wait_for(1, timeout=2)
    assert receiver.requests[0].at - submitted < 0.5
    dispatcher.submit(budget_event("b"))
    assert receiver.wait_for(2, timeout=2)
    assert receiver.requests[1].at - submitted < 1.0
    assert dispatcher.flush(5)
    stats = dispatcher.stats().sinks
    assert stats[down.name] == SinkStats(failed=2, retried=6)
    assert stats[up.name] == SinkStats(sent=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per sink
    assert "gave up on an alert after 4 attempts" in warnings[0]
    assert "could not connect" in warnings[0]
    assert all(secret not in caplog.text for secret in SECRETS)


def test_a_hanging_sink_holds_the_others_back_at_most_once(
    dispatchers: Make, receiver: AlertReceiver
) -> None:
    with AlertReceiver(delay=5.0) as hanging:
        slow = WebhookAlert(hanging.url, timeout=0.5)
        dispatcher = dispatchers([slow, WebhookAlert(receiver.url)], max_attempts=2)
        submitted = time.monotonic()
        for key in ("a", "b", "c"):
            dispatcher.submit(budget_event(key))
        assert receiver.wait_for(3, timeout=10)
        # The hanging sink was tried for the first alert only (and its one retry) before
        # it was known down: the others did not each wait out a timeout there first.
        assert len(hanging.requests) <= 2
        assert receiver.requests[-1].at - submitted < 5.0  # not three 5 s hangs in a row


def test_retry_after_is_honoured(dispatchers: Make, receiver: AlertReceiver) -> None:
    receiver.fail_next(status=429, headers={"Retry-After": "1"})
    dispatcher = dispatchers(WebhookAlert(receiver.url), backoff=0.01, max_backoff=5)
    dispatcher.submit(budget_event())
    assert dispatcher.flush(5)
    first, second = receiver.requests
    assert 0.9 <= second.at - first.at < 30  # waited for Retry-After, and not forever


def test_retry_after_is_capped_by_max_backoff(dispatchers: Make, receiver: AlertReceiver) -> None:
    receiver.fail_next(status=503, headers={"Retry-After": "3600"})
    dispatcher = dispatchers(WebhookAlert(receiver.url), backoff=0.01, max_backoff=0.1)
    dispatcher.submit(budget_event())
    assert dispatcher.flush(5)
    first, second = receiver.requests
    assert second.at - first.at < 60  # nowhere near Retry-After's hour


def test_a_dedup_key_is_sent_once_per_process(dispatchers: Make, receiver: AlertReceiver) -> None:
    dispatcher = dispatchers(WebhookAlert(receiver.url), dedup_memory=2)
    for key in ("a", "a", "b", "a"):
        dispatcher.submit(budget_event(key))
    assert dispatcher.flush(5)
    assert [r.json["dedup_key"] for r in receiver.requests] == ["a", "b"]
    assert dispatcher.stats().duplicates == 2
    # Memory is bounded: with room for two keys, the oldest is forgotten.
    dispatcher.submit(budget_event("c"))
    dispatcher.submit(budget_event("a"))
    assert dispatcher.flush(5)
    assert [r.json["dedup_key"] for r in receiver.requests] == ["a", "b", "c", "a"]


def test_a_claim_lost_to_another_process_skips_the_alert(
    dispatchers: Make, receiver: AlertReceiver
) -> None:
    asked: list[tuple[str, str]] = []

    def claim(key: str) -> bool:
        asked.append((key, threading.current_thread().name))
        return key == "mine"

    dispatcher = dispatchers(WebhookAlert(receiver.url), claim=claim)
    dispatcher.submit(budget_event("theirs"))
    dispatcher.submit(budget_event("mine"))
    assert dispatcher.flush(5)
    assert [r.json["dedup_key"] for r in receiver.requests] == ["mine"]
    assert asked == [("theirs", THREAD_NAME), ("mine", THREAD_NAME)]
    stats = dispatcher.stats()
    assert stats.claimed_elsewhere == 1 and stats.pending == 0


def test_a_claim_that_raises_still_sends(
    dispatchers: Make, receiver: AlertReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    def claim(key: str) -> bool:
        raise ConnectionError("redis://:hunter2@redis:6379 is down")

    dispatcher = dispatchers(WebhookAlert(receiver.url), claim=claim)
    dispatcher.submit(budget_event())
    assert dispatcher.flush(5)
    assert len(receiver.requests) == 1
    assert dispatcher.stats().claim_errors == 1
    assert "ConnectionError" in caplog.text and "hunter2" not in caplog.text


def test_submit_never_blocks_on_a_hanging_receiver(dispatchers: Make) -> None:
    with AlertReceiver(delay=5.0) as hanging:
        dispatcher = dispatchers(WebhookAlert(hanging.url, timeout=0.3), max_attempts=1)
        started = time.perf_counter()
        for n in range(200):
            dispatcher.submit(budget_event(f"k{n}"))
        assert time.perf_counter() - started < 0.2
        assert not dispatcher.flush(0.1)  # still sending: flush says so, in time
        assert dispatcher.stats().pending > 0


def test_a_full_queue_drops_and_counts(dispatchers: Make, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="majordomo_log")
    with AlertReceiver(delay=5.0) as hanging:
        dispatcher = dispatchers(WebhookAlert(hanging.url, timeout=0.3), max_pending=2)
        for n in range(5):
            dispatcher.submit(budget_event(f"k{n}"))
        stats = dispatcher.stats()
        assert (stats.submitted, stats.dropped, stats.pending) == (2, 3, 2)
    assert caplog.text.count("Alerts are being dropped") == 1


def test_flush_waits_for_delivery(dispatchers: Make) -> None:
    with AlertReceiver(delay=0.3) as slow:
        dispatcher = dispatchers(WebhookAlert(slow.url))
        dispatcher.submit(budget_event())
        started = time.monotonic()
        assert dispatcher.flush(5)
        assert time.monotonic() - started >= 0.25
        assert dispatcher.stats().sinks[f"webhook:{slow.url}"].sent == 1
    assert AlertDispatcher([]).flush(0)  # nothing submitted: nothing to wait for


def test_close_is_idempotent_and_counts_what_it_leaves(dispatchers: Make) -> None:
    with AlertReceiver() as dead:
        dead_url = dead.url
    sink = WebhookAlert(dead_url)
    dispatcher = dispatchers(sink, backoff=10, max_backoff=10)  # retry due long after close
    dispatcher.submit(budget_event())
    assert not dispatcher.close(timeout=0.3)
    started = time.monotonic()
    assert dispatcher.close(timeout=0.3)  # again: nothing left, at once
    assert time.monotonic() - started < 0.05
    dispatcher.submit(budget_event("late"))
    stats = dispatcher.stats()
    assert stats.sinks[sink.name] == SinkStats(dropped=1)
    assert stats.dropped == 1 and stats.pending == 0
    (thread,) = _threads_of(dispatcher)
    thread.join(1)  # close() spent its time flushing; the thread ends on its own
    assert not thread.is_alive()


def _threads_of(dispatcher: AlertDispatcher) -> list[threading.Thread]:
    thread = dispatcher._thread
    return [thread] if thread is not None else []


def test_the_thread_starts_with_the_first_alert(dispatchers: Make) -> None:
    dispatcher = dispatchers(LogAlert())
    assert _threads_of(dispatcher) == []
    dispatcher.submit(budget_event())
    (thread,) = _threads_of(dispatcher)
    assert thread.name == THREAD_NAME and thread.daemon
    assert dispatcher.flush(5)


def test_a_users_sink_that_raises_anything_is_retried_then_given_up(
    dispatchers: Make, receiver: AlertReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    class Flaky:
        name = "flaky"

        def __init__(self) -> None:
            self.calls = 0

        def send(self, event: object) -> None:
            self.calls += 1
            raise ValueError("https://user:hunter2@example.com refused")

    class Nameless:
        def send(self, event: object) -> None:
            pass

    flaky = Flaky()
    dispatcher = dispatchers([flaky, Nameless(), Nameless()], max_attempts=3)
    dispatcher.submit(budget_event())
    assert dispatcher.flush(5)
    assert flaky.calls == 3
    assert dispatcher.sink_names == ("flaky", "Nameless", "Nameless#2")
    assert dispatcher.stats().sinks["flaky"] == SinkStats(failed=1, retried=2)
    assert "ValueError raised by the sink" in caplog.text and "hunter2" not in caplog.text


def test_submit_never_raises(dispatchers: Make) -> None:
    dispatcher = dispatchers(LogAlert())
    dispatcher.submit(None)  # type: ignore[arg-type]
    dispatcher.submit(budget_event())
    assert dispatcher.flush(5)


def test_bad_options_are_refused() -> None:
    for options in (
        {"max_attempts": 0},
        {"max_pending": 0},
        {"backoff": -1},
        {"max_backoff": float("inf")},
        {"claim": "redis"},
    ):
        with pytest.raises(ConfigError):
            AlertDispatcher([LogAlert()], **options)
    with pytest.raises(ConfigError, match=r"#1 \(str\)"):
        AlertDispatcher([LogAlert(), "https://hooks.slack.com/x"])  # type: ignore[list-item]


def test_sends_inline_when_no_thread_can_start(
    receiver: AlertReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if self.name == THREAD_NAME:  # as at interpreter shutdown (Python 3.12+)
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(self)

    dispatcher = AlertDispatcher(WebhookAlert(receiver.url), backoff=0.01)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    dispatcher.submit(budget_event())
    assert receiver.requests == []
    assert dispatcher.flush(5)
    monkeypatch.undo()
    assert len(receiver.requests) == 1
    dispatcher.close(1)


def run_script(source: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


EXIT_SCRIPT = """
    import sys, datetime as dt
    from majordomo_log.alerts.dispatch import AlertDispatcher
    from majordomo_log.alerts.events import AlertEvent
    from majordomo_log.alerts.sinks import WebhookAlert
    backoff = float(sys.argv[2])
    dispatcher = AlertDispatcher(WebhookAlert(sys.argv[1]), backoff=backoff, max_backoff=backoff)
    dispatcher.submit(AlertEvent("budget", "at exit", "warning", "k-exit",
                                 dt.datetime.now(dt.timezone.utc)))
    # no flush, no close: the exit flush sends it
"""


def test_an_alert_raised_just_before_exit_is_sent() -> None:
    with AlertReceiver(delay=0.3) as slow:
        done = run_script(EXIT_SCRIPT, slow.url, "0.05")
        assert done.returncode == 0, done.stderr
        assert [r.json["dedup_key"] for r in slow.requests] == ["k-exit"]


def test_exit_is_not_held_long_by_a_sink_that_is_down() -> None:
    with AlertReceiver() as dead:
        dead_url = dead.url
    started = time.monotonic()
    done = run_script(EXIT_SCRIPT, dead_url, "60")  # its retry is due long after exit
    assert done.returncode == 0, done.stderr
    assert 2.0 <= time.monotonic() - started < 2.0 + 3.0  # the exit flush's 2 s, start-up


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_starts_its_own_thread(receiver: AlertReceiver) -> None:
    dispatcher = AlertDispatcher(WebhookAlert(receiver.url), backoff=0.01)
    dispatcher.submit(budget_event("before-fork"))
    assert dispatcher.flush(5)
    parent_thread = dispatcher._thread
    pid = os.fork()
    if pid == 0:  # the child: only os._exit, so pytest's own state is never touched
        ok = False
        try:
            dispatcher.submit(budget_event("before-fork"))  # the parent sent it
            dispatcher.submit(budget_event("in-child"))
            ok = (
                dispatcher.flush(5)
                and dispatcher._thread is not parent_thread
                and dispatcher._thread is not None
                and dispatcher._thread.is_alive()
                and dispatcher.stats().duplicates == 1
            )
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [r.json["dedup_key"] for r in receiver.requests] == ["before-fork", "in-child"]
    dispatcher.close(1)
