"""``majordomo-log serve-metrics``: Prometheus metrics read from the log database.

For applications that cannot host an exporter (many processes, other languages through
a proxy, or no code change wanted), the log itself is the source: ``RowFeed`` reads the
rows written since it started (or since ``since``) and feeds each to a
``PrometheusMetrics`` once; prometheus-client's HTTP server serves it.

Rows do not arrive in ``started_at`` order (a batch is written up to a flush interval
after its calls; a spool replays hours later), so each read looks back ``lateness``
before the newest start seen, and the ids already counted in that window are
remembered: a row written late is counted if it started within ``lateness`` of the
newest one, and no row is counted twice. Each read costs the rows of that window, read
in pages on an index (``started_at``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from ..schema import COLUMNS, PROMOTED_TAGS, TOKEN_COLUMNS, Row
from ..stores.base import MetadataStore, fetched_utc
from .protocols import CallObserver

PAGE = 5_000
# What the metrics read: columns every schema since migration 0001 has (a log written by
# an older release is read as it is: serve-metrics never migrates), the rest left NULL.
READ_COLUMNS = (
    "request_id", "started_at", "latency_ms", "time_to_first_token_ms", "provider", "model",
    "served_model", "operation", "stream", "status", "error_type", *TOKEN_COLUMNS,
    "total_cost", "cost_status", "api_key_alias", *(t for t in PROMOTED_TAGS if t != "span_id"),
    "tags",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(READ_COLUMNS)} FROM llm_requests"


class RowFeed:
    """Feeds each row of ``db`` started at or after ``since`` to ``observer``, once."""

    def __init__(
        self,
        db: MetadataStore,
        observer: CallObserver,
        since: dt.datetime,
        lateness: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        self.db = db
        self.observer = observer
        self.since = since
        self.lateness = lateness
        self.newest = since  # the latest started_at seen
        self.counted = 0
        self._seen: dict[str, dt.datetime] = {}  # request ids within the lateness window

    async def poll(self) -> int:
        """Read what was written since the last poll; returns the rows counted."""
        counted = 0
        start = max(self.since, self.newest - self.lateness)
        while True:
            rows = await self.db.fetch(
                f"{_SELECT} WHERE started_at >= ? ORDER BY started_at LIMIT {PAGE}", [start]
            )
            fresh = 0
            for values in rows:
                started = fetched_utc(values["started_at"])
                request_id = str(values["request_id"])
                if request_id in self._seen or started < self.since:
                    continue
                self._seen[request_id] = started
                fresh += 1
                self.observer.observe(_row(values, started))
                if started > self.newest:
                    self.newest = started
            counted += fresh
            self._forget_before(self.newest - self.lateness)  # a long first read stays small
            if len(rows) < PAGE:
                break  # the last page
            last = fetched_utc(rows[-1]["started_at"])
            if last <= start:  # a whole page started in one instant: no way past it
                break
            start = last
        self._forget_before(self.newest - self.lateness)
        self.counted += counted
        return counted

    def _forget_before(self, cutoff: dt.datetime) -> None:
        if len(self._seen) > PAGE:  # amortized: a scan only once the map has grown
            self._seen = {k: v for k, v in self._seen.items() if v >= cutoff}


def _row(values: dict[str, Any], started: dt.datetime) -> Row:
    fields: dict[str, Any] = {name: values.get(name) for name in COLUMNS}
    fields["started_at"] = started
    fields["stream"] = bool(fields["stream"])
    return Row(**fields)


async def feed_forever(
    feed: RowFeed,
    interval: float,
    stop: asyncio.Event,
    on_error: Callable[[Exception], None],
) -> None:
    """Poll every ``interval`` seconds until ``stop`` is set; a failed read (the database
    down) is reported and tried again at the next tick, the counts kept."""
    while not stop.is_set():
        try:
            await feed.poll()
        except Exception as exc:
            on_error(exc)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass
