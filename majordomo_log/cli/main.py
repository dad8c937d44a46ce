"""The ``majordomo-log`` command: thin wiring over the library (``cli/reports.py``,
``cli/outliers.py``, ``budgets/status.py``), ``cli/render.py`` and the stores; what the
commands share is in ``cli/args.py``, the spool commands in ``cli/spool.py``, the
progress bars of the long ones (``reprice``, ``demo``, ``spool replay``) in
``cli/progress.py``.

Errors a user can fix (a bad URL, a missing database, a bad argument) print one line
and exit 2; a reader that closes the pipe early ends the command quietly with status 141
(``cli/pipes.py``). The read commands (report, tail, show, prices, budgets status, spool
status|inspect, and ui: the dashboard, ``cli/ui.py``) never write: databases are opened
read-only and never migrated, body folders never created. ``reprice`` writes only to a
log that exists (its table is there), after migrating it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import inspect
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import MajordomoLogError, StoreError
from .._version import __version__
from ..budgets.status import NO_BUDGETS, budget_status, status_rows
from ..delivery.spool import SPOOL_DIR_ENV
from ..record.call import STATUSES
from ..record.pricing import PRICES_ENV_VAR, PriceTable
from ..record.reprice import reprice
from ..stores.base import MetadataStore
from ..stores.open import open_db, open_storage
from ..stores.urls import redact_url, sqlite_path
from . import metrics, reports
from .args import (
    DB_ENV_VAR,
    DEFAULT_DB,
    DEFAULT_STORAGE,
    MAX_DEMO_CALLS,
    MAX_ROWS,
    STORAGE_ENV_VAR,
    UsageError,
    db_url,
    existing_db,
    grouping,
    parse_when,
    storage_url,
    whole_number,
)
from .outliers import DEFAULT_LIMIT, SORTS, outliers, render_outliers
from .pipes import stdout_closed
from .progress import progress_bar
from .render import FORMATS, render
from .reprice import summary
from .spool import cmd_spool_inspect, cmd_spool_replay, cmd_spool_status
from .stream import print_pages
from .trend import spend_report_with_trend
from .ui import add_command as add_ui_command

# -- commands --------------------------------------------------------------------------


async def cmd_migrate(args: argparse.Namespace) -> int:
    db = await open_db(args.db, migrate=False)
    try:
        applied = await db.migrate()
    finally:
        await db.close()
    print(
        f"{redact_url(args.db)}: " + (f"applied {', '.join(applied)}" if applied else "up to date")
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
        message = NO_BUDGETS.format(url=redact_url(args.db))
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
        raise UsageError(f"no call {args.request_id!r:.60} in {redact_url(args.db)}")
    body: Any = None
    if not args.no_body and row.get("body_ref"):
        try:
            storage = await open_storage(args.storage, read_only=True)
        except MajordomoLogError as exc:  # the row is still worth showing
            body = {"$error": str(exc)}
        else:
            try:
                body = await storage.get(row["body_ref"])
            except MajordomoLogError as exc:
                body = {"$error": str(exc)}
            finally:
                await storage.close()
    print(json.dumps({"row": row, "body": body}, default=str, indent=2, ensure_ascii=False))
    return 0


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
        print(f"\nmodels in {redact_url(args.db)} with no price:")
        print(render(missing, args.format) if missing else "(none)")


async def cmd_reprice(args: argparse.Namespace) -> int:
    table = PriceTable.load(args.prices)  # a bad price file fails before the log is opened
    if urlsplit(args.db).scheme == "sqlite" and not Path(sqlite_path(args.db)).exists():
        raise UsageError(f"no database at {sqlite_path(args.db)}: pass --db or set {DB_ENV_VAR}")
    db = await open_db(args.db, migrate=False)
    try:
        try:  # a log to reprice, not an empty database that would be given a table
            await db.fetch("SELECT 1 AS present FROM llm_requests WHERE 1 = 0")
        except StoreError:
            raise UsageError(f"no llm_requests table in {redact_url(args.db)}") from None
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
    print(summary(result, redact_url(args.db)))
    return 1 if result.skipped.get("store_refused") else 0


async def cmd_demo(args: argparse.Namespace) -> int:
    # Imported only here: the demo pulls in the wrapper and the fake provider, which the
    # read commands never need.
    from .demo import run_demo

    with progress_bar("demo", "calls", show=args.progress) as progress:
        return await run_demo(Path(args.out), calls=args.calls, progress=progress)


def build_parser() -> argparse.ArgumentParser:
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--db",
        type=db_url,
        default=os.environ.get(DB_ENV_VAR, DEFAULT_DB),
        help=f"metadata database URL or SQLite file (default: ${DB_ENV_VAR} or {DEFAULT_DB})",
    )
    stores = argparse.ArgumentParser(add_help=False, parents=[database])
    stores.add_argument(
        "--storage",
        type=storage_url,
        default=os.environ.get(STORAGE_ENV_VAR, DEFAULT_STORAGE),
        help=f"body store URL or folder (default: ${STORAGE_ENV_VAR} or {DEFAULT_STORAGE})",
    )
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=FORMATS, default="table")
    bar = argparse.ArgumentParser(add_help=False)
    bar.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )

    parser = argparse.ArgumentParser(prog="majordomo-log", description="Query the LLM call log.")
    parser.add_argument("--version", action="version", version=f"majordomo-log {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", parents=[stores], help="create or upgrade the schema")
    p.set_defaults(run=cmd_migrate)
    p = sub.add_parser(
        "report",
        parents=[stores, fmt],
        help="spend and tokens by one column or several, with the trend; or --outliers",
        description="Calls, blocked attempts, errors, tokens and spend by one column or "
        "several (--by model --by feature, or --by model,feature), each group with its "
        "trend against the period of the same length before --since (without "
        "--since: the last 7 days against the 7 before). --outliers: the highest-cost "
        "workflows and users, spend jumps, retry and tool-call rates, and acceptance by "
        "prompt version (default window: the last 7 days).",
    )
    p.add_argument(
        "--by",
        type=grouping,
        action="extend",
        metavar="COLUMN[,COLUMN...]",
        help=f"group by these columns (repeatable; default: model): {', '.join(reports.GROUPINGS)}",
    )
    p.add_argument("--since", type=parse_when, help="1w, 7d, 24h, 30m or an ISO date/time")
    p.add_argument("--until", type=parse_when)
    p.add_argument("--outliers", action="store_true", help="the views a spend review starts from")
    p.add_argument(
        "--sort", choices=SORTS, help="--outliers: order by spend (default) or cost per accepted"
    )
    p.add_argument(
        "--limit",
        type=whole_number(MAX_ROWS),
        help=f"--outliers: rows per section ({DEFAULT_LIMIT})",
    )
    p.set_defaults(run=cmd_report)
    p = sub.add_parser("budgets", help="the budgets wrappers enforce")
    budget_cmds = p.add_subparsers(dest="budgets_command", required=True)
    q = budget_cmds.add_parser(
        "status",
        parents=[database, fmt],
        help="each budget and scope value in its current period",
        description="Each budget recorded in the log (a wrapper built with budgets=[...] "
        "records them when it starts) and each scope value in its current period: spend, "
        "limit, percent used, hard or soft, and when the period ends; per-call caps show "
        "the largest call of the last day. Highest percent used first.",
    )
    q.add_argument("--limit", type=whole_number(MAX_ROWS), default=50, help="lines shown (50)")
    q.set_defaults(run=cmd_budgets_status)
    p = sub.add_parser(
        "tail",
        parents=[stores, fmt],
        help="the latest calls",
        description="The latest calls, newest first, printed as they are read, 1,000 at a "
        "time (the table sizes its columns for each 1,000 and repeats its header). A "
        "filter given several times keeps calls matching any of its values; different "
        "filters must all match. Values match exactly.",
    )
    p.add_argument(
        "-n", type=whole_number(MAX_ROWS, minimum=0), default=20, help="calls shown (0: all)"
    )
    p.add_argument("--model", action="append", help="the model asked for or served")
    p.add_argument("--feature", action="append")
    p.add_argument("--user", action="append", help="user_id")
    p.add_argument("--status", action="append", choices=sorted(STATUSES))
    p.add_argument("--since", type=parse_when, help="1w, 7d, 24h, 30m or an ISO date/time")
    p.add_argument("--until", type=parse_when)
    p.set_defaults(run=cmd_tail)
    p = sub.add_parser("show", parents=[stores], help="one call: its row and its body")
    p.add_argument("request_id")
    p.add_argument("--no-body", action="store_true")
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("prices", parents=[stores, fmt], help="the price table, and unpriced models")
    p.add_argument("--prices", action="append", default=[], help="extra price file (repeatable)")
    p.set_defaults(run=cmd_prices)
    p = sub.add_parser(
        "reprice",
        parents=[database, bar],
        help="price logged calls again with the current price table",
        description="Price logged calls again from their stored tokens, model and time, "
        "and write back the costs that change (a new price, a corrected one). Rows without "
        "usable usage are never touched. Running it twice changes nothing the second time.",
    )
    p.add_argument("--since", type=parse_when, help="from this time: 1w, 7d, 24h, 30m or ISO")
    p.add_argument("--until", type=parse_when, help="before this time: 1w, 7d, 24h, 30m or ISO")
    p.add_argument(
        "--model", help="only calls whose model or served model is this name or glob (ft:gpt-4o:*)"
    )
    p.add_argument("--dry-run", action="store_true", help="count what would change, write nothing")
    p.add_argument(
        "--prices",
        action="append",
        default=[],
        help=f"price file over the built-in table (repeatable; also ${PRICES_ENV_VAR})",
    )
    p.set_defaults(run=cmd_reprice)
    p = sub.add_parser("spool", help="records waiting on local disk for a store")
    spool_cmds = p.add_subparsers(dest="spool_command", required=True)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--spool-dir", help=f"one spool (default: every spool under ${SPOOL_DIR_ENV})"
    )
    q = spool_cmds.add_parser("status", parents=[where, fmt], help="files, records, oldest")
    q.set_defaults(run=cmd_spool_status)
    q = spool_cmds.add_parser("inspect", parents=[where, fmt], help="the spooled records")
    q.add_argument("--rejected", action="store_true", help="rows a store refused, with errors")
    q.set_defaults(run=cmd_spool_inspect)
    q = spool_cmds.add_parser("replay", parents=[stores, bar], help="write the spool to the stores")
    q.add_argument("--spool-dir", help="the spool (default: the one for --db and --storage)")
    q.add_argument("--any-store", action="store_true", help="also files spooled for other URLs")
    q.set_defaults(run=cmd_spool_replay)
    p = sub.add_parser(
        "demo", parents=[bar], help="log a few hundred calls through the real SDKs, offline"
    )
    p.add_argument("--calls", type=whole_number(MAX_DEMO_CALLS), default=300)
    p.add_argument("--out", default="demo-output", help="folder for the demo DB and bodies")
    p.set_defaults(run=cmd_demo)
    metrics.add_parser(sub, database)
    add_ui_command(sub, stores)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)  # a coroutine, or a command that blocks on its own (ui)
        code: int = asyncio.run(result) if inspect.iscoroutine(result) else result
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's last flush
        return code
    except BrokenPipeError:  # an OSError: the reader stopped reading, which is no error
        return stdout_closed()
    except (UsageError, MajordomoLogError, ImportError, OSError, ValueError) as exc:
        print(f"majordomo-log: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
