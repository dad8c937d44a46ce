"""Issue 14's raw-driver yardstick: records/s end to end against the bare driver writing
the same rows and bodies, per backend.

    .venv-bench/bin/python bench/raw_ceiling.py [rounds]

In each round, per backend (SQLite; PostgreSQL and MariaDB when their server answers):

1. ours, end to end: ``N`` calls of a LoggingLLM-wrapped fake (a fresh SDK response per
   call, one yield per call as a network call would), awaited one after the other from
   one task, then ``flush()``; bodies in a FileStorageAdapter (segment mode, the default).
   records/s = N / time from the first call until the flush returned; ``COUNT(*)`` must
   be N. The queue budgets are large enough that nothing spills (with the defaults a
   third of the records went through the spool, which is another measurement).
2. raw: the rows our pipeline wrote, read back from its table, and the bodies it
   stored, read back from its segments (uncompressed), are written again by the bare
   driver into a fresh table made by the adapter's own migrations (same indexes), in
   1000-row batches: SQLite ``sqlite3`` executemany + COMMIT per batch (WAL,
   synchronous=NORMAL, as the adapter sets it), PostgreSQL asyncpg
   ``copy_records_to_table``, MariaDB pymysql executemany (one multi-row INSERT) +
   COMMIT per batch; after each row batch its 1000 bodies become one multi-member gzip
   segment file (a gzip member per body, isal level 1 where python-isal is installed,
   else zlib level 1, as layout.py makes them; written to a temporary name and renamed,
   as files.py does). rows/s = N / time for rows + bodies, all sequential in this thread.
3. the ratio ours / raw, taken within the round (the machine is shared: rounds differ
   more than the two halves of one round), median over rounds; issue 14's target is at
   least 35%.

Connections are opened, and the rows and bodies read back, before the raw timer starts.
Where the time goes, per backend: wall and CPU µs per record of each side (CPU of this
process, all its threads, by getrusage: a server's own work is not in it) and the fake
client alone per call (the application's part of ours). bench/stages.py splits ours.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sqlite3
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MESSAGES,
    MYSQL_URL,
    POSTGRES_URL,
    FakeOpenAI,
    count_rows,
    metadata_store,
    result,
    server_answers,
    skipped,
)

import majordomo_log as ml
from majordomo_log.schema import COLUMNS

try:  # as layout.py: isal's deflate where python-isal is installed
    from isal import isal_zlib as deflate_lib

    DEFLATE = "isal"
except ImportError:
    deflate_lib = zlib
    DEFLATE = "zlib"

SCENARIO = "raw_ceiling"
N, N_QUICK = 10_000, 4_000
BATCH = 1000
TARGET = 0.35
# Budgets large enough that no record spills: with the defaults (64 MB) about a third of
# the 10k records went to the spool and came back from it, which measures the spool.
QUEUE: dict[str, Any] = {"max_queue_records": 2 * N, "max_queue_bytes": 1 << 31}
DIALECTS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
COLUMN_LIST = ", ".join(COLUMNS)

Rows = list[tuple[Any, ...]]
PER_RECORD = (  # (key, metric, note): where the time per record goes
    ("ours_us", "ours, wall µs per record", "1e6 / records/s"),
    ("ours_cpu_us", "ours, CPU µs per record", "this process, all threads (getrusage)"),
    ("client_us", "fake client alone, µs per call", "the application's part of ours"),
    ("raw_us", "raw, wall µs per row", "1e6 / rows/s"),
    ("raw_cpu_us", "raw, CPU µs per row", "this process only (not the server's)"),
)


# -- ours, end to end -------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU of this process (all its threads), to the µs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bare_client(n: int) -> float:
    """µs per call of the fake client alone, as ``ours`` calls it: the application's part."""
    create = FakeOpenAI(yields=True, fresh=True).chat.completions.create
    t0 = time.perf_counter()
    for _ in range(n):
        await create(model="gpt-4o", messages=MESSAGES)
    return (time.perf_counter() - t0) / n * 1e6


