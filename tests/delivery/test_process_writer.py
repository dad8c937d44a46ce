"""``writer="process"``: a real child process writes what the application captures.

Every record lands once (request_id is the key), with its price and body; a child
killed mid-run is restarted and its unacknowledged batches sent again; a child that
cannot start leaves the records in the parent's spool; a program that forgets close()
still gets its records written; pre-fork workers each get their own child.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")

MESSAGES = [{"role": "user", "content": "x" * 4000}]
ROOT = Path(__file__).resolve().parents[2]


async def _stores(tmp_path: Path) -> tuple[ml.SqliteAdapter, ml.FileStorageAdapter]:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    return db, storage


async def _calls(llm: Any, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        reply = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        ids.append(ml.call_info(reply).request_id)
    return ids


async def _running_child(writer: Any, other_than: int | None = None) -> int:
    """The writer process's pid, once one runs (a spawned one takes a while to start),
    and not ``other_than``: a child just killed may not have been noticed yet."""
    deadline = time.monotonic() + 30
    while writer.child_pid in (None, other_than) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert writer.child_pid not in (None, other_than)
    return int(writer.child_pid)


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT request_id, total_cost, body_ref, cost_status FROM llm_requests"
        ).fetchall()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_every_record_is_written_priced_with_its_body(tmp_path: Path, method: str) -> None:
    async def main() -> tuple[list[str], ml.WriterStats, Any]:
        db, storage = await _stores(tmp_path)
        llm = ml.LoggingLLM(
            fake_openai_client(FakeProvider()),
            db,
            storage,
            writer="process",
            process=ml.ProcessOptions(start_method=method),
            spool=tmp_path / "spool",
            batch_size=50,
        )
        ids = await _calls(llm, 120)
        flushed = await llm.flush(30)
        assert (flushed.written, flushed.pending) == (120, 0)
        writer = llm._writer
        assert writer.child_pid not in (None, os.getpid())
        stats = await llm.close()
        return ids, stats, writer

    ids, stats, writer = asyncio.run(main())
    assert (stats.written, stats.bodies_written, stats.dropped, stats.pending) == (120, 120, 0, 0)
    rows = _rows(tmp_path / "log.db")
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert all(r[1] is not None and r[2] and r[3] == "computed" for r in rows)
    assert writer.child_pid is None  # closed and reaped
    body = asyncio.run(_body(tmp_path, rows[0][2]))
    assert body["request"]["messages"][0]["content"] == "x" * 4000


async def _body(tmp_path: Path, ref: str) -> dict[str, Any]:
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    return await storage.get(ref)


def test_an_unknown_writer_names_the_choices(tmp_path: Path) -> None:
    async def main() -> None:
        db, storage = await _stores(tmp_path)
        with pytest.raises(ml.ConfigError, match=r"thread, process.*'threads'"):
            ml.LoggingLLM(fake_openai_client(), db, storage, writer="threads")
        with pytest.raises(ml.ConfigError, match="start_method"):
            ml.ProcessOptions(start_method="forkserver")  # type: ignore[arg-type]
        await db.close()

    asyncio.run(main())


def test_spawn_refuses_a_hook_it_cannot_pickle(tmp_path: Path) -> None:
    async def main() -> None:
        db, storage = await _stores(tmp_path)
        with pytest.raises(ml.ConfigError, match="picklable"):
            ml.LoggingLLM(
                fake_openai_client(),
                db,
                storage,
                writer="process",
                process=ml.ProcessOptions(start_method="spawn"),
                redact=lambda envelope: envelope,
            )
        await db.close()

    asyncio.run(main())


def test_fork_runs_a_lambda_redact_hook_in_the_child(tmp_path: Path) -> None:
    seen_pids: list[int] = []

    def hook(envelope: dict[str, Any]) -> dict[str, Any]:
        seen_pids.append(os.getpid())  # the child's list: the parent's stays empty
        envelope["request"]["messages"] = "redacted"
        return envelope

    async def main() -> None:
        db, storage = await _stores(tmp_path)
        llm = ml.LoggingLLM(
            fake_openai_client(), db, storage, writer="process", redact=lambda e: hook(e)
        )
        await _calls(llm, 3)
        await llm.close()

    asyncio.run(main())
    rows = _rows(tmp_path / "log.db")
    assert len(rows) == 3 and not seen_pids
    assert asyncio.run(_body(tmp_path, rows[0][2]))["request"]["messages"] == "redacted"


def test_postgres_through_a_forked_child(tmp_path: Path) -> None:
    from servers import isolated_db

    async def main() -> None:
        async with isolated_db("postgresql", tmp_path) as db:
            llm = ml.LoggingLLM(
                fake_openai_client(), db, None, writer="process", close_stores=False
            )
            ids = await _calls(llm, 40)
            stats = await llm.close()
            assert (stats.written, stats.dropped) == (40, 0)
            rows = await db.fetch("SELECT request_id, total_cost FROM llm_requests")
            assert sorted(r["request_id"] for r in rows) == sorted(ids)
            assert all(r["total_cost"] is not None for r in rows)

    asyncio.run(main())


test_postgres_through_a_forked_child = pytest.mark.servers(test_postgres_through_a_forked_child)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_killed_child_is_restarted_and_nothing_is_lost_or_doubled(
    tmp_path: Path, method: str
) -> None:
    async def main() -> tuple[list[str], ml.WriterStats, int]:
        db, storage = await _stores(tmp_path)
        llm = ml.LoggingLLM(
            fake_openai_client(),
            db,
            storage,
            writer="process",
            process=ml.ProcessOptions(start_method=method),
            spool=tmp_path / "spool",
            batch_size=20,
            flush_interval=0.05,
        )
        writer = llm._writer
        ids: list[str] = []
        pid = None
        for _ in range(3):
            ids += await _calls(llm, 150)
            # a new child, not the one killed last time (its death may not be seen yet)
            pid = await _running_child(writer, other_than=pid)
            os.kill(pid, signal.SIGKILL)  # mid-run: batches in flight, unacknowledged
            ids += await _calls(llm, 50)
        stats = await llm.close(30)
        return ids, stats, writer.starts

    ids, stats, starts = asyncio.run(main())
    assert starts >= 4  # the first child and one per kill
    rows = _rows(tmp_path / "log.db")
    assert len(rows) == len(ids) == 600
    assert sorted(r[0] for r in rows) == sorted(ids)  # each once: a resend is skipped
    assert all(r[2] for r in rows)  # and its body
    assert stats.dropped == 0 and stats.pending == 0


def test_a_child_that_cannot_start_leaves_the_records_in_the_spool(tmp_path: Path) -> None:
    folder = tmp_path / "db"

    async def main() -> ml.WriterStats:
        db = await ml.SqliteAdapter.create(folder / "log.db")
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        llm = ml.LoggingLLM(
            fake_openai_client(),
            db,
            storage,
            writer="process",
            process=ml.ProcessOptions(start_method="spawn", max_restarts=1),
            spool=tmp_path / "spool",
        )
        # The parent's connection still works; a spawned child cannot open the file.
        folder.rename(tmp_path / "moved")
        folder.write_text("not a folder")
        await _calls(llm, 30)
        stats = await llm.close(20)
        await db.close()
        return stats

    stats = asyncio.run(main())
    assert (stats.written, stats.dropped, stats.spilled, stats.pending) == (0, 0, 30, 0)
    folder.unlink()
    (tmp_path / "moved").rename(folder)

    async def replay() -> int:
        db, storage = await _stores(folder.parent)
        db = await ml.SqliteAdapter.create(folder / "log.db")
        llm = ml.LoggingLLM(fake_openai_client(), db, storage, spool=tmp_path / "spool")
        written = await llm.replay_spool()
        await llm.close()
        return written

    assert asyncio.run(replay()) == 30
    assert len(_rows(folder / "log.db")) == 30


SCRIPT = """
import asyncio, os, sys
import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

