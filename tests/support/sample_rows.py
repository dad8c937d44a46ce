"""A plausible ``llm_requests`` row for tests that write or observe rows directly."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from majordomo_log.schema import COLUMNS, Row

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def sample_row(started: dt.datetime = T0, **values: Any) -> Row:
    """A priced, successful gpt-4o chat call of 250 ms started at ``started``, a fresh
    request id, every other column NULL; ``values`` override any column."""
    fields: dict[str, Any] = dict.fromkeys(COLUMNS)
    fields.update(
        request_id=str(uuid.uuid4()),
        started_at=started,
        ended_at=started + dt.timedelta(milliseconds=250),
        latency_ms=250.0,
        provider="openai",
        model="gpt-4o",
        operation="chat.completions",
        stream=False,
        status="ok",
        input_tokens=100,
        output_tokens=20,
        total_tokens=120,
        total_cost=Decimal("0.00045"),
        currency="USD",
        cost_status="computed",
        tags="{}",
    )
    fields.update(values)
    return Row(**fields)
