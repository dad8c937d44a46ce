"""A process that dies: SIGKILL (what reached the spool is replayed by the next start),
SIGTERM with the default disposition (queued records are spooled, the exit status still
says SIGTERM), exit without close() from a loop that asyncio.run did not shut down
(atexit spools), and a caller cancelled mid-call (its record is still logged).

Not covered, because nothing can cover it: ``os._exit()`` and SIGKILL lose what was
still in memory (queued, not yet written or spooled); only what had reached the spool
or the database survives them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from faultlib import assert_exactly_logged, spooled_ids, target_of
from faultproxy import FaultProxy
from servers import isolated_db, require

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

TESTS = Path(__file__).parents[1]

# The child: stores from argv, a wrapper over a fake OpenAI client; prints JSON lines.
PRELUDE = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys, time
    import majordomo_log as ml
    from majordomo_log.stores.sql.postgres import PostgresAdapter
    from majordomo_log.testing import FakeProvider, fake_openai_client

    DB_URL, SCHEMA, BODIES, SPOOL = sys.argv[1:5]

    def say(**fields):
        print(json.dumps(fields), flush=True)

    async def open_stores():
        if DB_URL.startswith("sqlite:"):
            db = await ml.SqliteAdapter.create(DB_URL[len("sqlite:"):])
        else:
            db = await PostgresAdapter.create(DB_URL, schema=SCHEMA, command_timeout=5)
        return db, await ml.FileStorageAdapter.create(BODIES)

    async def call(llm, k):
        resp = await llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {k}"}]
        )
        return ml.call_info(resp).request_id

    def wrap(db, storage, **options):
        return ml.LoggingLLM(
            fake_openai_client(FakeProvider()), db, storage, spool=SPOOL, **options
        )

    def stats_dict(stats):
        return {k: getattr(stats, k) for k in ("written", "spilled", "replayed", "dropped")}
    """
)

# Makes calls with the database unreachable: flushes once (so a first set is known to be
# in the spool), then keeps calling until killed.
DOOMED = PRELUDE + textwrap.dedent(
    """
    async def main():
        db, storage = await open_stores()
        llm = wrap(db, storage, flush_interval=0.05, max_retries=0)
        say(event="ready")
        sys.stdin.readline()  # the parent has taken the database away
        ids = list(await asyncio.gather(*(call(llm, k) for k in range(100))))
        stats = await llm.flush()
        say(event="spooled", ids=ids, stats=stats_dict(stats))
        k = 100
        while True:  # more calls, some spooled, some in memory when the kill comes
            made = await asyncio.gather(*(call(llm, k + i) for i in range(10)))
            say(event="made", ids=list(made))
            k += 10
            await asyncio.sleep(0.01)

    asyncio.run(main())
    """
)

# The next start, the database back: one new call, then wait for the background replay.
RESTART = PRELUDE + textwrap.dedent(
    """
    async def main():
        db, storage = await open_stores()
        llm = wrap(db, storage)
        new_id = await call(llm, 0)
        await llm.flush()
        deadline = time.monotonic() + 30
        while llm.stats().spool_files and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # replayed at start, in the background
        background = stats_dict(llm.stats())
        await llm.replay_spool()  # a no-op if the background replay did it all
        say(event="done", new_id=new_id, background=background, stats=stats_dict(await llm.close()))

    asyncio.run(main())
    """
)