async def ours(db: ml.MetadataStore, tmp: Path, n: int) -> tuple[float, float, Path, int]:
    """(records/s, CPU µs per record, body folder, records spilled) of n calls from one
    task, then flush()."""
    storage = await ml.FileStorageAdapter.create(tmp / "bodies")
    llm = ml.LoggingLLM(
        FakeOpenAI(yields=True, fresh=True),
        db,
        storage,
        close_stores=False,
        spool=tmp / "spool",
        **QUEUE,
    )
    create = llm.chat.completions.create
    try:
        await asyncio.sleep(0.05)  # let connection set-up settle
        c0, t0 = cpu_seconds(), time.perf_counter()
        for _ in range(n):
            await create(model="gpt-4o", messages=MESSAGES)
        await llm.flush()
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    finally:
        final = await llm.close()  # its stats count from the start
        await storage.close()
    rows, with_body = await count_rows(db)
    if rows != n or with_body != n:
        raise RuntimeError(f"{n} calls, {rows} rows, {with_body} with a body")
    return n / elapsed, cpu / n * 1e6, storage.root, final.spilled


# -- the same rows and bodies, read back ------------------------------------------------


def read_bodies(root: Path, refs: list[str]) -> list[bytes]:
    """Each reference's member, uncompressed: the envelope and its newline, as layout.py
    compresses it."""
    files: dict[str, bytes] = {}
    out = []
    for ref in refs:
        key, _, span = ref.partition("#")
        offset, length = (int(x) for x in span.split("+"))
        if key not in files:
            files[key] = (root / key).read_bytes()
        out.append(zlib.decompress(files[key][offset : offset + length], 31))
    return out


def mysql_args(database: str) -> dict[str, Any]:
    parts = urlsplit(MYSQL_URL)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": database,
        "charset": "utf8mb4",
        "autocommit": False,
    }


async def read_rows(dialect: str, db: ml.MetadataStore) -> Rows:
    """The rows our pipeline wrote, as the driver returns them (SQLite: the adapter's
    encoded text; PostgreSQL and MariaDB: the driver's Python values)."""
    select = f"SELECT {COLUMN_LIST} FROM llm_requests"
    if dialect == "sqlite":
        with sqlite3.connect(db.path) as conn:  # type: ignore[attr-defined]
            return [tuple(r) for r in conn.execute(select)]
    if dialect == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            schema = db.schema  # type: ignore[attr-defined]
            records = await conn.fetch(select.replace("llm_requests", f'"{schema}".llm_requests'))
            return [tuple(r) for r in records]
        finally:
            await conn.close()
    import pymysql

    conn = pymysql.connect(**mysql_args(database_of(db)))
    try:
        with conn.cursor() as cur:
            cur.execute(select)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def database_of(db: ml.MetadataStore) -> str:
    return urlsplit(db.url).path.lstrip("/")


# -- raw: the bare driver and the bare gzip segment -------------------------------------


def write_segment(folder: Path, name: str, bodies: list[bytes]) -> None:
    """One gzip member per body, joined, written to a temporary name and renamed."""
    members = []
    for payload in bodies:
        deflate = deflate_lib.compressobj(1, deflate_lib.DEFLATED, 31)
        members.append(deflate.compress(payload) + deflate.flush())
    path = folder / f"{name}.seg.gz"
    tmp = folder / f".{name}.seg.gz.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as handle:
        handle.write(b"".join(members))
    os.replace(tmp, path)


