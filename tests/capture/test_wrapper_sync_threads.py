"""Sync wrappers under the ways web servers and scripts use them: a wrapper per request
on many threads, a full queue with on_full="block", threads still calling when the main
thread ends, a stream left open at exit, a hook that calls back into the wrapper, and
async and sync wrappers on the same store objects."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.testing import fake_openai_client, fake_sync_openai_client

MESSAGES = [{"role": "user", "content": "hi"}]
REPO = Path(__file__).resolve().parents[2]


def count(db: Path, where: str = "1=1") -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(f"SELECT COUNT(*) FROM llm_requests WHERE {where}").fetchone()[0])
    finally:
        con.close()


def run_threads(workers: int, target: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            target(n)
        except BaseException as exc:  # a thread's failure is reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_wrapper_per_request_on_many_threads_loses_nothing(tmp_path: Path) -> None:
    """The careless web handler: `with LoggingLLM(client, url, path)` per request, 16
    threads at once. Every request succeeds, every call is a row, no store is opened
    twice or closed under another thread's call."""
    url, bodies, db = f"sqlite:///{tmp_path / 'x.db'}", str(tmp_path / "b"), tmp_path / "x.db"
    client = fake_sync_openai_client()
    stores: set[int] = set()

    def handler(n: int) -> None:
        for _ in range(15):
            with ml.LoggingLLM(client, url, bodies, spool=tmp_path / "spool") as llm:
                stores.add(id(llm._writer.db))
                llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert run_threads(16, handler) == []
    with ml.LoggingLLM(client, url, bodies, spool=tmp_path / "spool") as llm:
        stats = llm.flush()
    assert stats.dropped == 0 and stats.failed == 0
    assert len(stores) == 1
    assert count(db) == 16 * 15
    assert not list((tmp_path / "spool").rglob("*.jsonl"))


def test_block_makes_threads_wait_instead_of_dropping(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    llm = ml.LoggingLLM(
        fake_sync_openai_client(),
        str(db),
        queue=ml.QueueOptions(max_records=20, batch_size=10, on_full="block"),
        spool=False,
    )

    def caller(n: int) -> None:
        for _ in range(40):
            llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert run_threads(32, caller) == []
    stats = llm.close()
    assert stats.dropped == 0 and stats.spilled == 0
    assert count(db) == 32 * 40


def test_an_async_wrapper_on_stores_a_hosted_writer_uses(tmp_path: Path) -> None:
    """One pair of store objects, a sync wrapper first (its writer on the library's
    thread), then an async one inside a loop: the async one shares that writer."""

    async def make() -> ml.MetadataStore:
        return await ml.SqliteAdapter.create(tmp_path / "x.db")

    db = asyncio.run(make())  # SQLite's adapter is not tied to the loop that made it
    sync_llm = ml.LoggingLLM(fake_sync_openai_client(), db)
    sync_llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    async def main() -> None:
        llm = ml.LoggingLLM(fake_openai_client(), db)
        assert llm._writer is sync_llm._writer
        await llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert (await asyncio.wait_for(llm.flush(), 10)).written == 2
        await llm.close()

    asyncio.run(main())
    sync_llm.close()
    assert count(tmp_path / "x.db") == 2


async def test_a_sync_wrapper_on_stores_an_event_loop_writer_uses(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "x.db")
    async with ml.LoggingLLM(fake_openai_client(), db, close_stores=False):
        with pytest.raises(ml.ConfigError, match="already used by a wrapper"):
            ml.LoggingLLM(fake_sync_openai_client(), db)
    await db.close()


def test_flush_from_a_hook_on_the_writer_is_refused_not_a_deadlock(tmp_path: Path) -> None:
    seen: list[BaseException] = []
    llm: Any = None

    def hook(envelope: dict[str, Any]) -> None:
        try:
            llm.flush()
        except RuntimeError as exc:
            seen.append(exc)

    llm = ml.LoggingLLM(
        fake_sync_openai_client(),
        str(tmp_path / "y.db"),
        str(tmp_path / "b"),
        bodies=ml.BodyOptions(redact=hook),
    )
    llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stats = llm.flush(timeout=20)
    llm.close()
    assert stats.written == 1
    assert seen and "deadlock" in str(seen[0])


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MAJORDOMO_LOG_SPOOL_DIR": str(tmp_path / "sp")}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )


def test_threads_still_calling_when_the_main_thread_ends_are_written(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        f"""
        import threading, time
        import majordomo_log as ml
        from majordomo_log.testing import fake_sync_openai_client
        llm = ml.LoggingLLM(fake_sync_openai_client(), "{tmp_path}/x.db", spool=False)
        def worker():
            for _ in range(10):
                time.sleep(0.05)
                llm.chat.completions.create(
                    model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}]
                )
        threading.Thread(target=worker).start()
        """,
    )
    assert done.returncode == 0, done.stderr
    assert count(tmp_path / "x.db") == 10


def test_a_stream_left_open_at_exit_is_logged_incomplete(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        f"""
        import majordomo_log as ml
        from majordomo_log.testing import fake_sync_openai_client
        llm = ml.LoggingLLM(fake_sync_openai_client(), "{tmp_path}/x.db")
        stream = llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}], stream=True
        )
        next(stream)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert count(tmp_path / "x.db", "status = 'incomplete'") == 1


def test_a_lone_call_is_written_within_the_flush_interval_without_a_flush(
    tmp_path: Path,
) -> None:
    """Callers wake the writer thread only for a full batch; a single call is taken by
    its timer and written all the same, with no flush() to push it."""
    import time

    db = tmp_path / "x.db"
    llm = ml.LoggingLLM(
        fake_sync_openai_client(), str(db), queue=ml.QueueOptions(flush_interval=0.2)
    )
    llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    deadline = time.monotonic() + 10
    while count(db) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(db) == 1
    llm.close()
