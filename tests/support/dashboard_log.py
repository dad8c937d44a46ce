"""A log to look at: two weeks of calls with known rows, for the dashboard's tests and for
the screenshot in docs/dashboard.md (tools/dashboard_screenshot.py).

Rows are made the way the writer makes them (``record/rows.build_row`` over a
``CallRecord`` priced by the shipped price table, bodies by ``record/envelope``), with
chosen times, so they spread over days and hours: several models and providers (chat,
streams with a time to first token, Responses with reasoning, Anthropic with cache reads
and 5-minute and 1-hour cache writes, embeddings, a fine-tune with no price), features,
users (and calls without one), key aliases, errors, incomplete streams and attempts a
hard budget blocked; budgets are recorded as a wrapper records them. A few calls carry
hostile prompts (markup, a template expression) under a hostile feature name, and one
call has a long conversation.

The same seed gives the same rows, whatever the dialect: SQLite, PostgreSQL or MySQL
(``seeded_log`` makes the namespace and drops it afterwards, as ``tests/cli/log_rows.py``
does).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

import majordomo_log as ml
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.envelope import build_envelope
from majordomo_log.record.ids import format_uuid7
from majordomo_log.record.rows import build_row
from majordomo_log.schema import Row

T = TypeVar("T")
UTC = dt.timezone.utc
PRICES = ml.PriceTable.load()
USERS = ("u-ana", "u-bo", "u-chen", "u-dee", "u-eli", None)
# Prompts an attacker could send: shown as text on a call's page, never run or parsed.
HOSTILE_PROMPTS = (
    '<script>window.__pwned = "script";</script><img src=x onerror="window.__pwned=\'img\'">',
    "{{7*7}} {% print 'jinja' %} ${7*7} </pre></td></table><b>bold?</b>",
    "</script><script>window.__pwned = 'json'</script> \u2028 &amp; &lt;",
)
# A feature tag an attacker chose: a group's name on the overview (table, chart legend).
HOSTILE_FEATURE = "<img src=x onerror=\"window.__pwned='feature'\">"
# (feature, alias, provider, operation, model, stream, weight)
SCENARIOS = (
    ("chat", "openai-prod", "openai", "chat.completions", "gpt-4o", False, 30),
    ("autocomplete", "openai-batch", "openai", "chat.completions", "gpt-4o-mini", True, 30),
    ("research", "openai-prod", "openai", "responses", "o4-mini", False, 10),
    ("search", "openai-prod", "openai", "embeddings", "text-embedding-3-small", False, 12),
    ("support", "anthropic-prod", "anthropic", "messages", "claude-sonnet-4-5", True, 14),
    ("support", "anthropic-prod", "anthropic", "messages", "claude-haiku-4-5", False, 8),
    ("chat", "openai-prod", "openai", "chat.completions", "ft:gpt-4o:acme:demo", False, 1),
)
BUDGETS = (
    ml.Budget("40.00", per="total", name="all time"),
    ml.Budget("2.00", per="total", scope="feature", hard=True, name="per feature"),
    ml.Budget("0.50", per="day", scope="user_id", hard=True, name="daily per user"),
    ml.Budget(limit_tokens=5_000_000, per="month", name="monthly tokens"),
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a thread of its own: callable with or without a
    running event loop (Playwright's sync API keeps one on the test's thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class SeededLog:
    db_url: str
    storage_url: str
    rows: list[Row]
    now: dt.datetime  # the rows are before it, within DAYS
    hostile_ids: list[str] = field(default_factory=list)  # calls whose prompt is hostile
    long_id: str = ""  # a call with a long conversation


def _usage(model: str, rng: random.Random) -> ml.Usage:
    scale = rng.uniform(0.5, 1.6)
    if model == "text-embedding-3-small":
        return ml.Usage.inclusive(int(60 * scale), 0)
    if model == "o4-mini":
        return ml.Usage.inclusive(
            int(2500 * scale), int(1400 * scale), reasoning_tokens=int(1100 * scale)
        )
    if model.startswith("claude"):
        return ml.Usage.additive(
            int(150 * scale),
            int(320 * scale),
            cache_read_tokens=int(4000 * scale),
            cache_write_5m_tokens=int(600 * scale) if rng.random() < 0.5 else 0,
            cache_write_1h_tokens=int(900 * scale) if rng.random() < 0.2 else 0,
        )
    if model == "gpt-4o-mini":
        return ml.Usage.inclusive(int(300 * scale), int(40 * scale))
    return ml.Usage.inclusive(
        int(1200 * scale), int(180 * scale), cached_tokens=1024 if rng.random() < 0.6 else 0
    )


def _request(operation: str, model: str, prompt: str, stream: bool) -> dict[str, Any]:
    if operation == "embeddings":
        return {"model": model, "input": prompt}
    if operation == "responses":
        return {"model": model, "instructions": "Be brief.", "input": prompt}
    if operation == "messages":
        return {
            "model": model,
            "max_tokens": 400,
            "system": "You are a support agent.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
    request: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You help."},
            {"role": "user", "content": prompt},
        ],
    }
    if stream:
        request["stream"] = True
    return request


def _response(operation: str, model: str, reply: str) -> dict[str, Any]:
    if operation == "embeddings":
        return {"object": "list", "model": model, "data": [{"index": 0, "embedding": [0.25, 0.5]}]}
    if operation == "responses":
        return {
            "object": "response",
            "model": model,
            "output": [
                {"type": "reasoning", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": reply}],
                },
            ],
        }
    if operation == "messages":
        return {
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply}],
        }
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        ],
    }


def _record(
    started: dt.datetime,
    scenario: tuple[str, str, str, str, str, bool, int],
    user: str | None,
    status: str,
    prompt: str,
    rng: random.Random,
) -> CallRecord:
    feature, alias, provider, operation, model, stream, _ = scenario
    tags = {"feature": feature, "workflow": "seeded", "environment": "test"}
    if user is not None:
        tags["user_id"] = user
    ctx = CallContext(prices=PRICES, api_key_alias=alias, tags={}, secrets=())
    ms = int(started.timestamp() * 1000)
    rec = CallRecord(
        format_uuid7(ms, rng.getrandbits(74)),
        ms / 1000,
        0.0,
        provider,
        operation,
        model,
        stream,
        tags,
        None,
        ctx,
    )
    latency = rng.lognormvariate(6.3 if operation != "embeddings" else 4.5, 0.6)  # ~550 ms
    rec.t_end = round(latency, 3) / 1000
    if stream:
        rec.t_first = round(latency * rng.uniform(0.1, 0.4), 3) / 1000
    rec.request_json = orjson.dumps(_request(operation, model, prompt, stream))
    if status == "blocked":
        rec.block("budget 'daily per user' is spent")
        rec.t_end, rec.t_first = 0.0002, None
        return rec
    if status == "error":
        rec.status, rec.error_type = "error", "RateLimitError"
        rec.error_message = "Error code: 429 - Rate limit reached."
        rec.t_first = None
        return rec
    rec.status = status
    rec.usage = _usage(model, rng)
    rec.served_model = model
    rec.response = _response(operation, model, f"Reply to: {prompt[:200]}")
    return rec


def make_calls(
    now: dt.datetime, *, calls: int = 600, days: int = 14, seed: int = 17
) -> tuple[list[CallRecord], list[str], str]:
    """The records (oldest first), the ids of the hostile ones and of the long one."""
    rng = random.Random(seed)
    start = now - dt.timedelta(days=days)
    records, hostile = [], []
    for i in range(calls):
        # Busier in recent days and in the working hours.
        day = min(days - 1, int(days * rng.random() ** 0.7))
        hour = min(23, max(0, int(rng.gauss(14, 4))))
        started = start + dt.timedelta(days=day, hours=hour, seconds=rng.uniform(0, 3599))
        if started >= now:
            started = now - dt.timedelta(seconds=rng.uniform(60, 3600))
        scenario = rng.choices(SCENARIOS, weights=[s[-1] for s in SCENARIOS])[0]
        roll = rng.random()
        status = "error" if roll < 0.03 else "blocked" if roll < 0.045 else "ok"
        if status == "ok" and scenario[5] and rng.random() < 0.05:
            status = "incomplete"
        prompt = f"Question {i}: summarize invoice {rng.randrange(10_000)}."
        if i % 150 == 7:
            prompt = HOSTILE_PROMPTS[(i // 150) % len(HOSTILE_PROMPTS)]
            status = "ok"
        if prompt in HOSTILE_PROMPTS:
            scenario = (HOSTILE_FEATURE, *scenario[1:])
        rec = _record(started, scenario, rng.choice(USERS), status, prompt, rng)
        if prompt in HOSTILE_PROMPTS:
            hostile.append(rec.request_id)
        records.append(rec)
    long = records[-1]  # a conversation of 40 turns
    turns = [
        {"role": "user" if t % 2 == 0 else "assistant", "content": f"turn {t}"} for t in range(40)
    ]
    long.request_json = orjson.dumps({"model": long.model, "messages": turns})
    records.sort(key=lambda r: r.started_at)
    return records, hostile, long.request_id


async def write_log(db_url: str, body_dir: Path, records: list[CallRecord]) -> list[Row]:
    """Write the records' bodies to a folder and their rows (with the bodies' references)
    to the log at ``db_url`` (migrated first), and record ``BUDGETS``."""
    storage = await ml.FileStorageAdapter.create(body_dir)
    db = await ml.open_db(db_url)
    try:
        envelopes = [build_envelope(rec) for rec in records]
        refs = await storage.put_many(
            [
                (rec.request_id, dt.datetime.fromtimestamp(rec.started_at, UTC), env)
                for rec, env in zip(records, envelopes, strict=True)
            ]
        )
        rows = [build_row(rec, ref) for rec, ref in zip(records, refs, strict=True)]
        await db.write_batch(rows, [])
        await db.save_budgets([b.definition() for b in BUDGETS])  # type: ignore[attr-defined]
    finally:
        await db.close()
        await storage.close()
    return rows


def log_url(dialect: str, tmp_path: Path, name: str) -> str:
    from servers import mysql_admin, require

    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    if dialect == "postgresql":
        return f"{require(dialect)}?schema={name}"
    server = require(dialect)
    run(mysql_admin(server, f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    return urlsplit(server)._replace(path=f"/{name}").geturl()


async def drop(dialect: str, name: str) -> None:
    """Drop the namespace, after the secret scan has read it."""
    from secret_scan import scan_mysql_database, scan_postgres_schema
    from servers import mysql_admin, require

    url = require(dialect)
    if dialect == "mysql":
        await scan_mysql_database(url, name)
        await mysql_admin(url, f"DROP DATABASE IF EXISTS {name}")
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await scan_postgres_schema(conn, name)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@contextmanager
def seeded_log(
    dialect: str, tmp_path: Path, *, now: dt.datetime | None = None, calls: int = 600
) -> Iterator[SeededLog]:
    """A log of ``calls`` seeded calls in a namespace of its own, with its bodies in a
    folder; dropped afterwards. Call from a plain (not async) test or fixture."""
    now = now or dt.datetime.now(UTC)
    name = f"mdl_ui_{uuid.uuid4().hex[:10]}"
    db_url = log_url(dialect, tmp_path, name)
    body_dir = tmp_path / f"{name}-bodies"
    records, hostile, long_id = make_calls(now, calls=calls)
    try:
        rows = run(write_log(db_url, body_dir, records))
        yield SeededLog(db_url, f"file://{body_dir}", rows, now, hostile, long_id)
    finally:
        if dialect != "sqlite":
            run(drop(dialect, name))
