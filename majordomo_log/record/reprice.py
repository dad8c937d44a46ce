"""Pricing logged calls again with today's price table: ``majordomo_log.reprice``.

A row keeps its six token buckets, its model, served model and start time, which is
everything its cost was computed from; so after a price is added (rows logged as
``unknown_model``) or corrected, the cost is recomputed from the row alone, exactly
as the writer computes it (``PriceTable.resolve`` on the served model then the model,
the price in force on the call's UTC day, long-context tiers on all its input), and
written back with the new ``price_version``.

A row's billing variants (``record/billing.py``) are kept: it is priced at its
``service_tier`` and its ``web_search_calls`` are billed at the table's fee, as the
writer did. Not rewritten, so left as they are where they would change: the tier
(a row whose tier the table no longer prices: ``service_tier_unpriced``) and the fee
(``server_tool_cost``, a fee that changed); and a row of a model with audio rates
(``audio_tokens``): its audio counts are not in the row.

Never touched: a row whose usage was missing or could not be trusted (``cost_status``
``missing_usage``, ``invalid_usage``, ``error``; NULL or impossible token counts), a
row whose model still has no price, and a row priced from a user's price file
(``price_version`` ending ``+custom``) when this run has no user price for it, which
would replace a negotiated rate with the list price. Each is counted by reason.

Rows are read a page at a time through the store's ``Repriceable`` methods (keyset
pagination, no OFFSET), priced in a worker thread, and only the rows whose values
change are written, one batch per page: a second run changes nothing. A row the
database refuses (a value out of its range) is found by halving the batch and counted
as skipped; the rest are written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Any

from .._exceptions import ConfigError, StoreError, StoreUnavailable
from .._log import logger
from ..schema import TOKEN_COLUMNS, CostUpdate, CostWindow, RowKey
from ..stores.base import MetadataStore, Repriceable, fetched_utc
from ..stores.open import open_db
from .billing import Billing, billed_cost
from .call import PRICED_BY_REQUESTED_MODEL
from .pricing import Cost, Prices, PriceTable, price_table
from .usage import MAX_SANE_TOKENS, Usage

Progress = Callable[[int, "int | None"], None]  # (rows read so far, rows in the window)

# What a reprice may change: a cost computed from usage, or withheld for want of a price.
REPRICEABLE = frozenset({"computed", "unknown_model", "incomplete"})
# Flags that say the counts themselves cannot be trusted (see record/call.py's _price).
_DISTRUSTED_FLAGS = frozenset({"unreadable_usage", "pricing_failed", "row_unbuildable"})
_BUCKETS = TOKEN_COLUMNS[:6]  # the six non-overlapping buckets; TOKEN_COLUMNS[6] is the total
_COSTS = CostUpdate._fields[1:8]  # the cost columns and cache_savings
_GLOB = frozenset("*?[")
_ZERO = Decimal(0)


@dataclass(frozen=True)
class RepriceResult:
    """What a reprice did. ``examined`` = ``changed + unchanged + sum(skipped)``.

    ``skipped`` counts rows left as they are, by reason: ``missing_usage``,
    ``invalid_usage``, ``error`` (no usage: the call failed), ``unknown_model`` (still no
    price), ``custom_price`` (priced from a user price file this run does not have),
    ``bad_row`` (a value that cannot be read), ``store_refused`` (the database refused
    the new values), or another ``cost_status`` by its name. ``cost_before`` and
    ``cost_after`` sum ``total_cost`` over the changed rows (NULL as 0); with
    ``dry_run`` nothing is written and ``changed`` is what would change."""

    examined: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    dry_run: bool = False
    cost_before: Decimal = _ZERO
    cost_after: Decimal = _ZERO

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


async def reprice(
    db: MetadataStore | str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    model: str | None = None,
    dry_run: bool = False,
    prices: Prices = None,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> RepriceResult:
    """Price the logged calls of ``since <= started_at < until`` again with ``prices``
    (default: the built-in table and ``MAJORDOMO_LOG_PRICES``), and write back the rows
    whose cost, ``cost_status`` or ``price_version`` changes (not with ``dry_run``).

    ``model`` keeps rows whose ``model`` or ``served_model`` is that name, or matches it
    as a glob (``"ft:gpt-4o:*"``, case-sensitive). ``db`` is a store or a database URL
    (opened, migrated and closed here). ``progress(read, total)`` is called once the
    window's rows are counted (``read`` 0), then after each page. A naive datetime is
    UTC."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    table = price_table(prices)
    if isinstance(db, str):
        store = await open_db(db)
        try:
            return await reprice(
                store,
                since=since,
                until=until,
                model=model,
                dry_run=dry_run,
                prices=table,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            await store.close()
    if not isinstance(db, Repriceable):
        raise ConfigError(
            f"{type(db).__name__} cannot reprice: a store needs cost_rows(), count_cost_rows() "
            "and update_costs() (stores.base.Repriceable), as the SQL stores have"
        )
    glob = model if model is not None and _GLOB & set(model) else None
    window = CostWindow(since, until, None if glob is not None else model)
    total = None
    if progress is not None:
        total = await db.count_cost_rows(window)
        progress(0, total)  # a bar shows the whole before the first page is priced
    tally = _Tally(dry_run)
    after: RowKey | None = None
    read = 0
    while True:
        rows = await db.cost_rows(window, after, batch_size)
        if not rows:
            break
        read += len(rows)
        after = (rows[-1]["started_at"], rows[-1]["request_id"])
        page = await asyncio.to_thread(price_page, table, rows, glob)
        tally.add(page)
        if page.updates and not dry_run:
            refused = await _update_isolating(db, page.updates)
            tally.refused(page, refused)
        if progress is not None:
            progress(read, total)
        if len(rows) < batch_size:
            break
    return tally.result()


@dataclass
class Page:
    """One page, priced: the updates to write and the counts, before any is written."""

    updates: list[CostUpdate] = field(default_factory=list)
    examined: int = 0
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # total_cost before and after, by request id, of the rows in ``updates``
    totals: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)


