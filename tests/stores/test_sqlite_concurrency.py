"""SQLite under concurrency: a cancelled write leaves the adapter usable, and processes
creating (and migrating) one new database file at once all succeed."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.record.ids import uuid7
from majordomo_log.schema import COLUMNS


def _row() -> tuple[Any, ...]:
    now = dt.datetime.now(dt.timezone.utc)
    values = {
        "request_id": uuid7(),
        "started_at": now,
        "ended_at": now,
        "latency_ms": 1.0,
        "provider": "p",
        "operation": "o",
        "stream": False,
        "status": "ok",
        "currency": "USD",
        "cost_status": "missing_usage",
        "tags": "{}",
    }
    return tuple(values.get(column) for column in COLUMNS)


async def test_cancelled_write_batch_leaves_sqlite_adapter_usable(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    try:
        big = [_row() for _ in range(50_000)]
        task = asyncio.create_task(db.write_batch(big, []))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        await db.write_batch([_row()], [])  # raised "cannot start a transaction within ..."

        assert await db.fetch("SELECT COUNT(*) AS n FROM llm_requests") == [{"n": 1}]
    finally:
        await db.close()


CREATE_SCRIPT = """
    import asyncio, sys
    import majordomo_log as ml

    async def main():
        db = await ml.SqliteAdapter.create(sys.argv[1])
        await db.close()

    asyncio.run(main())
"""


@pytest.mark.parametrize("attempt", range(3))
def test_six_processes_creating_one_new_sqlite_file_all_succeed(
    tmp_path: Path, attempt: int
) -> None:
    path = tmp_path / f"shared-{attempt}.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CREATE_SCRIPT), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert [code for code, _ in results] == [0] * 6, [err for _, err in results]
