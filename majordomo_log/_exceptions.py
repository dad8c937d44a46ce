"""Exceptions raised by majordomo-log.

Nothing here is ever raised into a wrapped LLM call because logging failed: the
logging path swallows, counts and logs its own failures. These reach code that talks
to majordomo-log directly (opening stores, the CLI, configuration), with one exception
on purpose: ``BudgetExceeded``, raised by a wrapped call that a hard budget refused
before the provider was called.

    MajordomoLogError
    ├── ConfigError            bad price file, bad URL, bad option value
    ├── StoreError             a metadata or body store failed
    │   ├── StoreUnavailable   transient: connection refused/reset, timeout
    │   └── MigrationError     the schema could not be brought up to date
    ├── BodyNotFound           storage.get() found no body for the reference
    ├── SpoolFull              the spool is over its size cap, or its disk refused a batch
    ├── SpoolCorrupt           a spool file cannot be read back (moved to rejected/)
    └── BudgetExceeded         a hard budget refused a call (the provider was not called)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any


class MajordomoLogError(Exception):
    """Base class of every error majordomo-log raises."""


class ConfigError(MajordomoLogError, ValueError):
    """A configuration value (price file, URL, option) is invalid."""


class StoreError(MajordomoLogError):
    """A metadata or body store failed."""


class StoreUnavailable(StoreError):
    """The store could not be reached; retrying later may succeed."""


class MigrationError(StoreError):
    """A schema migration failed to apply."""


class BodyNotFound(MajordomoLogError, LookupError):
    """No stored body matches the reference."""


class SpoolFull(MajordomoLogError):
    """The spool could not take a batch: over its size cap, or the disk refused it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "spool_full" (cap or ENOSPC) or "spool_error"


class SpoolCorrupt(MajordomoLogError):
    """A spool file that cannot be read back."""


class BudgetExceeded(MajordomoLogError):
    """A hard budget refused a call before the provider was called; the attempt is logged
    with ``status='blocked'``.

    ``budget`` is the ``ml.Budget``, ``scope_value`` the values of its scope tags for
    this call (``()`` for an unscoped budget), ``spend`` what was counted in the period
    (for a ``per="call"`` cap: the estimate of the call's largest possible cost),
    ``limit`` the budget's limit (both in the budget's unit: dollars as ``Decimal``,
    tokens or requests as ``int``), ``period_end`` when the period ends (aware UTC;
    None for ``"total"`` and ``"call"``), ``request_id`` the blocked row's id."""

    def __init__(
        self,
        message: str,
        *,
        budget: Any,
        scope_value: tuple[str, ...],
        spend: Decimal | int,
        limit: Decimal | int,
        period_end: dt.datetime | None,
        request_id: str,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.scope_value = scope_value
        self.spend = spend
        self.limit = limit
        self.period_end = period_end
        self.request_id = request_id
