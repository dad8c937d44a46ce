"""Repricing throughput (issue 15): rows per second of ``majordomo_log.reprice`` on a log of
N rows, per backend, and that it is linear (the second half of a log costs what the first
does: keyset pages, no OFFSET).

Per backend: N rows of a model the built-in table has no price for (``unknown_model``,
like the demo's fine-tuned calls), written with ``write_batch`` in 1000-row batches;
then three timed runs of ``reprice`` with a price file that has the model:

- ``first``: every row changes (priced, written back in one UPDATE batch per page);
- ``again``: nothing changes (read and priced only): the idempotent second run;
- ``half``: the newest half of the window (``since=``), nothing changes.

Run: ``.venv/bin/python bench/reprice.py [--rows 100000] [--backends sqlite,postgresql,mysql]``
(servers from ``MAJORDOMO_TEST_POSTGRES_URL`` / ``MAJORDOMO_TEST_MYSQL_URL``, as the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from _common import metadata_store

import majordomo_log as ml
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import default_prices
from majordomo_log.record.rows import build_row
from majordomo_log.record.usage import Usage
from majordomo_log.schema import Row

START = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
PRICE_FILE = """models:
  - id: acme-ft
    match: '^ft:gpt-4o:acme:.*$'
    prices:
      - {effective: "2026-01-01", input: "3.75", output: "15.00", cache_read: "1.875"}
"""


def make_rows(count: int) -> list[Row]:
    ctx = CallContext(prices=default_prices(), api_key_alias="k", tags={}, secrets=())
    rows = []
    for i in range(count):
        started = START + dt.timedelta(seconds=i * 0.25)
        rec = CallRecord(
            None, started.timestamp(), 1.0, "openai", "chat.completions", "ft:gpt-4o:acme:demo",
            False, {"feature": "chat"}, None, ctx,
        )  # fmt: skip
        rec.t_end = 1.4
        rec.served_model = "ft:gpt-4o:acme:demo"
        rec.usage = Usage.inclusive(1200 + i % 500, 80, cached_tokens=1024)
        rows.append(build_row(rec, None))
    return rows


async def one_backend(dialect: str, rows: list[Row], prices: Path, tmp: Path) -> dict[str, float]:
    async with metadata_store(dialect, tmp) as db:
        for start in range(0, len(rows), 1000):
            await db.write_batch(rows[start : start + 1000], [])
        out: dict[str, float] = {}
        middle = rows[len(rows) // 2].started_at
        for name, kwargs in (("first", {}), ("again", {}), ("half", {"since": middle})):
            began = time.perf_counter()
            result = await ml.reprice(db, prices=[prices], **kwargs)  # type: ignore[arg-type]
            seconds = time.perf_counter() - began
            want_changed = len(rows) if name == "first" else 0
            assert result.changed == want_changed, (name, result)
            assert result.examined == (len(rows) if name != "half" else len(rows) - len(rows) // 2)
            out[name] = result.examined / seconds
            print(
                f"{dialect:10} {name:5}  {result.examined:>7,} rows  {seconds:6.2f} s  "
                f"{result.examined / seconds:>8,.0f} rows/s",
                flush=True,
            )
        return out


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the log")
    parser.add_argument(
        "--backends", default="sqlite,postgresql,mysql", help="comma-separated dialects"
    )
    args = parser.parse_args(argv)
    rows = make_rows(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        prices = Path(tmp) / "ft.yaml"
        prices.write_text(PRICE_FILE)
        for dialect in args.backends.split(","):
            await one_backend(dialect, rows, prices, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
