"""The spool and the memory budgets: what happens to records a store cannot take now.

Real SQLite and file stores throughout; the only stand-in is a thin wrapper over a
real SQLite store that can be switched to "unavailable" (what a database that is down
looks like to the writer) or that refuses one poisoned row (what a database's
constraint does). The fault tests against real servers are in test_faults.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

import majordomo_log as ml
from majordomo_log import cli
from majordomo_log._exceptions import SpoolCorrupt, SpoolFull
from majordomo_log.delivery import writer as _writer
from majordomo_log.delivery.options import RetryOptions
from majordomo_log.delivery.replay import replay_spool
from majordomo_log.delivery.spool import Spool, SpoolEntry
from majordomo_log.schema import COLUMNS, Row


class Reply:
    def __init__(self, model: str, size: int = 0) -> None:
        self.model, self.input_tokens, self.output_tokens = model, 10, 5
        self.text = "x" * size


class Client:
    """Returns at once without yielding to the loop: a burst of calls never lets the
    writer run, the worst case for the memory budget."""

    api_key = "sk-spool-test-0123456789abcdef"

    async def ask(self, model: str, prompt: str = "hi", size: int = 0) -> Reply:
        return Reply(model, size)


class SwitchableStore:
    """A real SQLite store that can be made unavailable, and refuses 'poison' rows."""

    def __init__(self, inner: ml.SqliteAdapter) -> None:
        self.inner, self.down, self.calls = inner, False, 0
        self.dialect, self.url = inner.dialect, inner.url

    async def write_batch(self, rows: Sequence[Any], outcomes: Sequence[Any]) -> None:
        self.calls += 1
        if self.down:
            raise ml.StoreUnavailable("connection refused")
        if any(row[COLUMNS.index("model")] == "poison" for row in rows):
            raise ml.StoreError("value rejected by the database")
        await self.inner.write_batch(rows, outcomes)

    async def migrate(self) -> list[str]:
        return await self.inner.migrate()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self.inner.fetch(sql, params)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RetryOptions, "delay", lambda self, attempt: 0.0)


def _ids(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM llm_requests")]


def _row(**values: Any) -> tuple[Any, ...]:
    now = dt.datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    base: dict[str, Any] = {c: None for c in COLUMNS}
    base.update(
        request_id="0190f5c2-0000-7000-8000-000000000001",
        started_at=now,
        ended_at=now,
        latency_ms=1.5,
        provider="openai",
        model="gpt-4o",
        operation="chat.completions",
        stream=False,
        status="ok",
        total_cost=Decimal("0.0000037500"),
        currency="USD",
        cost_status="computed",
        tags='{"feature": "x"}',
    )
    base.update(values)
    return tuple(base[c] for c in COLUMNS)


# -- the spool file format -----------------------------------------------------------


def test_a_batch_reads_back_exactly(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    row = _row(model="模型 \u00e9 '; DROP TABLE x; --", input_tokens=3, latency_ms=0.001)
    when = dt.datetime.now(dt.timezone.utc)
    path = spool.append(
        [SpoolEntry(row, b'{"request":"\\u0000 body"}'), SpoolEntry(_row(request_id="b"))],
        [("b", "accepted", when)],
        reason="unavailable",
        db="sqlite:///x.db",
        storage=None,
        error="StoreUnavailable: down",
    )
    batch = spool.read(path)
    assert batch.entries[0].row == row  # Decimal, aware datetime, float, bool, text
    assert isinstance(batch.entries[0].row[COLUMNS.index("total_cost")], Decimal)
    assert batch.entries[0].body == b'{"request":"\\u0000 body"}'
    assert batch.entries[1].body is None
    assert batch.outcomes == [("b", "accepted", when)]
    assert (batch.reason, batch.db, batch.error) == (
        "unavailable",
        "sqlite:///x.db",
        "StoreUnavailable: down",
    )
    assert [p.name for p in spool.pending()] == [path.name]
    assert (path.stat().st_mode & 0o777, spool.directory.stat().st_mode & 0o777) == (0o600, 0o700)
    assert not [n for n in os.listdir(spool.directory) if n.endswith(".tmp")]
    status = spool.status()
    assert (status.files, status.records, status.rejected_files) == (1, 2, 0)


def test_files_replay_in_the_order_they_were_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    paths = [
        spool.append([SpoolEntry(_row(request_id=str(i)))], reason="x", db=None, storage=None)
        for i in range(30)
    ]
    assert spool.pending() == paths


def test_the_size_cap_refuses_a_batch_and_says_so(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2000)
    spool.append([SpoolEntry(_row())], reason="x", db=None, storage=None)
    with pytest.raises(SpoolFull) as caught:
        spool.append([SpoolEntry(_row(), b"x" * 4000)], reason="x", db=None, storage=None)
    assert caught.value.reason == "spool_full"
    assert len(spool.pending()) == 1


def test_an_unreadable_file_is_quarantined_not_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    bad = tmp_path / "00000000000000000001-1-0.jsonl"
    bad.write_bytes(b"not json\n")
    with pytest.raises(SpoolCorrupt):
        spool.read(bad)
    moved = spool.quarantine(bad)
    assert moved.parent.name == "rejected" and spool.pending() == []


def test_a_row_that_does_not_fit_the_table_makes_its_file_unreadable(tmp_path: Path) -> None:
    """A file is replayed whole or not at all: a row shorter than any schema's (a hand
    edit) and the file is quarantined, its other rows kept with it."""
    spool = Spool(tmp_path)
    path = spool.append(
        [SpoolEntry(_row(request_id=str(i))) for i in range(3)], reason="x", db=None, storage=None
    )
    lines = path.read_bytes().splitlines()
    short = orjson.loads(lines[2])
    fewest = len(COLUMNS) - len(Row._field_defaults)  # a row of the schema before 0003
    short["row"] = short["row"][: fewest - 1]
    lines[2] = orjson.dumps(short)
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(SpoolCorrupt, match=f"a row of {fewest - 1} values where"):
        spool.read(path)


def test_a_row_spooled_before_an_upgrade_reads_with_the_new_columns_null(tmp_path: Path) -> None:
    """A spool file written before migration 0003 (45 values a row) replays after the
    upgrade: tool_call_count and retry_count are NULL, everything else as it was."""
    spool = Spool(tmp_path)
    row = Row(*_row(request_id="old", tool_call_count=4, retry_count=2))
    path = spool.append([SpoolEntry(row)], reason="x", db=None, storage=None)
    head, line = path.read_bytes().splitlines()
    entry = orjson.loads(line)
    at = COLUMNS.index("tool_call_count")  # 0003's columns, then the later migrations'
    assert entry["row"][at : at + 2] == [4, 2]
    entry["row"] = entry["row"][:at]
    path.write_bytes(head + b"\n" + orjson.dumps(entry) + b"\n")
    (read,) = spool.read(path).entries
    assert read.row == row._replace(tool_call_count=None, retry_count=None)


def test_a_row_spooled_before_0004_reads_with_its_billing_columns_null(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    row = Row(*_row(request_id="old", service_tier="flex", web_search_calls=2))
    path = spool.append([SpoolEntry(row)], reason="x", db=None, storage=None)
    head, line = path.read_bytes().splitlines()
    entry = orjson.loads(line)
    at = COLUMNS.index("service_tier")
    assert entry["row"][at : at + 2] == ["flex", 2]
    entry["row"] = entry["row"][:at]
    path.write_bytes(head + b"\n" + orjson.dumps(entry) + b"\n")
    (read,) = spool.read(path).entries
    assert read.row == row._replace(service_tier=None, web_search_calls=None)


def test_a_claimed_file_is_skipped_by_a_second_replayer(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    path = spool.append([SpoolEntry(_row())], reason="x", db=None, storage=None)
    with spool.claim(path) as first:
        assert first
        with Spool(tmp_path).claim(path) as second:  # another open file, as another process
            assert not second


# -- the writer: a store that is down --------------------------------------------------


async def test_store_down_spools_and_replay_writes_the_exact_set(tmp_path: Path) -> None:
    store = SwitchableStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    llm = ml.LoggingLLM(Client(), store, storage, spool=tmp_path / "spool", max_retries=2)
    made = [ml.call_info(await llm.ask(model="gpt-4o")).request_id for _ in range(50)]
    await llm.flush()
    store.down = True
    made += [ml.call_info(await llm.ask(model="gpt-4o")).request_id for _ in range(70)]
    stats = await llm.flush()
    assert (stats.written, stats.spilled, stats.dropped, stats.pending) == (50, 70, 0, 0)
    assert stats.store_down and stats.spool_files >= 1
    store.down = False
    assert await llm.replay_spool() == 70
    await llm.close()
    ids = _ids(tmp_path / "log.db")
    assert sorted(ids) == sorted(made) and len(set(ids)) == len(ids)
    reopened = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    with sqlite3.connect(tmp_path / "log.db") as conn:
        refs = dict(conn.execute("SELECT request_id, body_ref FROM llm_requests").fetchall())
    for request_id in made:  # every body stored, including the spooled ones
        assert (await reopened.get(refs[request_id]))["request_id"] == request_id
    assert Spool(tmp_path / "spool").pending() == []


async def test_close_replays_what_a_blip_left_in_the_spool(tmp_path: Path) -> None:
    store = SwitchableStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    llm = ml.LoggingLLM(Client(), store, None, spool=tmp_path / "spool", max_retries=0)
    store.down = True
    made = [ml.call_info(await llm.ask(model="gpt-4o")).request_id for _ in range(30)]
    assert (await llm.flush()).spilled == 30
    store.down = False  # back before the end of the script: nothing may stay behind
    stats = await llm.close()
    assert (stats.replayed, stats.spool_files) == (30, 0)
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)


async def test_an_outcome_for_a_spooled_row_lands_after_the_row(tmp_path: Path) -> None:
    store = SwitchableStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    llm = ml.LoggingLLM(Client(), store, None, spool=tmp_path / "spool", max_retries=0)
    store.down = True
    spooled = ml.call_info(await llm.ask(model="gpt-4o")).request_id
    assert (await llm.flush()).spilled == 1
    store.down = False
    # The store is back, the row still in the spool: the outcome must not be lost.
    await llm.record_outcome(spooled, "accepted")
    direct = ml.call_info(await llm.ask(model="gpt-4o")).request_id
    stats = await llm.close()
    with sqlite3.connect(tmp_path / "log.db") as conn:
        outcomes = dict(conn.execute("SELECT request_id, outcome FROM llm_requests").fetchall())
    assert outcomes == {spooled: "accepted", direct: None}
    assert (stats.outcomes_written, stats.outcomes_unmatched) == (1, 0)


async def test_a_spool_that_cannot_write_keeps_the_batch_in_memory(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the spool's parent should be")
    store = SwitchableStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    store.down = True
    llm = ml.LoggingLLM(
        Client(), store, None, spool=tmp_path / "not-a-dir" / "spool", max_retries=0
    )
    made = [ml.call_info(await llm.ask(model="gpt-4o")).request_id for _ in range(25)]
    stats = await llm.flush(timeout=0.5)
    assert (stats.written, stats.spilled, stats.dropped, stats.pending) == (0, 0, 0, 25)
    store.down = False
    stats = await llm.flush(timeout=60)  # the next probe finds the store back
    assert (stats.written, stats.dropped, stats.pending) == (25, 0, 0)
    await llm.close()
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)


async def test_a_new_writer_replays_what_an_earlier_process_spooled(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    store = SwitchableStore(db)
    store.down = True
    first = ml.LoggingLLM(Client(), store, None, max_retries=0, close_stores=False)
    made = [ml.call_info(await first.ask(model="gpt-4o")).request_id for _ in range(20)]
    assert (await first.close()).spilled == 20
    # The next start, with the database reachable: the default spool is found by URL.
    second = ml.LoggingLLM(Client(), db, None)
    made.append(ml.call_info(await second.ask(model="gpt-4o")).request_id)
    for _ in range(100):
        if second.stats().replayed == 20:
            break
        await asyncio.sleep(0.05)
    stats = await second.close()
    assert (stats.replayed, stats.written) == (20, 1)
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)


async def test_a_refused_row_is_kept_in_the_spool_with_its_error(tmp_path: Path) -> None:
    store = SwitchableStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    llm = ml.LoggingLLM(Client(), store, None, spool=tmp_path / "spool")
    replies = [await llm.ask(model=m) for m in ["gpt-4o"] * 30 + ["poison"] + ["gpt-4o"] * 9]
    stats = await llm.flush()
    assert (stats.written, stats.failed, stats.dropped) == (39, 1, 0)
    spool = Spool(tmp_path / "spool")
    (rejected,) = spool.rejected()
    batch = spool.read(rejected)
    assert [e.request_id for e in batch.entries] == [ml.call_info(replies[30]).request_id]
    assert "value rejected by the database" in (batch.entries[0].error or "")
    assert spool.pending() == []  # rejected rows are not replayed on their own
    await llm.close()


async def test_without_a_spool_a_down_store_keeps_records_in_memory(tmp_path: Path) -> None:
    store = SwitchableStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    store.down = True
    llm = ml.LoggingLLM(Client(), store, None, spool=False, max_retries=0)
    made = [ml.call_info(await llm.ask(model="gpt-4o")).request_id for _ in range(10)]
    stats = await llm.flush(timeout=0.5)
    assert (stats.written, stats.pending, stats.dropped) == (0, 10, 0)
    store.down = False
    stats = await llm.flush(timeout=60)  # the next probe finds it back
    assert (stats.written, stats.pending) == (10, 0)
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)
    await llm.close()


# -- the memory budgets ----------------------------------------------------------------


async def test_spill_keeps_a_burst_within_the_record_budget(tmp_path: Path) -> None:
    llm = ml.LoggingLLM(
        Client(),
        await ml.SqliteAdapter.create(tmp_path / "log.db"),
        None,
        max_queue_records=100,
        spool=tmp_path / "spool",
    )
    made, peak = [], 0
    for _ in range(3000):  # never yields: the writer cannot run during the burst
        made.append(ml.call_info(await llm.ask(model="gpt-4o")).request_id)
        peak = max(peak, llm.stats().queue_records + len(llm._writer._overflow))
    stats = await llm.flush()
    assert peak <= 100 + _writer._SPILL_CHUNK
    assert stats.spilled >= 2900 - _writer._SPILL_CHUNK and stats.dropped == 0
    await llm.replay_spool()
    await llm.close()
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)


async def test_the_batch_being_written_counts_against_the_record_budget(tmp_path: Path) -> None:
    """A batch taken for writing returns to the queue when the store is down, so calls
    made while it is in flight must not fill the queue as if it had gone: the budget
    holds whatever the timing (CI once saw 120 records under a budget of 100)."""
    store = SwitchableStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    started, release = asyncio.Event(), asyncio.Event()
    real_write = store.write_batch

    async def stalled_then_down(rows: Any, outcomes: Any) -> None:
        started.set()
        await release.wait()
        store.down = True
        await real_write(rows, outcomes)

    store.write_batch = stalled_then_down  # type: ignore[method-assign]
    llm = ml.LoggingLLM(
        Client(), store, None, max_queue_records=40, batch_size=20, spool=False, max_retries=0
    )
    for _ in range(20):
        await llm.ask(model="gpt-4o")
    await asyncio.wait_for(started.wait(), 10)  # those 20 are in flight now
    for _ in range(40):
        await llm.ask(model="gpt-4o")
    assert llm.stats().queue_records == 40  # 20 in flight + 20 queued: the rest dropped
    release.set()
    stats = await llm.flush(timeout=0.5)
    assert stats.queue_records == stats.pending == 40 and stats.written == 0, stats
    assert stats.dropped_by_reason == {"queue_full": 20}, stats
    store.write_batch = real_write  # type: ignore[method-assign]
    store.down = False
    stats = await llm.flush(timeout=60)
    assert (stats.written, stats.pending, stats.queue_records) == (40, 0, 0), stats
    await llm.close()


async def test_drop_bodies_first_keeps_every_row(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    llm = ml.LoggingLLM(
        Client(),
        await ml.SqliteAdapter.create(tmp_path / "log.db"),
        storage,
        max_queue_bytes=64 * 1024,
        on_full="drop_bodies_first",
        spool=False,
    )
    made = [
        ml.call_info(await llm.ask(model="gpt-4o", prompt="p" * 8000)).request_id for _ in range(40)
    ]
    stats = await llm.close()
    assert stats.dropped == 0 and stats.written == 40
    assert 0 < stats.bodies_dropped < 40
    assert stats.bodies_written == 40 - stats.bodies_dropped
    with sqlite3.connect(tmp_path / "log.db") as conn:
        rows = conn.execute(
            "SELECT request_id, body_ref, input_tokens FROM llm_requests"
        ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(made)
    assert sum(r[1] is None for r in rows) == stats.bodies_dropped
    assert all(r[2] == 10 for r in rows)  # usage kept and priced without the body


async def test_block_makes_callers_wait_and_loses_nothing(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    real_write = db.write_batch

    async def slow_write(rows: Any, outcomes: Any) -> None:
        await asyncio.sleep(0.01)
        await real_write(rows, outcomes)

    db.write_batch = slow_write  # type: ignore[method-assign]
    llm = ml.LoggingLLM(
        Client(), db, None, max_queue_records=20, batch_size=10, on_full="block", spool=False
    )
    peak = 0

    async def caller() -> list[str]:
        nonlocal peak
        ids = []
        for _ in range(25):
            ids.append(ml.call_info(await llm.ask(model="gpt-4o")).request_id)
            peak = max(peak, llm.stats().queue_records)
        return ids

    made = [i for ids in await asyncio.gather(*(caller() for _ in range(8))) for i in ids]
    stats = await llm.close()
    assert (stats.written, stats.dropped, stats.spilled) == (200, 0, 0)
    assert peak <= 20 + 8  # the budget, overshot at most by the callers already past the wait
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)


def test_budgets_and_policy_are_validated() -> None:
    async def make(**options: Any) -> None:
        db = await ml.SqliteAdapter.create(":memory:")
        try:
            ml.LoggingLLM(Client(), db, None, **options)
        finally:
            await db.close()

    for bad in ({"on_full": "drop"}, {"max_queue_records": 0}, {"max_retries": -1}):
        with pytest.raises(ValueError):
            asyncio.run(make(**bad))


# -- the CLI ---------------------------------------------------------------------------


async def test_cli_spool_status_inspect_and_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAJORDOMO_LOG_SPOOL_DIR", str(tmp_path / "spools"))
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    store = SwitchableStore(db)
    store.down = True
    llm = ml.LoggingLLM(Client(), store, None, max_retries=0, close_stores=False)
    made = [ml.call_info(await llm.ask(model="gpt-4o")).request_id for _ in range(7)]
    await llm.close()
    await db.close()

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(list(argv))
        return code, capsys.readouterr().out

    code, out = await asyncio.to_thread(run, "spool", "status", "--format", "json")
    (status,) = json.loads(out)
    # shown as the file's path, which pasted back as --db names the same file
    assert code == 0 and (status["records"], status["db"]) == (7, str(tmp_path / "log.db"))
    code, out = await asyncio.to_thread(run, "spool", "inspect", "--format", "json")
    assert sorted(r["request_id"] for r in json.loads(out)) == sorted(made)
    code, out = await asyncio.to_thread(
        run, "spool", "replay", "--db", str(tmp_path / "log.db"), "--storage", str(tmp_path / "b")
    )
    # The CLI's stores have other URLs than the app's (a body store here): nothing matches.
    assert code == 0 and "replayed 0 records" in out
    code, out = await asyncio.to_thread(
        run,
        "spool",
        "replay",
        "--db",
        str(tmp_path / "log.db"),
        "--spool-dir",
        status["spool"],
        "--any-store",
    )
    assert code == 0 and "replayed 7 records" in out
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)


async def test_replay_is_idempotent(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    spool = Spool(tmp_path / "spool")
    rows = [_row(request_id=f"r{i}") for i in range(5)]
    for _ in range(2):  # the same batch spooled twice, e.g. rescued while being written
        spool.append([SpoolEntry(r) for r in rows], reason="x", db=db.url, storage=None)
    result = await replay_spool(spool, db, None)
    assert (result.files, result.records) == (2, 10)
    assert sorted(_ids(tmp_path / "log.db")) == [f"r{i}" for i in range(5)]
    await db.close()


async def test_two_writers_sharing_one_sqlite_store_take_turns(tmp_path: Path) -> None:
    # Different body stores make two writers on one SQLite connection: their transactions
    # must not interleave (that sent rows to rejected/ before the adapter serialized them).
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    wrappers = [
        ml.LoggingLLM(
            Client(),
            db,
            await ml.FileStorageAdapter.create(tmp_path / name),
            close_stores=False,
            batch_size=7,
            flush_interval=0.001,
        )
        for name in ("a", "b")
    ]

    async def caller(llm: Any) -> list[str]:
        ids = []
        for _ in range(60):
            ids.append(ml.call_info(await llm.ask(model="gpt-4o")).request_id)
            await asyncio.sleep(0)
        return ids

    made = [i for ids in await asyncio.gather(*(caller(w) for w in wrappers * 3)) for i in ids]
    for llm in wrappers:
        stats = await llm.close()
        assert (stats.failed, stats.dropped, stats.spilled) == (0, 0, 0)
    await db.close()
    assert sorted(_ids(tmp_path / "log.db")) == sorted(made)