folder, method = sys.argv[1], sys.argv[2]

async def setup():
    db = await ml.SqliteAdapter.create(os.path.join(folder, "log.db"))
    return ml.LoggingLLM(
        fake_openai_client(FakeProvider()), db, None, writer="process",
        process=ml.ProcessOptions(start_method=method), flush_interval=3600,
        spool=os.path.join(folder, "spool"),
    )

async def calls(llm, n):
    for _ in range(n):
        await llm.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )

llm = asyncio.run(setup())
{body}
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_program_that_forgets_close_still_gets_its_records_written(
    tmp_path: Path, method: str
) -> None:
    # Each call in its own asyncio.run: no loop runs between them or at exit, as in a
    # sync program; the sender thread ships without one.
    body = "for _ in range(5):\n    asyncio.run(calls(llm, 40))\nprint('done')"
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.replace("{body}", body))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), method],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert len(_rows(tmp_path / "log.db")) == 200  # handed to the child at exit
    spooled = list((tmp_path / "spool").glob("*.jsonl*")) if (tmp_path / "spool").exists() else []
    assert not spooled


def test_pre_fork_workers_each_get_their_own_child(tmp_path: Path) -> None:
    """gunicorn --preload: the wrapper is made before the workers fork."""
    body = textwrap.dedent(
        """
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                async def work():
                    await calls(llm, 30)
                    await llm.flush()  # acknowledged: this worker's child is running
                    child = llm._writer.child_pid
                    stats = await llm.close()
                    assert stats.written == 30, stats
                    with open(os.path.join(folder, f"child-{os.getpid()}"), "w") as f:
                        f.write(str(child))
                asyncio.run(work())
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        asyncio.run(calls(llm, 10))
        stats = asyncio.run(llm.close())
        assert stats.written == 10, stats
        """
    )
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.replace("{body}", body))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "fork"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert len(_rows(tmp_path / "log.db")) == 70
    writers = {p.read_text() for p in tmp_path.glob("child-*")}
    assert len(writers) == 2 and "None" not in writers  # one writer process per worker


