"""What each ``majordomo-log`` command does: thin wiring over the library
(``cli/reports.py``, ``cli/outliers.py``, ``budgets/status.py``), ``cli/render.py`` and
the stores. The arguments are ``cli/parser.py``'s; the spool commands are in
``cli/spool.py``, ``serve-metrics`` in ``cli/metrics.py``, ``ui`` in ``cli/ui.py``.

Stores are shown as ``stores/urls.py``'s ``shown_url`` shows them: a SQLite log as its
file's path, which pasted back as ``--db`` names the same file; any other URL without
its secrets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import MajordomoLogError, StoreError
from ..budgets.status import NO_BUDGETS, budget_status, status_rows
from ..record.pricing import PriceTable
from ..record.reprice import reprice
from ..stores.base import MetadataStore
from ..stores.open import open_db, open_storage
from ..stores.urls import shown_url, sqlite_path
from . import reports
from .args import UsageError, check_db_exists, existing_db
from .outliers import DEFAULT_LIMIT, outliers, render_outliers
from .progress import progress_bar
from .render import render
from .reprice import summary
from .stream import print_pages
from .trend import spend_report_with_trend


async def cmd_migrate(args: argparse.Namespace) -> int:
    db = await open_db(args.db, migrate=False)
    try:
        applied = await db.migrate()
    finally:
        await db.close()
    print(
        f"{shown_url(args.db)}: " + (f"applied {', '.join(applied)}" if applied else "up to date")
    )
    return 0


async def cmd_report(args: argparse.Namespace) -> int:
    if args.outliers:
        return await cmd_outliers(args)
    for option, value in (("--sort", args.sort), ("--limit", args.limit)):
        if value is not None:
            raise UsageError(f"{option} goes with --outliers")
    async with existing_db(args.db) as db:
        rows, periods = await spend_report_with_trend(
            db, args.by or ["model"], since=args.since, until=args.until
        )
        calls, cost = await reports.total_spend(db, since=args.since, until=args.until)
    print(render(rows, args.format))
    if args.format == "table":
        blocked = sum(row["blocked"] for row in rows)
        refused = f"; {blocked} blocked by budgets" if blocked else ""
        print(f"\n{calls} calls, total ${cost:.6f}{refused}")
        if periods is not None:
            print(periods.describe())
    return 0


async def cmd_outliers(args: argparse.Namespace) -> int:
    if args.by is not None:
        raise UsageError("--by does not go with --outliers: each section has its own")
    async with existing_db(args.db) as db:
        report = await outliers(
            db,
            since=args.since,
            until=args.until,
            sort=args.sort or "spend",
            limit=args.limit or DEFAULT_LIMIT,
        )
    print(render_outliers(report, args.format))
    return 0


async def cmd_budgets_status(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.timezone.utc)
    async with existing_db(args.db) as db:
        status = await budget_status(db, now)
    for problem in status.unreadable:
        print(f"majordomo-log: {problem}", file=sys.stderr)
    if not status.recorded:  # in a table, the message is the output; else stdout stays data
        message = NO_BUDGETS.format(url=shown_url(args.db))
        print(message, file=sys.stdout if args.format == "table" else sys.stderr)
        if args.format == "table":
            return 0
    shown = status.lines[: args.limit]
    if not shown and args.format == "table":  # every definition was unreadable
        print("(no budget could be read)")
        return 0
    print(render(status_rows(shown, now, args.format), args.format))
    if args.format == "table" and len(status.lines) > len(shown):
        print(f"\n{len(status.lines) - len(shown)} more lines: --limit to see them")
    return 0


async def cmd_tail(args: argparse.Namespace) -> int:
    where = reports.CallFilter(
        models=args.model or (),
        features=args.feature or (),
        users=args.user or (),
        statuses=args.status or (),
        since=args.since,
        until=args.until,
    )
    async with existing_db(args.db) as db:
        pages = reports.iter_latest_calls(db, args.n, where=where)
        await print_pages(pages, args.format, reports.TAIL_COLUMNS, sys.stdout)
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with existing_db(args.db) as db:
        row = await reports.get_call(db, args.request_id)
    if row is None:
        raise UsageError(f"no call {args.request_id!r:.60} in {shown_url(args.db)}")
    if args.no_body or not row.get("body_ref"):
        _print_call(row, None)
        if not args.no_body:  # stdout stays the JSON; the note goes beside it
            print(f"majordomo-log: {NO_BODY_STORED}", file=sys.stderr)
        return 0
    try:
        body = await _read_body(args.storage, row["body_ref"])
    except MajordomoLogError as exc:
        _print_call(row, None)  # the row is still worth showing
        print(
            f"majordomo-log: error: the body of this call is not in {shown_url(args.storage)} "
            f"({exc}): pass --storage with the body store the log was written with",
            file=sys.stderr,
        )
        return 1
    _print_call(row, body)
    return 0


NO_BODY_REASON = "bodies were not captured, or their store failed when it was logged"
NO_BODY_STORED = f"this call stored no body ({NO_BODY_REASON}): body is null"


async def _read_body(storage_url: str, ref: str) -> Any:
    storage = await open_storage(storage_url, read_only=True)
    try:
        return await storage.get(ref)
    finally:
        await storage.close()


def _print_call(row: dict[str, Any], body: Any) -> None:
    print(json.dumps({"row": row, "body": body}, default=str, indent=2, ensure_ascii=False))


async def cmd_prices(args: argparse.Namespace) -> int:
    table = PriceTable.load(args.prices)
    # The price table needs no database; the unpriced models do, when there is one
    # (a SQLite file that is not there is no log yet, not an error). Opened before
    # anything is printed, so a database that fails is one line, not half a report.
    db = None
    if urlsplit(args.db).scheme != "sqlite" or Path(sqlite_path(args.db)).exists():
        db = await open_db(args.db, read_only=True)
    try:
        await _print_prices(table, args, db)
    finally:
        if db is not None:
            await db.close()
    return 0


async def _print_prices(
    table: PriceTable, args: argparse.Namespace, db: MetadataStore | None
) -> None:
    rows = []
    for entry in sorted(table.models, key=lambda m: (m.provider, m.id)):
        version = entry.versions[0]
        rates = version.rates
        rows.append(
            {
                "provider": entry.provider,
                "model": entry.id,
                "effective": version.effective.isoformat(),
                "input": rates.input,
                "output": rates.output,
                "cache_read": rates.cache_read,
                "cache_write_5m": rates.cache_write_5m,
                "cache_write_1h": rates.cache_write_1h,
                "tiers": ", ".join(f">{t.above_input_tokens:,}" for t in version.tiers),
                "origin": entry.origin,
            }
        )
    print(render(rows, args.format))
    for source in table.sources:
        print(f"# {source.path}: {source.source} (checked {source.checked})", file=sys.stderr)
    if db is not None:
        missing = await reports.unpriced_models(db, table)
        print(f"\nmodels in {shown_url(args.db)} with no price:")
        print(render(missing, args.format) if missing else "(none)")


async def cmd_reprice(args: argparse.Namespace) -> int:
    table = PriceTable.load(args.prices)  # a bad price file fails before the log is opened
    check_db_exists(args.db)
    db = await open_db(args.db, migrate=False)
    try:
        try:  # a log to reprice, not an empty database that would be given a table
            await db.fetch("SELECT 1 AS present FROM llm_requests WHERE 1 = 0")
        except StoreError:
            raise UsageError(f"no llm_requests table in {shown_url(args.db)}") from None
        await db.migrate()  # the columns a reprice writes exist from migration 0002 on
        with progress_bar("repricing", "rows", show=args.progress) as progress:
            result = await reprice(
                db,
                since=args.since,
                until=args.until,
                model=args.model,
                dry_run=args.dry_run,
                prices=table,
                progress=progress,
            )
    finally:
        await db.close()
    print(summary(result, shown_url(args.db)))
    return 1 if result.skipped.get("store_refused") else 0


async def cmd_demo(args: argparse.Namespace) -> int:
    # Imported only here: the demo pulls in the wrapper and the fake provider, which the
    # read commands never need.
    from .demo import run_demo

    with progress_bar("demo", "calls", show=args.progress) as progress:
        return await run_demo(Path(args.out), calls=args.calls, progress=progress)
