"""``majordomo-log ui``: thin wiring over ``dashboard.serve_dashboard``.

Serves until Ctrl-C or SIGTERM (exit 0). The command owns its process, so it takes
SIGTERM for the time it serves (and gives the previous handler back); the library's
``serve_dashboard`` never touches signals. A log that cannot be opened (no such file,
no ``llm_requests`` table, a server that refuses) is one line on stderr and exit 2, as
for the other read commands.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from ..stores.urls import shown_url
from .args import check_db_exists


def port_number(value: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r:.20} is not a port number from 0 to 65535")
    return int(value)


def add_command(sub: Any, stores: argparse.ArgumentParser) -> None:
    """The ``ui`` subcommand, on the parser's subparsers; ``stores`` gives --db, --storage
    (the dashboard shows each call's body)."""
    from ..dashboard import DEFAULT_HOST, DEFAULT_PORT

    p = sub.add_parser(
        "ui",
        parents=[stores],
        help="a local read-only dashboard: spend, tokens, latency, budgets, calls",
        description="Serve a read-only dashboard over the log on this machine: spend over "
        "time by model, feature, user or key alias, tokens by kind and cache savings, "
        "errors and latency percentiles, budgets, the most expensive calls and each "
        "call's stored body. Nothing is written to the log.",
    )
    p.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help=f"default {DEFAULT_PORT}; 0: any free port",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name requests may address the dashboard by, besides localhost and "
        "this machine's names and addresses (repeatable)",
    )
    p.set_defaults(run=cmd_ui)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_ui(args: argparse.Namespace) -> int:
    from ..dashboard import serve_dashboard

    check_db_exists(args.db)  # before serving: the same hint as the other read commands

    def ready(url: str) -> None:
        print(
            f"majordomo-log ui: {shown_url(args.db)} at {url} (read-only; Ctrl-C to stop)",
            flush=True,
        )

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve_dashboard(
            args.db,
            args.storage,
            host=args.host,
            port=args.port,
            ready=ready,
            allow_hosts=args.allow_host,
        )
    except KeyboardInterrupt:
        print("majordomo-log ui: stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
