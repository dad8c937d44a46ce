"""What a completed call costs, read on the caller's path for its budgets.

Pricing normally happens in the background; a budget needs the figure before the next
call's check. The common call (a plain, successful response in the standard tier, of a
model whose rates are whole multiples of 1e-10 USD per token) is priced here from its
normalized usage with integer arithmetic (``PriceTable.total_units``): the same total
``CallRecord.priced()`` gives, to the unit, at a third of its cost, because the Decimal
breakdown per bucket, the tool-call count and the row's other figures are left to the
writer, which prices the record in full as it does without budgets. Any other call
(a stream, an error, a service tier or server tool on the bill, a rate the integer path
does not take) goes through ``priced()`` itself, whose result the writer then reuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..record.billing import read_billing
from ..record.call import PRICED_BY_REQUESTED_MODEL
from .fleet import to_units

if TYPE_CHECKING:
    from ..record.call import CallRecord
    from ..record.usage import Usage


def completed_cost(record: CallRecord) -> tuple[Usage | None, int | None, str]:
    """(usage, total cost in units of 1e-10 USD or None, cost_status) of a completed
    call."""
    quick = _quick(record)
    if quick is not None:
        return quick
    usage, cost, status = record.priced()
    return usage, None if cost is None else to_units(cost.total, "usd"), status


def _quick(record: CallRecord) -> tuple[Usage, int, str] | None:
    if record.status != "ok" or record.stream_chunks is not None or record.tier_hint is not None:
        return None
    if record.is_priced:  # priced already (call_info() on the caller's thread): reuse it
        return None
    record.read_response()
    usage = record.normalized_usage()
    if usage is None or usage.flags:
        return None
    prices = record.ctx.prices
    if record.provider in PRICED_BY_REQUESTED_MODEL:
        entry = prices.resolve(record.model)
    else:
        entry = prices.resolve(record.served_model) or prices.resolve(record.model)
    if entry is None:
        return None
    try:
        billing: Any = read_billing(record.response, record.usage, None, entry)
    except Exception:  # the full path flags it
        return None
    if billing is not None:  # a service tier, web searches, audio: the full path
        return None
    units = prices.total_units(entry, usage, record.started_at)
    if units is None:
        return None
    return usage, units, "computed"