def price_page(prices: PriceTable, rows: Sequence[Mapping[str, Any]], glob: str | None) -> Page:
    """Worker thread: each row priced again (see the module doc); a row that fails
    costs only itself (``bad_row``)."""
    page = Page()
    for row in rows:
        if glob is not None and not any(
            isinstance(name, str) and fnmatchcase(name, glob)
            for name in (row.get("model"), row.get("served_model"))
        ):
            continue
        page.examined += 1
        try:
            outcome = reprice_row(prices, row)
        except Exception as exc:  # a value of a kind no store should hold
            logger.debug("reprice: row %s skipped: %r", row.get("request_id"), exc)
            outcome = "bad_row"
        if isinstance(outcome, str):
            page.skipped[outcome] += 1
        elif outcome is None:
            page.unchanged += 1
        else:
            page.updates.append(outcome)
            page.totals[outcome.request_id] = (
                _decimal(row.get("total_cost")) or _ZERO,
                outcome.total_cost or _ZERO,
            )
    return page


def reprice_row(prices: PriceTable, row: Mapping[str, Any]) -> CostUpdate | str | None:
    """The row's update, None when nothing changes, or why it is left as it is."""
    cost_status = row["cost_status"]
    if cost_status not in REPRICEABLE:
        known = ("missing_usage", "invalid_usage", "error")
        return cost_status if cost_status in known else f"status_{cost_status}"[:64]
    usage = _usage(row)
    if isinstance(usage, str):
        return usage
    if row.get("provider") in PRICED_BY_REQUESTED_MODEL:  # as the writer prices them
        entry = prices.resolve(row["model"])
    else:
        entry = prices.resolve(row["served_model"]) or prices.resolve(row["model"])
    if entry is None:
        return "unknown_model"
    old_version = row["price_version"]
    if (
        isinstance(old_version, str)
        and old_version.endswith("+custom")
        and (entry.origin == "built-in")
    ):
        return "custom_price"
    started = fetched_utc(row["started_at"])
    billing = _billing(row)
    extras = entry.version_at(started).extras
    if extras is not None and extras.audio:
        return "audio_tokens"  # how much of the input and output was audio is not in the row
    if billing is None:
        cost: Cost = prices.cost(entry, usage, started)
    else:
        cost, flags = billed_cost(prices, entry, usage, billing, started.timestamp())
        if "service_tier_unpriced" in flags:
            return "service_tier_unpriced"
        if "web_search_unpriced" in flags or not _same(
            row.get("server_tool_cost"), cost.server_tool_cost
        ):
            return "server_tool_cost"
    update = CostUpdate(
        request_id=str(row["request_id"]),
        input_cost=cost.input,
        cache_read_cost=cost.cache_read,
        cache_write_cost=cost.cache_write,
        output_cost=cost.output,
        reasoning_cost=cost.reasoning,
        total_cost=cost.total,
        cache_savings=cost.cache_savings,
        # as the writer decides it: a call that ended early keeps saying so
        cost_status="incomplete" if row["status"] == "incomplete" else "computed",
        price_version=cost.price_version,
    )
    same = (
        update.cost_status == cost_status
        and update.price_version == old_version
        and all(_same(row[name], getattr(update, name)) for name in _COSTS)
    )
    return None if same else update


