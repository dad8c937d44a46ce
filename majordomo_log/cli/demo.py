"""``majordomo-log demo``: a few hundred calls through the real OpenAI and Anthropic
SDK clients, served in-process by ``majordomo_log.testing`` (no network, no key),
logged to SQLite and local files, then the spend report."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..capture.tags import tags
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


async def run_demo(
    out: Path, *, calls: int = 300, progress: Callable[[int, int | None], None] | None = None
) -> int:
    """Log ``calls`` calls to ``out``, then print the report; ``progress(done, calls)``
    follows each call as it returns."""
    try:
        import anthropic  # noqa: F401  (imported by the fake clients only when built)
        import openai  # noqa: F401

        from ..testing import FakeProvider, fake_anthropic_client, fake_openai_client
    except ImportError as exc:
        raise ImportError(
            'the demo drives the openai and anthropic SDKs: pip install "majordomo-log[demo]"'
        ) from exc

    db_path, bodies = out / "llm_logs.db", out / "request_logs"
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(bodies, ignore_errors=True)
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
        return LoggingLLM(client, db, storage, api_key_alias=alias, tags={"environment": "demo"})

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

    async def one(feature: str, fn: Callable[[], Awaitable[Any]], user: str) -> None:
        with tags(feature=feature, user_id=user, workflow="demo"):
            try:
                await fn()
            except Exception as exc:  # the SDK's own error, re-raised unchanged by the wrapper
                failures.append(type(exc).__name__)
        done[0] += 1
        if progress is not None:
            progress(done[0], calls)

    failures: list[str] = []
    done = [0]  # calls returned so far (a list: ``one`` adds to it)
    if progress is not None:
        progress(0, calls)
    await asyncio.gather(*(one(f, fn, rng.choice(USERS)) for f, fn, _ in plan))
    stats = await openai_prod.flush()
    for llm in (openai_fast, openai_research, openai_search, claude, openai_prod):
        await llm.close()  # the last one to close also closes the shared stores

    db = await SqliteAdapter.create(db_path)
    try:
        by_model = await reports.spend_report(db, "model")
        by_feature = await reports.spend_report(db, "feature")
        logged, total = await reports.total_spend(db)
    finally:
        await db.close()
    with sqlite3.connect(db_path) as conn:
        (sql_total,) = conn.execute("SELECT SUM(total_cost) FROM llm_requests").fetchone()
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
    print(
        f"Logged {logged} calls ({stats.written} written, {stats.dropped} dropped, "
        f"{len(failures)} raised by the SDK: {', '.join(sorted(set(failures))) or 'none'}).\n"
    )
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
    cli = _command_name()
    print(
        f"\nTry:\n  {cli} report --db {db_path} --by user_id\n"
        f"  {cli} tail --db {db_path} -n 5\n"
        f"  {cli} prices --db {db_path}\n"
        f'  sqlite3 {db_path} "SELECT feature, ROUND(SUM(total_cost), 10) FROM llm_requests'
        ' GROUP BY feature"'
    )
    return 0
