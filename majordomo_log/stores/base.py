"""The two extension points: where metadata rows go and where bodies go.

A store is anything with these methods; no base class is needed. Every adapter
shipped here passes its protocol's contract suite, and a new one should be added
to it: tests/stores/test_contract_metadata.py, test_contract_encoding.py and
test_contract_costs.py (the ``db`` fixture: SQLite, PostgreSQL, MySQL) and the cases
on the ``store`` fixture of tests/stores/test_body_stores.py (files and S3, each in
both layout modes).

Errors are how a store tells the writer what to do with a batch, so they are
classified where they happen (``raise StoreUnavailable(...) from exc``):

* ``StoreUnavailable``: transient. The store could not take the batch now (not
  reachable, connection lost mid-batch, timed out, busy, throttled, out of disk):
  the writer retries the same batch with backoff, then spools it for later. Every
  write is idempotent by request id, so a batch written twice stores it once.
* ``StoreError`` (any other): permanent. The store answered and refused (bad
  credentials, schema mismatch, a value it rejects): retrying the same batch
  cannot help. The writer isolates the refused rows and keeps them for inspection.

Messages never contain a password or secret key: stores scrub what they know.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..schema import Body, CostUpdate, CostWindow, OutcomeUpdate, Row, RowKey


@runtime_checkable
class MetadataStore(Protocol):
    """A SQL database holding the ``llm_requests`` table.

    Optional: ``async reopen()`` (see :class:`Reopenable`). The writer looks it up
    with ``getattr``; a store without it is used as it is after a fork."""

    dialect: str  # "sqlite", "postgresql" or "mysql": which migrations and SQL to use
    url: str  # for display: never contains a password

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""
        ...

    async def write_batch(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
    ) -> Sequence[str] | None:
        """Insert rows, then apply outcome updates, in one transaction. A row whose
        request_id already exists is skipped, so re-writing a batch is harmless.

        Returns the request id of each outcome update that matched no row (in the
        order given; an empty list when all did). A store that cannot tell returns
        None, and its outcomes are counted as written.

        Raises ``StoreUnavailable`` when the batch may succeed later unchanged:
        connection refused, reset or closed mid-batch, timeouts, deadlocks and
        serialization failures, too many connections, the server shutting down or
        in recovery, a busy or locked file. Raises ``StoreError`` when it cannot:
        bad credentials, a missing table or column (schema mismatch), a value the
        database rejects, a closed store."""
        ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query written with ``?`` placeholders; rows as dicts."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class BodyStore(Protocol):
    """Somewhere to keep full request/response bodies (a folder, a bucket).

    Optional: ``async reopen()`` (see :class:`Reopenable`)."""

    url: str

    async def put_many(self, bodies: Sequence[Body]) -> list[str | None]:
        """Store each body; return one reference per body, in order.

        Raises ``StoreUnavailable`` when the batch could not be stored for a reason
        that may pass: the store is unreachable, answered 5xx or throttled
        (SlowDown, RequestTimeout, 503), the disk is full or failing (ENOSPC,
        EDQUOT, EIO). If any body of the batch failed that way the whole call
        raises, even when others were stored: the writer puts the whole batch again,
        and putting a body under the key it already has is harmless.

        Returns None in place of a reference for a body the store refused for good
        (access denied, no such bucket, a key it will never accept), logged once per
        kind: its row is still written, without a body reference. A body's request id
        and time come from a spool file, which may have been tampered with: a key is
        made only from a lower-case UUIDv7 and a datetime, and any other body gets None
        (``bodies/layout.py``: ``body_problem``)."""
        ...

    async def get(self, ref: str) -> dict[str, Any]:
        """The envelope for a reference (or a bare request id where the layout allows).

        Raises ``BodyNotFound`` for any reference that names no body in this store:
        empty, a folder, a byte range past the end, not one envelope, or pointing
        outside the store's folder, bucket or prefix (a row may hold anything): a
        reference is never followed out of the store."""
        ...

    async def close(self) -> None:
        """Release resources. Idempotent."""
        ...


@runtime_checkable
class Reopenable(Protocol):
    """A store that can drop its connections and open fresh ones: the optional
    method of both protocols above, kept out of them so that a store without it
    still is a ``MetadataStore`` / ``BodyStore``.

    Used by the writer in a child process after ``os.fork()`` (gunicorn,
    multiprocessing), before the child's first write: the child holds copies of the
    parent's sockets, pool and client, which the parent goes on using. ``reopen()``
    must not use them: no protocol goodbye (a Terminate or COM_QUIT on a shared
    socket closes the parent's session), no call into the parent's event loop.
    The child's copies are dropped and fresh ones opened from connection arguments
    the store remembered (privately: never in ``url``, a repr or a message).

    In the process that opened the store, ``reopen()`` is a reconnect: the old
    connections are closed properly, new ones opened. Either way the store is open
    afterwards, even if it was closed before."""

    async def reopen(self) -> None: ...


@runtime_checkable
class Repriceable(Protocol):
    """A metadata store whose rows can be priced again (``majordomo_log.reprice``): read
    in pages, in ``(started_at, request_id)`` order, and their cost columns rewritten in
    batches. Kept out of :class:`MetadataStore`, like :class:`Reopenable`, so that a
    store written before it still is one; every shipped SQL store has it."""

    async def cost_rows(
        self, window: CostWindow, after: RowKey | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of the window, ``schema.REPRICE_COLUMNS`` as a dict each,
        ordered by ``(started_at, request_id)`` and starting after ``after`` (the key of
        the last row of the previous page; None: from the start). Values are as the
        driver returns them (SQLite: timestamps as text, costs as floats); the key of a
        row is ``(row["started_at"], row["request_id"])``, passed back as it came."""
        ...

    async def count_cost_rows(self, window: CostWindow) -> int:
        """How many rows ``cost_rows`` would return over the whole window."""
        ...

    async def update_costs(self, updates: Sequence[CostUpdate]) -> int:
        """Set the cost columns, ``cost_status`` and ``price_version`` of each row named,
        in one transaction; return how many rows matched. A request id that is not
        there matches nothing. Errors as ``MetadataStore.write_batch``: ``StoreError``
        when the database refuses a value (the caller halves the batch to find it)."""
        ...


@runtime_checkable
class BudgetRegistry(Protocol):
    """A metadata store that keeps the budgets wrappers enforce (``llm_budgets``), so that
    ``majordomo-log budgets status`` can show them from the log alone: a wrapper built
    with ``budgets=[...]`` records their definitions when it starts. Optional, like
    :class:`Repriceable`: a store without it still is a ``MetadataStore`` (and its
    wrapper still enforces its budgets); every shipped SQL store has it."""

    async def save_budgets(self, definitions: Sequence[Mapping[str, Any]]) -> None:
        """Upsert each definition (``Budget.definition()``: JSON-able, with a non-empty
        text ``name``) by its name, in one transaction: the latest definition of a name
        wins, and budgets not named stay as they were. A definition without a usable
        name, or one JSON cannot hold, is a ``ConfigError`` before anything is written.
        Errors otherwise as ``MetadataStore.write_batch``."""
        ...

    async def budget_definitions(self) -> list[dict[str, Any]]:
        """Every recorded definition, as it was saved, ordered by name; an empty list when
        none are, including on a log whose schema predates ``llm_budgets``."""
        ...


def fetched_utc(value: Any) -> dt.datetime:
    """A timestamp column as ``MetadataStore.fetch`` returns it in any dialect (SQLite:
    ISO 8601 text with 'Z'; MySQL: a naive UTC datetime) as an aware UTC datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        raise TypeError(f"a timestamp is a {type(value).__name__}")
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value