def _billing(row: Mapping[str, Any]) -> Billing | None:
    """The row's service tier and web searches, as its writer priced them."""
    tier, searches = row.get("service_tier"), row.get("web_search_calls")
    searches = searches if type(searches) is int and 0 < searches <= MAX_SANE_TOKENS else 0
    if not isinstance(tier, str):
        tier = None
    if tier is None and not searches:
        return None
    return Billing(service_tier=tier, web_search_calls=searches)


def _usage(row: Mapping[str, Any]) -> Usage | str:
    """The row's buckets as a Usage, or why they cannot be priced."""
    counts = [row[name] for name in _BUCKETS]
    if any(count is None for count in counts):
        return "missing_usage"
    flags = {f.strip() for f in (row["usage_flags"] or "").split(",")}
    if flags & _DISTRUSTED_FLAGS or any(f.endswith("_count") for f in flags):
        return "invalid_usage"
    if not all(type(c) is int and 0 <= c <= MAX_SANE_TOKENS for c in counts):
        return "invalid_usage"
    if row["total_tokens"] != sum(counts):  # the buckets always sum to the total
        return "invalid_usage"
    return Usage(*counts)


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _same(stored: Any, new: Decimal | None) -> bool:
    """Whether the stored amount is the new one, as the store would hold it: SQLite
    reads a cost back as the REAL its text became, the servers as an exact decimal."""
    if stored is None or new is None:
        return stored is None and new is None
    if isinstance(stored, float):
        return stored == float(new)
    try:
        return Decimal(str(stored)) == new
    except InvalidOperation:
        return False


async def _update_isolating(db: Repriceable, updates: list[CostUpdate]) -> list[CostUpdate]:
    """Write the updates; return those the database refused, found by halving the batch
    (an unavailable store raises: a reprice run is idempotent, run it again)."""
    try:
        await db.update_costs(updates)
        return []
    except StoreUnavailable:
        raise
    except StoreError as exc:
        if len(updates) == 1:
            logger.warning("reprice: the database refused row %s: %s", updates[0].request_id, exc)
            return updates
    middle = len(updates) // 2
    refused = await _update_isolating(db, updates[:middle])
    return refused + await _update_isolating(db, updates[middle:])


class _Tally:
    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.examined = self.changed = self.unchanged = 0
        self.skipped: Counter[str] = Counter()
        self.before = self.after = _ZERO

    def add(self, page: Page) -> None:
        self.examined += page.examined
        self.unchanged += page.unchanged
        self.skipped.update(page.skipped)
        self.changed += len(page.updates)
        for before, after in page.totals.values():
            self.before += before
            self.after += after

    def refused(self, page: Page, refused: Sequence[CostUpdate]) -> None:
        for update in refused:
            before, after = page.totals[update.request_id]
            self.before -= before
            self.after -= after
            self.changed -= 1
            self.skipped["store_refused"] += 1

    def result(self) -> RepriceResult:
        return RepriceResult(
            examined=self.examined,
            changed=self.changed,
            unchanged=self.unchanged,
            skipped=dict(sorted(self.skipped.items())),
            dry_run=self.dry_run,
            cost_before=self.before,
            cost_after=self.after,
        )
