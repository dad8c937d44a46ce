"""The arguments of every ``majordomo-log`` command: each command has a description
(``majordomo-log CMD --help``) and each option a help text (tests/cli/test_parser.py
walks the tree). ``--storage`` is offered only where bodies are read or written
(``show``, ``ui``, ``spool replay``); the defaults of ``--db`` and ``--storage`` are
filled in after parsing (``args.resolve_stores``), since the bodies' default depends on
the database given.

A bad argument is one line on stderr and exit 2, as every other error a user can fix:
``majordomo-log report: error: argument --since: ... (majordomo-log report --help)``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .._version import __version__
from ..delivery.spool import SPOOL_DIR_ENV
from ..record.call import STATUSES
from ..record.pricing import PRICES_ENV_VAR
from . import metrics, reports
from .args import (
    DB_HELP,
    DEMO_OUT,
    MAX_DEMO_CALLS,
    MAX_ROWS,
    STORAGE_HELP,
    db_url,
    grouping,
    parse_when,
    storage_url,
    whole_number,
)
from .commands import (
    NO_BODY_REASON,
    cmd_budgets_status,
    cmd_demo,
    cmd_migrate,
    cmd_prices,
    cmd_report,
    cmd_reprice,
    cmd_show,
    cmd_tail,
)
from .outliers import DEFAULT_LIMIT, SORTS
from .render import FORMATS
from .spool import cmd_spool_inspect, cmd_spool_replay, cmd_spool_status
from .ui import add_command as add_ui_command

WHEN = "1w, 7d, 24h, 30m ago, or an ISO date or date-time (UTC unless it says)"


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line: the command, the error, where help is."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} ({self.prog} --help)\n")


def build_parser() -> OneLineParser:
    database = OneLineParser(add_help=False)
    database.add_argument("--db", type=db_url, help=DB_HELP)
    bodies = OneLineParser(add_help=False, parents=[database])
    bodies.add_argument("--storage", type=storage_url, help=STORAGE_HELP)
    fmt = OneLineParser(add_help=False)
    fmt.add_argument(
        "--format", choices=FORMATS, default="table", help="table (default), csv or json"
    )
    bar = OneLineParser(add_help=False)
    bar.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    window = OneLineParser(add_help=False)
    window.add_argument("--since", type=parse_when, help=f"calls from this time: {WHEN}")
    window.add_argument("--until", type=parse_when, help=f"calls before this time: {WHEN}")

    parser = OneLineParser(
        prog="majordomo-log",
        description="Query the LLM call log: spend, calls, bodies, prices, budgets, the "
        "spool; or serve it as metrics or a dashboard.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"majordomo-log {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "migrate",
        parents=[database],
        help="create or upgrade the schema",
        description="Create the log's tables and views, or apply the migrations a newer "
        "version brings; a log that is up to date is left as it is.",
    )
    p.set_defaults(run=cmd_migrate)
    p = sub.add_parser(
        "report",
        parents=[database, fmt, window],
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
    p = sub.add_parser(
        "budgets",
        help="the budgets wrappers enforce",
        description="The budgets wrappers enforce, as recorded in the log.",
    )
    budget_cmds = p.add_subparsers(dest="budgets_command", required=True, metavar="COMMAND")
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
        parents=[database, fmt, window],
        help="the latest calls",
        description="The latest calls, newest first, printed as they are read, 1,000 at a "
        "time (the table sizes its columns for each 1,000 and repeats its header). A "
        "filter given several times keeps calls matching any of its values; different "
        "filters must all match. Values match exactly.",
    )
    p.add_argument(
        "-n", type=whole_number(MAX_ROWS, minimum=0), default=20, help="calls shown (20; 0: all)"
    )
    p.add_argument("--model", action="append", help="the model asked for or served (repeatable)")
    p.add_argument("--feature", action="append", help="the feature tag (repeatable)")
    p.add_argument("--user", action="append", help="the user_id tag (repeatable)")
    p.add_argument(
        "--status", action="append", choices=sorted(STATUSES), help="the status (repeatable)"
    )
    p.set_defaults(run=cmd_tail)
    p = sub.add_parser(
        "show",
        parents=[bodies],
        help="one call: its row and its body",
        description='One call as JSON: {"row": its row, "body": its stored request and '
        "response}. Exit status 0 when the body is shown; 1 when the row says a body was "
        "stored but it cannot be read from --storage (the row is printed, then the error "
        "on stderr); 0 with body null and a note on stderr when the call stored no body "
        f"({NO_BODY_REASON}); 0 with --no-body.",
    )
    p.add_argument("request_id", help="the call's request_id (tail shows them)")
    p.add_argument("--no-body", action="store_true", help="the row only: do not read the body")
    p.set_defaults(run=cmd_show)
    p = sub.add_parser(
        "prices",
        parents=[database, fmt],
        help="the price table, and unpriced models",
        description="The price table in use (built in, then the price files), one line per "
        "model with its latest rates in USD per million tokens; then, when the log exists, "
        "the models in it that the table cannot price.",
    )
    p.add_argument(
        "--prices",
        action="append",
        default=[],
        help=f"price file over the built-in table (repeatable; also ${PRICES_ENV_VAR})",
    )
    p.set_defaults(run=cmd_prices)
    p = sub.add_parser(
        "reprice",
        parents=[database, bar],
        help="price logged calls again with the current price table",
        description="Price logged calls again from their stored tokens, model and time, "
        "and write back the costs that change (a new price, a corrected one). Rows without "
        "usable usage are never touched. Running it twice changes nothing the second time.",
    )
    p.add_argument("--since", type=parse_when, help=f"from this time: {WHEN}")
    p.add_argument("--until", type=parse_when, help=f"before this time: {WHEN}")
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
    _add_spool_commands(sub, bodies, fmt, bar)
    p = sub.add_parser(
        "demo",
        parents=[bar],
        help="log a few hundred calls through the real SDKs, offline",
        description="Log calls through the real OpenAI and Anthropic SDK clients, served "
        "in-process (no network, no key), to OUT/llm_logs.db with bodies in "
        "OUT/request_logs (and, if the queue fills, a spool in OUT/spool, replayed before "
        "it ends), then print the spend report and commands to try. Replaces an earlier "
        "demo's log in OUT.",
    )
    p.add_argument(
        "--calls",
        type=whole_number(MAX_DEMO_CALLS),
        default=300,
        help=f"calls to log (300; at most {MAX_DEMO_CALLS:,})",
    )
    p.add_argument(
        "--out", default=DEMO_OUT, help=f"folder for the demo's log and bodies ({DEMO_OUT})"
    )
    p.set_defaults(run=cmd_demo)
    metrics.add_parser(sub, database)
    add_ui_command(sub, bodies)
    return parser


def _add_spool_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    bodies: OneLineParser,
    fmt: OneLineParser,
    bar: OneLineParser,
) -> None:
    p = sub.add_parser(
        "spool",
        help="records waiting on local disk for a store",
        description="Records a wrapper wrote to local disk while a store was down or its "
        "queue was full, waiting to be written to the stores.",
    )
    spool_cmds = p.add_subparsers(dest="spool_command", required=True, metavar="COMMAND")
    where = OneLineParser(add_help=False)
    where.add_argument(
        "--spool-dir",
        help=f"one spool (default: every spool under ${SPOOL_DIR_ENV}, else under the "
        "user's cache folder)",
    )
    q = spool_cmds.add_parser(
        "status",
        parents=[where, fmt],
        help="files, records, oldest",
        description="Each spool holding records: the stores they are for, files, records, "
        "bytes, the oldest record, and rows a store refused.",
    )
    q.set_defaults(run=cmd_spool_status)
    q = spool_cmds.add_parser(
        "inspect",
        parents=[where, fmt],
        help="the spooled records",
        description="The records waiting in the spools (or refused, with --rejected), one "
        "line each: request id, time, model, status, cost, body, error.",
    )
    q.add_argument("--rejected", action="store_true", help="rows a store refused, with errors")
    q.set_defaults(run=cmd_spool_inspect)
    q = spool_cmds.add_parser(
        "replay",
        parents=[bodies, bar],
        help="write the spool to the stores",
        description="Write the records spooled for --db and --storage to them; a file "
        "spooled for other stores is skipped unless --any-store. Exit status 1 when a "
        "record is refused or a file cannot be read.",
    )
    q.add_argument("--spool-dir", help="the spool (default: the one for --db and --storage)")
    q.add_argument("--any-store", action="store_true", help="also files spooled for other URLs")
    q.set_defaults(run=cmd_spool_replay)