def test_the_store_password_is_in_no_argv_or_environment(tmp_path: Path) -> None:
    """A spawned child's argv is the pipe's descriptor; its environment is the
    application's. Checked on the running child's /proc entries."""

    async def main() -> tuple[bytes, bytes]:
        db, storage = await _stores(tmp_path)
        llm = ml.LoggingLLM(
            fake_openai_client(api_key="sk-secret-key-of-this-test"),
            db,
            storage,
            writer="process",
            process=ml.ProcessOptions(start_method="spawn"),
        )
        await _calls(llm, 2)
        pid = await _running_child(llm._writer)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        await llm.close()
        return cmdline, environ

    if not Path("/proc/self/cmdline").exists():
        pytest.skip("no /proc")
    cmdline, environ = asyncio.run(main())
    assert b"sk-secret-key-of-this-test" not in cmdline + environ
    assert cmdline.split(b"\0")[-2].isdigit()  # ... -c <code> <fd>


def test_stats_survive_a_restart(tmp_path: Path) -> None:
    async def main() -> ml.WriterStats:
        db, storage = await _stores(tmp_path)
        llm = ml.LoggingLLM(fake_openai_client(), db, storage, writer="process")
        await _calls(llm, 10)
        await llm.flush(10)
        os.kill(llm._writer.child_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while llm._writer.child_pid is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await _calls(llm, 5)
        return await llm.close()

    stats = asyncio.run(main())
    assert stats.written == 15  # 10 counted by the dead child, 5 by the new one
    shutil.rmtree(tmp_path / "bodies")


# -- what crosses the pipe: the child writes what the thread writer writes --------------


def _corpus() -> Any:
    sys.path.insert(0, str(ROOT / "tests" / "golden"))
    import corpus

    return corpus


@pytest.mark.parametrize("forked", [True, False])
def test_the_golden_corpus_crosses_the_wire_unchanged(forked: bool) -> None:
    """Every golden record, encoded as the sender encodes it and decoded as the child
    decodes it, gives the golden row and envelope byte for byte: responses and chunks
    that crossed as JSON, usage taken from the response, the provider's request id."""
    import orjson

    from majordomo_log.delivery import wire

    corpus = _corpus()
    cases = orjson.loads(corpus.CORPUS.read_bytes())
    records = [corpus.from_input(c["input"]) for c in cases]
    own_usage = 0
    for record in records:  # as the wrapper has it: the usage is the response's own
        usage = getattr(record.response, "usage", None)
        if usage is not None and usage == record.usage:
            record.usage = usage
            own_usage += 1
    assert own_usage >= 3
    assert sum(len(r.request_json or b"") >= 512 for r in records) >= 3  # cross apart
    encoder, decoder = wire.Encoder(forked), wire.Decoder()
    items = decoder.decode(b"".join(encoder.encode(records)))
    shipped = [i for i in items if isinstance(i.response, wire.Shipped)]
    streamed = [i for i in items if i.stream_chunks]
    assert len(shipped) >= 5 and streamed
    assert all(not isinstance(c, dict) for i in streamed for c in i.stream_chunks)
    assert corpus.outputs(items) == [c["expected"] for c in cases]
    # a second batch refers to the contexts the first defined
    again = decoder.decode(b"".join(encoder.encode([corpus.from_input(c["input"]) for c in cases])))
    assert corpus.outputs(again) == [c["expected"] for c in cases]


def test_a_response_read_in_the_child_gives_the_golden_output() -> None:
    """``response_unread``: the wrapper kept only the response; usage and served model
    are read in the child, off the response that crossed as JSON."""
    import orjson

    from majordomo_log.delivery import wire

    corpus = _corpus()
    cases = orjson.loads(corpus.CORPUS.read_bytes())
    records = [corpus.from_input(c["input"]) for c in cases]
    unread = 0
    for record in records:
        response = record.response
        if (
            record.stream_chunks is None
            and response is not None
            and record.usage == getattr(response, "usage", None)
            and record.served_model == getattr(response, "model", None)
        ):
            record.usage = record.served_model = None
            record.response_unread = True
            unread += 1
    assert unread >= 3
    items = wire.Decoder().decode(b"".join(wire.Encoder(True).encode(records)))
    assert corpus.outputs(items) == [c["expected"] for c in cases]


def test_the_request_id_crosses_as_its_parts() -> None:
    """A record whose id was never read crosses as its random bits and start time, and
    the child formats the id the parent would."""
    import orjson

    from majordomo_log.delivery import wire

    corpus = _corpus()
    case = orjson.loads(corpus.CORPUS.read_bytes())[0]
    record = corpus.from_input(case["input"])
    record.request_id_text = None
    record.random_bits = 0x2A5A5A5A5A5A5A5A5A5
    [got] = wire.Decoder().decode(b"".join(wire.Encoder(False).encode([record])))
    assert got.request_id_text is None
    assert got.request_id == record.request_id


def test_a_response_that_is_not_pydantic_crosses_as_it_is() -> None:
    import orjson

    from majordomo_log.delivery import wire

    corpus = _corpus()
    cases = orjson.loads(corpus.CORPUS.read_bytes())
    case = next(c for c in cases if not c["input"]["stream"])
    record = corpus.from_input(case["input"])
    record.response = record.response.model_dump(mode="json")
    [got] = wire.Decoder().decode(b"".join(wire.Encoder(False).encode([record])))
    assert got.response == record.response and not isinstance(got.response, wire.Shipped)


def test_parts_are_written_as_one_connection_message() -> None:
    """Many parts (more than one writev takes), large ones, empty ones: what the child's
    ``recv_bytes`` reads is their concatenation."""
    import multiprocessing
    import threading

    from majordomo_log.delivery import wire

    ours, theirs = multiprocessing.Pipe()
    parts: list[Any] = [b"B" + bytes(8), bytes(8)]
    parts += [bytes([i % 251]) * (i * 37 % 9000) for i in range(1500)]
    parts += [memoryview(b"x" * 3_000_000), b""]
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(theirs.recv_bytes()))
    reader.start()
    wire.write_parts(ours.fileno(), parts)
    reader.join(30)
    assert got == [b"".join(parts)]
    ours.close()
    theirs.close()


