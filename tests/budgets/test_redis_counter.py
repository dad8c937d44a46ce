"""``RedisCounter``, the fleet counter of budgets, against a real Redis: the seed is
applied only to a missing key, totals are exact under concurrency (threads and
processes), keys expire a day after their period, an alert is claimed once across
counters and processes, an unreachable or silent server costs a bounded wait and never
an exception, adds made during an outage are sent when the server is back, the URL's
password is never shown, and a forked child counts on connections of its own."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redisserver import free_port, private_redis, redis_keys
from servers import require

import majordomo_log as ml
from majordomo_log._log import reset_warnings
from majordomo_log.budgets.fleet import FleetCounter, counter_key
from majordomo_log.budgets.redis_counter import RedisCounter, fleet_counter
from majordomo_log.delivery.writer_thread import writer_thread

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55word"
UTC = dt.timezone.utc


@pytest.fixture
def redis_url() -> str:
    return require("redis")


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    with redis_keys(redis_url) as keys:
        yield keys


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_counter() -> Iterator[Callable[..., RedisCounter]]:
    """RedisCounters closed at the end of the test."""
    made: list[RedisCounter] = []

    def make(url: str, **options: Any) -> RedisCounter:
        counter = RedisCounter(url, **options)
        made.append(counter)
        return counter

    yield make
    for counter in made:
        counter.close()


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    reset_warnings()
    caplog.set_level(logging.DEBUG, logger="majordomo_log")
    return caplog


def add_and_wait(counter: RedisCounter, key: str, units: int, seed: int = 0) -> int:
    totals: list[int] = []
    counter.add(key, units, seed, None, totals.append)
    assert counter.flush(5)
    return totals[0]


@pytest.mark.servers
def test_it_is_a_fleet_counter_and_shows_no_password(
    redis_url: str, make_counter: Callable[..., RedisCounter]
) -> None:
    counter = make_counter(redis_url)
    assert isinstance(counter, FleetCounter)
    parts = urlsplit(redis_url)
    assert repr(counter) == f"<RedisCounter redis://{parts.hostname}:{parts.port or 6379}/0>"


@pytest.mark.servers
def test_the_seed_is_applied_only_to_a_missing_key(
    redis_url: str, prefix: str, make_counter: Callable[..., RedisCounter]
) -> None:
    counter = make_counter(redis_url)
    key = prefix + "seeded"
    assert add_and_wait(counter, key, 5, seed=100) == 105
    assert add_and_wait(counter, key, 5, seed=1000) == 110  # exists: the seed is ignored
    assert counter.read(key, 1.0) == 110
    assert counter.read(prefix + "never-added", 1.0) == 0


@pytest.mark.servers
def test_totals_are_exact_with_50_threads_adding(
    redis_url: str, prefix: str, make_counter: Callable[..., RedisCounter]
) -> None:
    counter = make_counter(redis_url)
    key = counter_key("per-user", ("alice",), dt.datetime(2026, 12, 1, tzinfo=UTC))
    key = prefix + key  # the real key's shape, under the test's prefix
    totals: list[int] = []
    start = threading.Barrier(50)

    def adder(worker: int) -> None:
        start.wait()
        for i in range(200):
            counter.add(key, worker * 1000 + i + 1, 7, None, totals.append)

    threads = [threading.Thread(target=adder, args=(w,)) for w in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.flush(10)
    expected = 7 + sum(w * 1000 + i + 1 for w in range(50) for i in range(200))
    assert counter.read(key, 1.0) == expected
    # every add saw the total just after it: 10,000 different totals, the last the sum
    assert len(totals) == 10_000 and len(set(totals)) == 10_000 and max(totals) == expected
    stats = counter.stats()
    assert stats["adds"] == 10_000 and stats["add_failures"] == stats["adds_lost"] == 0


@pytest.mark.servers
def test_a_read_counts_the_adds_its_process_queued_before_it(
    redis_url: str, prefix: str, make_counter: Callable[..., RedisCounter]
) -> None:
    """Read your writes: a process that reads before each call has its own last call
    counted there, so the fleet misses at most one call per process."""
    counter = make_counter(redis_url)
    for round_ in range(1, 21):
        for _ in range(10):
            counter.add(prefix + "k", 1, 0, None, lambda total: None)
        assert counter.read(prefix + "k", 2.0) == round_ * 10  # no flush() in between


@pytest.mark.servers
def test_many_adds_share_a_round_trip(
    redis_url: str, prefix: str, raw: redis.Redis, make_counter: Callable[..., RedisCounter]
) -> None:
    counter = make_counter(redis_url)
    add_and_wait(counter, prefix + "warm", 1)  # the connection is open, the script known
    before = raw.info("stats")["total_reads_processed"]
    for _ in range(2000):
        counter.add(prefix + "burst", 1, 0, None, lambda total: None)
    assert counter.flush(5)
    # the server read the 2,000 EVALSHA in a few socket reads (pipelines), not 2,000
    assert raw.info("stats")["total_reads_processed"] - before < 200
    assert counter.read(prefix + "burst", 1.0) == 2000


@pytest.mark.servers
def test_a_key_expires_a_day_after_its_period(
    redis_url: str, prefix: str, raw: redis.Redis, make_counter: Callable[..., RedisCounter]
) -> None:
    counter = make_counter(redis_url)
    end = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    counter.add(prefix + "hourly", 1, 0, end, lambda total: None)
    counter.add(prefix + "total", 1, 0, None, lambda total: None)
    assert counter.flush(5)
    expected_ms = int((end + dt.timedelta(days=1)).timestamp() * 1000)
    assert raw.pexpiretime(prefix + "hourly") == expected_ms
    assert raw.ttl(prefix + "total") == -1  # "total" never ends: no expiry
    # a later add does not move the expiry of a key that exists
    counter.add(prefix + "hourly", 1, 0, end + dt.timedelta(days=30), lambda total: None)
    assert counter.flush(5)
    assert raw.pexpiretime(prefix + "hourly") == expected_ms


@pytest.mark.servers
def test_a_script_the_server_forgot_is_loaded_again(
    redis_url: str, prefix: str, raw: redis.Redis, make_counter: Callable[..., RedisCounter]
) -> None:
    counter = make_counter(redis_url)
    assert add_and_wait(counter, prefix + "k", 3) == 3
    raw.script_flush()  # as a restarted or failed-over server has
    assert add_and_wait(counter, prefix + "k", 4) == 7
    assert counter.stats()["adds_lost"] == 0


@pytest.mark.servers
def test_a_key_holding_something_else_loses_that_add_only(
    redis_url: str, prefix: str, raw: redis.Redis, make_counter: Callable[..., RedisCounter],
    warnings: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    raw.rpush(prefix + "a-list", "x")
    counter = make_counter(redis_url)
    seen: list[int] = []
    counter.add(prefix + "a-list", 1, 0, None, seen.append)
    counter.add(prefix + "fine", 1, 0, None, seen.append)
    assert counter.flush(5)
    assert seen == [1] and counter.stats()["adds_lost"] == 1
    assert "refused an addition" in warnings.text


@pytest.mark.servers
def test_a_failing_callback_does_not_stop_the_others(
    redis_url: str, prefix: str, make_counter: Callable[..., RedisCounter],
    warnings: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    counter = make_counter(redis_url)
    seen: list[int] = []

    def broken(total: int) -> None:
        raise RuntimeError("a ledger bug")

    counter.add(prefix + "k", 1, 0, None, broken)
    counter.add(prefix + "k", 1, 0, None, seen.append)
    assert counter.flush(5)
    assert seen == [2] and "a ledger bug" in warnings.text


@pytest.mark.servers
def test_an_alert_is_claimed_once_across_counters(
    redis_url: str, prefix: str, make_counter: Callable[..., RedisCounter]
) -> None:
    first, second = make_counter(redis_url), make_counter(redis_url)
    assert first.claim(prefix + "alert", 0.3) is True
    assert second.claim(prefix + "alert", 0.3) is False
    assert first.claim(prefix + "alert", 0.3) is False
    time.sleep(0.4)  # the claim's ttl is over: the next period's alert may be sent
    assert second.claim(prefix + "alert", 0.3) is True
    assert first.stats()["claims"] == 2 and first.stats()["claim_failures"] == 0


CHILD = """
import sys
from majordomo_log.budgets.redis_counter import RedisCounter
url, key = sys.argv[1], sys.argv[2]
counter = RedisCounter(url)
counter.read(key, 5.0)  # connected before the start
print("ready", flush=True)
sys.stdin.readline()  # the start: every process at once
claimed = counter.claim(key + ":alert", 30)
for i in range(250):
    counter.add(key, 1, 0, None, lambda total: None)