async def raw(
    dialect: str, raw_db: ml.MetadataStore, rows: Rows, bodies: list[bytes], folder: Path
) -> tuple[float, float]:
    """(rows/s, CPU µs of this process per row) of the bare driver (rows + bodies) into
    raw_db's fresh table."""
    folder.mkdir(parents=True)
    marks = ", ".join(["?" if dialect == "sqlite" else "%s"] * len(COLUMNS))
    insert = f"INSERT INTO llm_requests ({COLUMN_LIST}) VALUES ({marks})"
    batches = [
        (rows[i : i + BATCH], bodies[i : i + BATCH], f"{i:08d}") for i in range(0, len(rows), BATCH)
    ]
    if dialect == "sqlite":
        conn = sqlite3.connect(raw_db.path, isolation_level=None)  # type: ignore[attr-defined]
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            c0, t0 = cpu_seconds(), time.perf_counter()
            for batch_rows, batch_bodies, name in batches:
                conn.execute("BEGIN")
                conn.executemany(insert, batch_rows)
                conn.execute("COMMIT")
                write_segment(folder, name, batch_bodies)
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            written = conn.execute("SELECT COUNT(*) FROM llm_requests").fetchone()[0]
        finally:
            conn.close()
    elif dialect == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL)
        schema = raw_db.schema  # type: ignore[attr-defined]
        try:
            c0, t0 = cpu_seconds(), time.perf_counter()
            for batch_rows, batch_bodies, name in batches:
                await conn.copy_records_to_table(
                    "llm_requests", records=batch_rows, columns=COLUMNS, schema_name=schema
                )
                write_segment(folder, name, batch_bodies)
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            written = await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}".llm_requests')
        finally:
            await conn.close()
    else:
        import pymysql

        conn = pymysql.connect(**mysql_args(database_of(raw_db)))
        try:
            with conn.cursor() as cur:
                c0, t0 = cpu_seconds(), time.perf_counter()
                for batch_rows, batch_bodies, name in batches:
                    cur.executemany(insert, batch_rows)
                    conn.commit()
                    write_segment(folder, name, batch_bodies)
                elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                cur.execute("SELECT COUNT(*) FROM llm_requests")
                written = cur.fetchone()[0]
        finally:
            conn.close()
    if written != len(rows):
        raise RuntimeError(f"raw {dialect}: {len(rows)} rows written, {written} counted")
    return len(rows) / elapsed, cpu / len(rows) * 1e6


# -- one round --------------------------------------------------------------------------


async def one_round(dialect: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as name:
        tmp = Path(name)
        async with metadata_store(dialect, tmp) as db, metadata_store(dialect, tmp) as raw_db:
            client_us = await bare_client(min(n, 2000))
            rate, cpu_us, root, spilled = await ours(db, tmp, n)
            rows = await read_rows(dialect, db)
            ref = COLUMNS.index("body_ref")
            bodies = read_bodies(root, [r[ref] for r in rows])
            await raw_db.close()  # its table stays; the bare driver writes it
            raw_rate, raw_cpu_us = await raw(dialect, raw_db, rows, bodies, tmp / "raw")
    return {
        "ours": rate,
        "raw": raw_rate,
        "ratio": rate / raw_rate,
        "ours_us": 1e6 / rate,
        "ours_cpu_us": cpu_us,
        "raw_us": 1e6 / raw_rate,
        "raw_cpu_us": raw_cpu_us,
        "client_us": client_us,
        "spilled": spilled,
    }


async def run(rounds: int = 5, quick: bool = False) -> list[dict[str, Any]]:
    n = N_QUICK if quick else N
    out: list[dict[str, Any]] = []
    for dialect, label in DIALECTS.items():
        if not server_answers(dialect):
            out.append(skipped(SCENARIO, f"{label}", "server does not answer"))
            continue
        runs = [await one_round(dialect, n) for _ in range(rounds)]
        spilled = sum(r["spilled"] for r in runs)
        out += [
            result(
                SCENARIO,
                f"{label} + files, ours end to end",
                [r["ours"] for r in runs],
                "records/s",
                note=f"{n} calls from one task, then flush(); {spilled:.0f} spilled",
            ),
            result(
                SCENARIO,
                f"{label} + files, raw driver",
                [r["raw"] for r in runs],
                "rows/s",
                note=f"the same rows and bodies, {BATCH} a batch; gzip by {DEFLATE} level 1",
            ),
            result(
                SCENARIO,
                f"{label} + files, ours / raw",
                [r["ratio"] for r in runs],
                "ratio",
                at_least=TARGET,
                note="within each round, median over rounds",
            ),
            *(
                result(
                    SCENARIO, f"{label} + files, {what}", [r[key] for r in runs], "µs", note=note
                )
                for key, what, note in PER_RECORD
            ),
        ]
    return out


if __name__ == "__main__":
    rows = asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
    for row in rows:
        value = "skipped" if row["value"] is None else f"{row['value']:>12,.3f}"
        print(
            f"{row['metric']:<44} {value} {row['unit']}  runs={row['runs']}  {row.get('note', '')}"
        )
