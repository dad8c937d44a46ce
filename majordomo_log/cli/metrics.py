"""``majordomo-log serve-metrics``: wiring over ``telemetry/serve.py``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import sys
from collections.abc import Callable

from .._log import logger
from ..stores.urls import shown_url
from .args import existing_db, parse_when, whole_number


async def cmd_serve_metrics(args: argparse.Namespace) -> int:
    try:
        from prometheus_client import CollectorRegistry, start_http_server

        from ..telemetry.prometheus import PrometheusMetrics
    except ImportError:
        raise ImportError(
            'serve-metrics needs prometheus-client: pip install "majordomo-log[prometheus]"'
        ) from None
    from ..telemetry.serve import RowFeed, feed_forever

    tags = [t.strip() for group in args.tag for t in group.split(",") if t.strip()]
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry, tags=tags, max_label_values=args.max_label_values)
    async with existing_db(args.db) as db:
        since = args.since or dt.datetime.now(dt.timezone.utc)
        feed = RowFeed(db, metrics, since, dt.timedelta(seconds=args.lateness))
        await feed.poll()  # a database that cannot be read fails here, before serving
        server, _ = start_http_server(args.port, addr=args.host, registry=registry)
        try:
            port = server.server_port
            print(
                f"serving metrics of {shown_url(args.db)} on http://{args.host}:{port}/metrics "
                f"({feed.counted} calls so far; Ctrl-C to stop)",
                flush=True,
            )
            stop = asyncio.Event()

            def failed(exc: Exception) -> None:
                logger.warning("reading the log failed: %s", exc)
                print(f"majordomo-log: reading the log failed: {exc}", file=sys.stderr)

            await feed_forever(feed, args.interval, stop, failed)
        finally:
            server.shutdown()
            server.server_close()
    return 0


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r:.20} is not a port: 0 to 65535")
    return int(value)


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not low <= seconds <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{value!r:.20} is not seconds from {low} to {high:g}")
        return seconds

    return parse


def add_parser(sub: argparse._SubParsersAction, database: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve-metrics",
        parents=[database],
        help="serve Prometheus metrics of the logged calls",
        description="Serve /metrics for Prometheus, counted from the log database: calls, "
        "tokens by kind, cost in USD, errors by type, latency and time to first token, "
        "labelled by provider, model, operation and status, plus the tags named with --tag. "
        "Counts the calls started from now on (--since for earlier ones), reading the "
        "database every --interval seconds.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=_port, default=9464, help="port (9464; 0: any free one)")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        help="a tag to label by, e.g. feature (repeatable or comma-separated; "
        "user_id only when named: every value is a series)",
    )
    p.add_argument(
        "--since",
        type=parse_when,
        help="count calls from this time: 1w, 7d, 24h, 30m ago or an ISO date[time]",
    )
    p.add_argument(
        "--interval", type=_seconds(0.01, 3600), default=5.0, help="seconds between reads (5)"
    )
    p.add_argument(
        "--lateness",
        type=_seconds(0, 7 * 86400),
        default=300.0,
        help="seconds a row may be written after a later call's (300)",
    )
    p.add_argument(
        "--max-label-values",
        type=whole_number(1_000_000),
        default=100,
        help="distinct values per label before '__other__' (100)",
    )
    p.set_defaults(run=cmd_serve_metrics)