assert counter.flush(10)
print("claimed" if claimed else "not claimed", counter.stats()["adds"], flush=True)
counter.close()
"""


@pytest.mark.servers
def test_processes_claim_once_and_add_up_exactly(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, redis_url, prefix + "shared"],
            env={**os.environ, "PYTHONPATH": path}, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert all(child.returncode == 0 for child in children), outputs
    lines = sorted(out.strip() for out, _ in outputs)
    assert lines == ["claimed 250"] + ["not claimed 250"] * 7
    assert int(raw.get(prefix + "shared") or 0) == 8 * 250


def test_an_unreachable_server_answers_unknown_at_once(
    make_counter: Callable[..., RedisCounter], warnings: pytest.LogCaptureFixture
) -> None:
    counter = make_counter(f"redis://127.0.0.1:{free_port()}/0")  # does not raise
    began = time.monotonic()
    assert counter.read("k", 2.0) is None
    assert counter.claim("alert", 10) is True  # a duplicate alert beats a lost one
    counter.add("k", 1, 0, None, lambda total: None)  # does not raise, does not wait
    assert time.monotonic() - began < 1.0
    for _ in range(100):  # known down: no attempt, no wait
        assert counter.read("k", 2.0) is None
    assert time.monotonic() - began < 1.0
    stats = counter.stats()
    assert stats["reads"] == stats["read_failures"] == 101
    assert stats["claims"] == stats["claim_failures"] == 1
    down = [r for r in warnings.records if "does not answer" in r.getMessage()]
    assert len(down) == 1 and down[0].levelno == logging.WARNING


def test_a_silent_server_costs_the_timeout_only(make_counter: Callable[..., RedisCounter]) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        counter = make_counter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        time.sleep(0.1)
        began = time.monotonic()
        assert counter.read("k", 0.3) is None
        assert 0.25 < time.monotonic() - began < 0.8
        time.sleep(0.6)  # past the "known down" pause: claim tries, and times out
        began = time.monotonic()
        assert counter.claim("alert", 10) is True
        assert time.monotonic() - began < 1.5


def test_adds_wait_in_a_bounded_buffer_while_the_server_is_down(
    make_counter: Callable[..., RedisCounter], warnings: pytest.LogCaptureFixture
) -> None:
    counter = make_counter(f"redis://127.0.0.1:{free_port()}/0", buffer_limit=10)
    for _ in range(25):
        counter.add("k", 1, 0, None, lambda total: None)
    time.sleep(0.2)
    stats = counter.stats()
    assert stats["adds"] == 25 and stats["pending"] == 10 and stats["adds_lost"] == 15
    assert "the oldest are dropped" in warnings.text


def test_adds_made_during_an_outage_are_sent_when_the_server_is_back(
    tmp_path: Path, make_counter: Callable[..., RedisCounter]
) -> None:
    with private_redis(tmp_path / "redis") as server:
        counter = make_counter(server.url)  # the server is not up yet
        totals: list[int] = []
        for _ in range(100):
            counter.add("spend", 1, 50, None, totals.append)
        time.sleep(0.3)
        assert counter.stats()["pending"] == 100 and counter.stats()["add_failures"] >= 100
        server.start()
        assert counter.flush(5)
        assert totals[-1] == 150 and counter.read("spend", 1.0) == 150

        server.stop()  # a second outage; the server comes back empty (nothing on disk)
        for _ in range(10):
            counter.add("spend", 2, 500, None, totals.append)
        time.sleep(0.3)
        assert counter.stats()["pending"] == 10
        server.start()
        assert counter.flush(5)
        # the key was missing: seeded with what the store had counted, then added to
        assert counter.read("spend", 1.0) == 520
        assert counter.stats()["adds_lost"] == 0


def test_the_password_is_never_shown(
    tmp_path: Path, make_counter: Callable[..., RedisCounter], warnings: pytest.LogCaptureFixture
) -> None:
    shown: list[str] = []
    with private_redis(tmp_path / "redis", password="the-right-one") as server:
        server.start()
        wrong = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"  # refused by the server
        down = f"redis://user:{SECRET}@127.0.0.1:{free_port()}/3"  # nothing listens
        socket_url = f"unix:///nonexistent/redis.sock?db=2&password={SECRET}"
        for url in (wrong, down, socket_url):
            counter = make_counter(url)
            assert counter.read("k", 1.0) is None
            assert counter.claim("alert", 1) is True
            counter.add("k", 1, 0, None, lambda total: None)
            time.sleep(0.1)
            shown += [repr(counter), str(counter.stats())]
            counter.close()
            shown.append(repr(counter))
    assert shown[0] == f"<RedisCounter redis://127.0.0.1:{server.port}/0>"
    assert shown[-1] == "<RedisCounter unix:///nonexistent/redis.sock?db=2 closed>"
    garbled = (f"redis://:{SECRET}#x@host/0", f"redis://:{SECRET}@h:port/0", f"http://:{SECRET}@h/0")
    for url in garbled:
        with pytest.raises(ml.ConfigError) as error:
            RedisCounter(url)
        shown.append(str(error.value))
    down_lines = [r.getMessage() for r in warnings.records if "does not answer" in r.getMessage()]
    assert len(down_lines) == 3  # the failures were logged, once per server...
    assert any("Authentication" in line or "WRONGPASS" in line for line in down_lines)
    assert SECRET not in "\n".join(shown) + warnings.text  # ...without the password


@pytest.mark.parametrize(
    "url",
    ["", "http://127.0.0.1:6379/0", "redis://", "redis://127.0.0.1/zero", "redis://h:99999/0",
     "unix://", "redis://h:6379/0?db=x", "127.0.0.1:6379"],
)  # fmt: skip
def test_a_malformed_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ml.ConfigError):
        RedisCounter(url)


@pytest.mark.servers
def test_one_counter_per_url_per_process(redis_url: str) -> None:
    assert fleet_counter(None) is None
    counter = fleet_counter(redis_url)
    assert counter is fleet_counter(redis_url) and isinstance(counter, RedisCounter)
    counter.close()
    counter.close()  # idempotent
    again = fleet_counter(redis_url)
    assert again is not counter and isinstance(again, RedisCounter) and not again.closed
    again.close()


@pytest.mark.servers
def test_close_sends_what_is_queued_and_later_adds_are_dropped(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    counter = RedisCounter(redis_url)
    for _ in range(300):
        counter.add(prefix + "k", 1, 0, None, lambda total: None)
    counter.close()
    assert int(raw.get(prefix + "k") or 0) == 300
    counter.add(prefix + "k", 1, 0, None, lambda total: None)
    assert counter.read(prefix + "k", 1.0) is None and counter.stats()["adds_lost"] == 1
    assert int(raw.get(prefix + "k") or 0) == 300


@pytest.mark.servers
def test_on_the_writer_thread_reads_answer_unknown_instead_of_deadlocking(
    redis_url: str, prefix: str, make_counter: Callable[..., RedisCounter],
    warnings: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    counter = make_counter(redis_url)

    async def on_the_loop() -> tuple[int | None, bool]:
        return counter.read(prefix + "k", 1.0), counter.claim(prefix + "alert", 1)

    assert writer_thread().run(on_the_loop(), 5) == (None, True)
    assert "would deadlock" in warnings.text


@pytest.mark.servers
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_counts_on_connections_of_its_own(
    redis_url: str, prefix: str, raw: redis.Redis, make_counter: Callable[..., RedisCounter]
) -> None:
    counter = make_counter(redis_url)
    assert add_and_wait(counter, prefix + "k", 1) == 1  # the parent's connection is open
    parent_clients = {c["id"] for c in raw.client_list()}
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: reports through its exit code
        code = 1
        try:
            for _ in range(100):
                counter.add(prefix + "k", 1, 0, None, lambda total: None)
            ok = counter.flush(10) and counter.stats()["adds"] == 100
            ids = {c["id"] for c in redis.Redis.from_url(redis_url).client_list()}
            # the child counted, on a connection the parent did not have
            code = 0 if ok and ids - parent_clients else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent's own connection came through untouched, and nothing was counted twice
    assert add_and_wait(counter, prefix + "k", 1) == 102
    assert counter.stats()["adds"] == 2 and counter.stats()["add_failures"] == 0