def _all_rows(path: Path) -> list[dict[str, Any]]:
    """Rows by call order, without what differs between two runs of the same calls."""
    varying = ("request_id", "started_at", "ended_at", "time_to_first_token_ms", "body_ref",
               "provider_request_id", "latency_ms", "created_at")  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM llm_requests")]
    rows.sort(key=lambda r: str(r["started_at"]))
    return [
        {k: v for k, v in r.items() if k not in varying}
        | {"$ref": r["body_ref"], "$has_provider_id": r["provider_request_id"] is not None}
        for r in rows
    ]


def _fixed(value: Any) -> Any:
    """A body without what differs between two runs (ids and times the fake provider
    and the record make up anew)."""
    if isinstance(value, dict):
        return {
            k: "*" if k in ("id", "created", "request_id") or k.endswith("_at") else _fixed(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_fixed(v) for v in value]
    return value


def _same_calls(tmp_path: Path, writer: str, method: str | None) -> list[Any]:
    """A mix of calls (plain, streamed, responses API, embeddings, a failure, a secret
    in the prompt) through one writer mode: each row and its body, in call order."""

    async def main() -> list[Any]:
        db, storage = await _stores(tmp_path)
        provider = FakeProvider()
        options: dict[str, Any] = {}
        if writer == "process":
            options["process"] = ml.ProcessOptions(start_method=method)  # type: ignore[arg-type]
        llm = ml.LoggingLLM(
            fake_openai_client(provider), db, storage, writer=writer,  # type: ignore[arg-type]
            spool=False, tags={"feature": "same"}, **options,
        )  # fmt: skip
        secret = [{"role": "user", "content": "key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123"}]
        for _ in range(3):
            await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            await asyncio.sleep(0.002)  # distinct started_at: the rows' order
            stream = await llm.chat.completions.create(
                model="gpt-4o-mini", messages=secret, stream=True
            )
            async for _ in stream:
                pass
            await asyncio.sleep(0.002)
            await llm.responses.create(model="gpt-4o", input="hello")
            await asyncio.sleep(0.002)
            await llm.embeddings.create(model="text-embedding-3-small", input="hello")
            await asyncio.sleep(0.002)
            provider.fail_next(400, message="bad request")
            with pytest.raises(Exception):  # noqa: B017 (the SDK's own error type)
                await llm.chat.completions.create(model="gpt-4o", messages=secret)
            await asyncio.sleep(0.002)
        stats = await llm.close()
        assert stats.written == 15 and stats.dropped == 0, stats
        rows = _all_rows(tmp_path / "log.db")
        out = []
        for row in rows:
            ref = row.pop("$ref")
            body = None if ref is None else await storage.get(ref)
            out.append((row, _fixed(body)))
        await storage.close()
        return out

    return asyncio.run(main())


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_process_writer_writes_the_rows_and_bodies_the_thread_writer_writes(
    tmp_path: Path, method: str
) -> None:
    threaded = _same_calls(tmp_path / "thread", "thread", None)
    processed = _same_calls(tmp_path / "process", "process", method)
    assert len(threaded) == 15
    assert [r for r, _ in processed] == [r for r, _ in threaded]
    assert [b for _, b in processed] == [b for _, b in threaded]
    assert any(b is not None and "[REDACTED]" in str(b) for _, b in threaded)
    assert any(r["$has_provider_id"] for r, _ in threaded)


def test_call_info_reads_a_response_detached_on_the_callers_path(tmp_path: Path) -> None:
    """Queued, the record holds its response as JSON (``wire.detach_response``):
    call_info() still prices it, and the provider's request id was read before."""

    async def main() -> None:
        from majordomo_log.delivery import wire

        db, storage = await _stores(tmp_path)
        llm = ml.LoggingLLM(
            fake_openai_client(FakeProvider()), db, storage, writer="process", spool=False
        )
        reply = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        record = ml.call_info(reply)
        assert record.input_tokens == reply.usage.prompt_tokens
        assert record.total_cost is not None and record.total_cost > 0
        assert record.provider_request_id == reply._request_id is not None
        queued = [item for item, _ in llm._writer._queue]
        assert all(isinstance(r.response, wire.Shipped) for r in queued)
        await llm.close()

    asyncio.run(main())
