"""A program that forgets close() still exits, and still writes what it logged."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import majordomo_log as ml
    from majordomo_log.testing import FakeProvider, fake_openai_client

    async def main():
        db = await ml.SqliteAdapter.create(sys.argv[1])
        storage = await ml.FileStorageAdapter.create(sys.argv[2])
        llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, storage)
        for _ in range(25):
            await llm.chat.completions.create(model="gpt-4o", messages=[])
        # no flush(), no close(): the writer's timer has not fired yet

    asyncio.run(main())
    """
)


def test_forgotten_close_exits_and_writes(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(db), str(tmp_path / "bodies")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM llm_requests").fetchone()
    assert rows == 25
