"""The two extension points: where metadata rows go and where bodies go.

A store is anything with these methods; no base class is needed. Every adapter
shipped here passes the same contract suite (tests/contract), and a new one
should too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

Row = tuple[Any, ...]  # one llm_requests row, in majordomo_log._record.COLUMNS order
OutcomeUpdate = tuple[str, str, dt.datetime]  # (request_id, outcome, when)
Body = tuple[str, dt.datetime, bytes]  # (request_id, started_at, uncompressed JSON envelope)


@runtime_checkable
class MetadataStore(Protocol):
    """A SQL database holding the ``llm_requests`` table."""

    dialect: str  # "sqlite", "postgresql" or "mysql": which migrations and SQL to use
    url: str  # for display: never contains a password

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""
        ...

    async def write_batch(self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]) -> None:
        """Insert rows, then apply outcome updates, in one transaction. A row whose
        request_id already exists is skipped, so re-writing a batch is harmless."""
        ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query written with ``?`` placeholders; rows as dicts."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class BodyStore(Protocol):
    """Somewhere to keep full request/response bodies (a folder, a bucket)."""

    url: str

    async def put_many(self, bodies: Sequence[Body]) -> list[str | None]:
        """Store each body; return its reference, or None for a body that failed."""
        ...

    async def get(self, ref: str) -> dict[str, Any]:
        """The envelope for a reference (or a bare request id where the layout allows)."""
        ...

    async def close(self) -> None:
        """Release resources. Idempotent."""
        ...
