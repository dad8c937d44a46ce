"""``majordomo-log demo``: a few hundred calls through the real OpenAI and Anthropic
SDK clients, served in-process by ``majordomo_log.testing`` (no network, no key),
logged to SQLite and local files, then the spend report and commands to try.

Everything it writes is in its output folder: the log, the bodies, and the spool the
writer spills to when its queue fills (``--calls 20000``), which is replayed before the
demo ends and removed once empty; nothing goes under the home folder."""

from __future__ import annotations

import asyncio
import random
import shlex
import shutil
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..capture.tags import tags
from ..delivery.spool import Spool
from ..delivery.stats import WriterStats
from ..logging_llm import LoggingLLM
from ..stores.bodies.files import FileStorageAdapter
from ..stores.sql.sqlite import SqliteAdapter
from . import reports
from .render import render
from .reports import as_decimal

USERS = ("u-ana", "u-bo", "u-chen", "u-dee", "u-eli")


def _command_name() -> str:
    """How to run the CLI from here: `make demo` runs it from .venv, not from PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "majordomo-log" and shutil.which("majordomo-log") != str(argv0.resolve()):
        try:
            return str(argv0.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(argv0)
    return "majordomo-log"


# Calls the demo has in flight at once.
IN_FLIGHT = 64


async def run_demo(
    out: Path,
    *,
    calls: int = 300,
    progress: Callable[[int, int | None], None] | None = None,
    max_queue_records: int | None = None,
) -> int:
    """Log ``calls`` calls to ``out``, then print the report; ``progress(done, calls)``
    follows each call as it returns. ``max_queue_records``: the writer's queue (its
    default unless given), past which records go by way of the spool in ``out``."""
    try:
        import anthropic  # noqa: F401  (imported by the fake clients only when built)
        import openai  # noqa: F401

        from ..testing import FakeProvider, fake_anthropic_client, fake_openai_client
    except ImportError as exc:
        raise ImportError(
            'the demo drives the openai and anthropic SDKs: pip install "majordomo-log[demo]"'
        ) from exc

    db_path, bodies, spool_dir = out / "llm_logs.db", out / "request_logs", out / "spool"
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)
    for folder in (bodies, spool_dir):  # an earlier demo's records are for its own log
        shutil.rmtree(folder, ignore_errors=True)
    db = await SqliteAdapter.create(db_path)
    storage = await FileStorageAdapter.create(bodies)

    # Each scenario gets its own fake so its usage numbers stay put under concurrency.
    chat = FakeProvider(
        openai_usage={"prompt_tokens": 1200, "cached_tokens": 1024, "completion_tokens": 180}
    )
    fast = FakeProvider(
        openai_usage={"prompt_tokens": 300, "completion_tokens": 40}, stream_chunks=6
    )
    research = FakeProvider(
        responses_usage={"input_tokens": 2500, "output_tokens": 1400, "reasoning_tokens": 1100}
    )
    search = FakeProvider(embedding_tokens=64)
    support = FakeProvider(
        anthropic_usage={
            "input_tokens": 150,
            "cache_read_input_tokens": 4000,
            "cache_creation_5m": 600,
            "output_tokens": 320,
        }
    )

    def wrap(client: Any, alias: str) -> LoggingLLM[Any]:
        return LoggingLLM(
            client,
            db,
            storage,
            api_key_alias=alias,
            tags={"environment": "demo"},
            spool=spool_dir,  # not the user's cache folder: the demo keeps to its folder
            max_queue_records=max_queue_records,
        )

    openai_key = "sk-demo-openai-not-a-real-key"
    openai_prod = wrap(fake_openai_client(chat, api_key=openai_key), "openai-prod")
    openai_fast = wrap(fake_openai_client(fast), "openai-batch")
    openai_research = wrap(fake_openai_client(research, api_key=openai_key), "openai-prod")
    openai_search = wrap(fake_openai_client(search, api_key=openai_key), "openai-prod")
    claude = wrap(
        fake_anthropic_client(support, api_key="sk-ant-demo-not-a-real-key"), "anthropic-prod"
    )
    messages = [{"role": "user", "content": "Summarize my last invoice."}]

    async def chat_call() -> Any:
        return await openai_prod.chat.completions.create(model="gpt-4o", messages=messages)

    async def autocomplete() -> Any:
        stream = await openai_fast.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True
        )
        return [chunk async for chunk in stream]

    async def research_call() -> Any:
        return await openai_research.responses.create(
            model="o4-mini", input="Compare plans A and B."
        )

    async def embed() -> Any:
        return await openai_search.embeddings.create(
            model="text-embedding-3-small", input="refund policy"
        )

    async def support_call() -> Any:
        async with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=400, messages=messages
        ) as stream:
            return await stream.get_final_message()

    async def fine_tune() -> Any:  # a model with no price: logged with cost NULL, never $0
        return await openai_prod.chat.completions.create(
            model="ft:gpt-4o:acme:demo", messages=messages
        )

    scenarios: list[tuple[str, Callable[[], Awaitable[Any]], int]] = [
        ("chat", chat_call, 30),
        ("autocomplete", autocomplete, 30),
        ("research", research_call, 10),
        ("search", embed, 15),
        ("support", support_call, 14),
        ("chat", fine_tune, 1),
    ]
    rng = random.Random(7)
    plan = rng.choices(scenarios, weights=[s[2] for s in scenarios], k=calls)
    chat.fail_next(status=429, times=2)  # two rate-limited calls show up as status='error'

    # As many calls in flight as a busy service has, not all of them: with 20,000 started
    # at once each would wait its turn for tens of seconds, and log that as its latency.
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def one(feature: str, fn: Callable[[], Awaitable[Any]], user: str) -> None:
        async with in_flight:
            with tags(feature=feature, user_id=user, workflow="demo"):
                try:
                    await fn()
                except Exception as exc:  # the SDK's own error, re-raised unchanged
                    failures.append(type(exc).__name__)
        done[0] += 1
        if progress is not None:
            progress(done[0], calls)

    failures: list[str] = []
    done = [0]  # calls returned so far (a list: ``one`` adds to it)
    if progress is not None:
        progress(0, calls)
    await asyncio.gather(*(one(f, fn, rng.choice(USERS)) for f, fn, _ in plan))
    for llm in (openai_fast, openai_research, openai_search, claude):
        await llm.close(timeout=None)
    # The last one to close stops the shared writer (replaying the spool) and closes the
    # stores; its counts are the writer's.
    stats = await openai_prod.close(timeout=None)
    left = _spool_left(spool_dir)

    db = await SqliteAdapter.create(db_path)
    try:
        by_model = await reports.spend_report(db, "model")
        by_feature = await reports.spend_report(db, "feature")
        _, total = await reports.total_spend(db)
    finally:
        await db.close()
    with sqlite3.connect(db_path) as conn:
        (sql_total,) = conn.execute("SELECT SUM(total_cost) FROM llm_requests").fetchone()
        written = rows_in(conn)
        shown = conn.execute(  # a call to `show`: the most expensive one with a body
            "SELECT request_id FROM llm_requests WHERE body_ref IS NOT NULL"
            " ORDER BY total_cost DESC, request_id LIMIT 1"
        ).fetchone()
    conn.close()
    columns = (
        "model",
        "calls",
        "errors",
        "input_tokens",
        "cache_read_tokens",
        "output_tokens",
        "reasoning_tokens",
        "total_cost",
        "unpriced",
    )
    print(written_line(written, stats, left, spool_dir, failures) + "\n")
    print("Spend by model")
    print(render(by_model, "table", columns))
    print("\nSpend by feature")
    print(render(by_feature, "table", ("feature", *columns[1:])))
    print(
        f"\nTotal spend: ${total:.6f}   (SELECT SUM(total_cost) FROM llm_requests: "
        f"{as_decimal(sql_total):.6f})"
    )
    print(
        f"\nDatabase: {db_path.resolve()}\n"
        f"Bodies:   {bodies.resolve()}/YYYY/MM/DD/segments/<first request_id>.seg.gz"
        " (zcat prints them)"
    )
    print("\nTry:\n" + "\n".join(f"  {line}" for line in try_lines(db_path, shown)))
    return 0


def try_lines(db_path: Path, request_id: tuple[str] | None) -> list[str]:
    """The commands the demo suggests, each runnable as printed from where it ran."""
    cli, db = shlex.quote(_command_name()), shlex.quote(str(db_path))
    lines = [f"{cli} report --db {db} --by user_id", f"{cli} tail --db {db} -n 5"]
    if request_id is not None:
        lines.append(f"{cli} show {request_id[0]} --db {db}")
    lines += [
        f"{cli} prices --db {db}",
        f'sqlite3 {db} "SELECT feature, ROUND(SUM(total_cost), 10) FROM llm_requests'
        ' GROUP BY feature"',
    ]
    return lines


def rows_in(conn: sqlite3.Connection) -> int:
    (count,) = conn.execute("SELECT COUNT(*) FROM llm_requests").fetchone()
    return int(count)


def _spool_left(spool_dir: Path) -> int:
    """Records still in the demo's spool; the spool is removed when it holds none."""
    if not spool_dir.is_dir():
        return 0
    status = Spool(spool_dir).status()
    left = status.records + status.rejected_records
    if not left and not any(p.is_file() for p in spool_dir.rglob("*")):
        shutil.rmtree(spool_dir, ignore_errors=True)
    return left


def written_line(
    written: int, stats: WriterStats, left: int, spool_dir: Path, failures: list[str]
) -> str:
    """What reached the database, and how: the count is the database's own."""
    how = []
    if stats.replayed:
        how.append(f"{stats.replayed:,} of them by way of the spool after the queue filled")
    if stats.dropped:
        how.append(f"{stats.dropped:,} dropped")
    if left:
        how.append(f"{left:,} still in the spool at {spool_dir}")
    raised = len(failures)
    kinds = ", ".join(sorted(set(failures)))
    return (
        f"{written:,} calls written to the database"
        + (f" ({'; '.join(how)})" if how else "")
        + (f"; {raised} raised by the SDK ({kinds}) and logged as errors" if raised else "")
        + "."
    )