def _child(script: str, tmp_path: Path, args: list[str]) -> subprocess.Popen[str]:
    path = tmp_path / "child.py"
    path.write_text(script)
    return subprocess.Popen(
        [sys.executable, str(path), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=TESTS.parent,
    )


def _read_event(proc: subprocess.Popen[str], name: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"child ended before {name!r}: {proc.wait()}\n{stderr}")
        event: dict[str, Any] = json.loads(line)
        if event["event"] == name:
            return event


def _sigterm_at(proc: subprocess.Popen[str], event: str) -> dict[str, Any]:
    """Send SIGTERM once the child says ``event``; check that it died of it."""
    try:
        said = _read_event(proc, event)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM, stderr
    return said


def _run(script: str, tmp_path: Path, args: list[str]) -> dict[str, Any]:
    proc = _child(script, tmp_path, args)
    try:
        return _read_event(proc, "done")
    finally:
        proc.communicate(timeout=60)
        assert proc.returncode == 0


@pytest.mark.servers
async def test_sigkill_then_restart_replays_what_reached_the_spool(tmp_path: Path) -> None:
    async with isolated_db("postgresql", tmp_path) as direct:
        assert isinstance(direct.schema, str)  # type: ignore[attr-defined]
        with FaultProxy(*target_of(require("postgresql"), 5432)) as proxy:
            url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
            args = [url, direct.schema, str(tmp_path / "bodies"), str(tmp_path / "spool")]  # type: ignore[attr-defined]
            proc = _child(DOOMED, tmp_path, args)
            try:
                _read_event(proc, "ready")
                proxy.down()
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
                spooled = _read_event(proc, "spooled")
                made = set(spooled["ids"])
                for _ in range(3):  # killed while calling, writing and spooling
                    made |= set(_read_event(proc, "made")["ids"])
            finally:
                proc.kill()
                proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            assert spooled["stats"]["spilled"] == 100, spooled  # flush() returned: spooled
            in_spool = spooled_ids(tmp_path / "spool")
            assert set(spooled["ids"]) <= set(in_spool) and len(in_spool) == len(set(in_spool))
            proxy.restore()
            done = _run(RESTART, tmp_path, args)
        assert done["background"]["replayed"] == len(in_spool), done
        assert spooled_ids(tmp_path / "spool") == []
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        # Exactly once each: what reached the spool, and the new start's own call. What
        # the kill caught in memory (made, never spooled) is the documented loss.
        assert set(in_spool) <= made | {done["new_id"]}
        await assert_exactly_logged(direct, storage, [*in_spool, done["new_id"]])
        await storage.close()


# Calls queued, not written (the flush timer is an hour away), then SIGTERM: the default
# disposition is to die, so the handler spools first and dies by the same signal.
TERMINATED = PRELUDE + textwrap.dedent(
    """
    async def main():
        db, storage = await open_stores()
        llm = wrap(db, storage, flush_interval=3600, batch_size=10_000)
        ids = list(await asyncio.gather(*(call(llm, k) for k in range(50))))
        say(event="queued", ids=ids, pending=llm.stats().pending)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def test_sigterm_spools_queued_records_and_dies_by_sigterm(tmp_path: Path) -> None:
    args = [f"sqlite:{tmp_path / 'log.db'}", "", str(tmp_path / "bodies"), str(tmp_path / "spool")]
    queued = _sigterm_at(_child(TERMINATED, tmp_path, args), "queued")
    assert queued["pending"] == 50
    assert sorted(spooled_ids(tmp_path / "spool")) == sorted(queued["ids"])
    done = _run(RESTART, tmp_path, args)
    assert done["background"]["replayed"] == 50, done
    assert spooled_ids(tmp_path / "spool") == []
    _check_sqlite(tmp_path, [*queued["ids"], done["new_id"]])


# A burst over the queue's budget, spilled to a spool on a slow disk, and SIGTERM in the
# middle of that spill: the records being written are still the rescue's to save.
SPILL_INTERRUPTED = PRELUDE + textwrap.dedent(
    """
    LLM = None

    class SlowDiskSpool(ml.Spool):
        def append(self, entries, outcomes=(), **kwargs):
            if kwargs["reason"] == "overflow":
                say(event="spilling", records=len(entries), pending=LLM.stats().pending)
                time.sleep(30)  # a slow disk: SIGTERM comes now
            return super().append(entries, outcomes, **kwargs)

    async def main():
        global LLM
        db, storage = await open_stores()
        LLM = ml.LoggingLLM(
            fake_openai_client(FakeProvider()), db, storage, spool=SlowDiskSpool(SPOOL),
            max_queue_records=10, flush_interval=3600,
        )
        await asyncio.gather(*(call(LLM, k) for k in range(400)))
        say(event="finished")

    asyncio.run(main())
    """
)


def test_sigterm_during_an_overflow_spill_keeps_the_records_being_spilled(
    tmp_path: Path,
) -> None:
    args = [f"sqlite:{tmp_path / 'log.db'}", "", str(tmp_path / "bodies"), str(tmp_path / "spool")]
    spilling = _sigterm_at(_child(SPILL_INTERRUPTED, tmp_path, args), "spilling")
    assert spilling["records"] >= 1
    in_spool = spooled_ids(tmp_path / "spool")
    # Every record accepted by then is in the spool, the ones being spilled included.
    assert len(set(in_spool)) == spilling["pending"], (len(set(in_spool)), spilling)


# A program that runs its loop by hand and never shuts it down: asyncio.run() is what
# cancels (and so drains) the writer; without it, the atexit hook spools what is held.
ABANDONED = PRELUDE + textwrap.dedent(
    """
    async def main():
        db, storage = await open_stores()
        llm = wrap(db, storage, flush_interval=3600, batch_size=10_000)
        ids = list(await asyncio.gather(*(call(llm, k) for k in range(40))))
        say(event="queued", ids=ids)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    sys.exit(0)  # no close(), no flush(), the loop neither closed nor its tasks cancelled
    """
)


def test_exit_without_close_from_an_unfinished_loop_spools(tmp_path: Path) -> None:
    args = [f"sqlite:{tmp_path / 'log.db'}", "", str(tmp_path / "bodies"), str(tmp_path / "spool")]
    proc = _child(ABANDONED, tmp_path, args)
    queued = _read_event(proc, "queued")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    spool = ml.Spool(tmp_path / "spool")
    reasons = {spool.read(p).reason for p in spool.pending()}
    assert reasons == {"exit"}
    assert sorted(spooled_ids(tmp_path / "spool")) == sorted(queued["ids"])
    done = _run(RESTART, tmp_path, args)
    assert done["background"]["replayed"] == 40, done
    _check_sqlite(tmp_path, [*queued["ids"], done["new_id"]])


def _check_sqlite(tmp_path: Path, ids: list[str]) -> None:
    async def check() -> None:
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        try:
            await assert_exactly_logged(db, storage, ids)
        finally:
            await db.close()
            await storage.close()

    asyncio.run(check())


async def test_a_cancelled_caller_still_gets_its_record(tmp_path: Path) -> None:
    """The task that made the call is cancelled while the provider has not answered: the
    call is logged, status 'incomplete', and nothing else breaks."""
    provider = FakeProvider(first_chunk_delay=30.0)
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    llm = ml.LoggingLLM(
        fake_openai_client(provider), db, storage, spool=tmp_path / "spool", close_stores=False
    )
    task = asyncio.create_task(
        llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    )
    await asyncio.sleep(0.3)  # the request is out, the answer 30 s away
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = await llm.close()
    assert stats.written == 1 and stats.dropped == 0, stats
    rows = await db.fetch("SELECT request_id, status, body_ref FROM llm_requests")
    assert [r["status"] for r in rows] == ["incomplete"]
    body = await storage.get(rows[0]["body_ref"])
    assert body["status"] == "incomplete" and body["request"]["messages"][0]["content"] == "x"
    await db.close()
    await storage.close()
