"""What sees each finished call besides the stores: span ends and metrics, off the call.

A call's row is built in the background (``delivery/prepare.py``); right after, and once
per call, ``notify`` ends the call's OpenTelemetry span (``telemetry/otel_spans.py``) with
the row's figures and hands the row to each ``CallObserver`` of its wrapper (Prometheus
counters, OpenTelemetry metrics). With ``writer="process"`` the rows are built in the
child, so the parent builds one for its observers before shipping (``observe_shipped``):
telemetry there costs the parent the pricing the child would otherwise do alone.

An observer that raises costs only its own figures: it is logged once, and neither the
row nor the other observers are affected. A call whose row is never built (dropped when
the queue is full, or unbuildable) still has its span ended (``end_unobserved``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._log import logger, warn_once
from ..record.call import CallRecord
from ..record.rows import build_row
from ..schema import Row


def notify(record: CallRecord, row: Row) -> None:
    """The row of ``record`` is built: end its span and tell its observers, once."""
    if record.observed:
        return
    record.observed = True
    ctx = record.ctx
    span = record.span
    if span is not None and ctx.spans is not None:
        record.span = None
        try:
            ctx.spans.end(span, row)
        except Exception as exc:  # telemetry never costs a row
            warn_once("span_failed", type(exc).__name__, "ending a span failed: %r", exc)
    for observer in ctx.observers:
        try:
            observer.observe(row)
        except Exception as exc:
            warn_once(
                "observer_failed",
                f"{type(observer).__name__}:{type(exc).__name__}",
                "the metrics observer %s failed (%s): its figures miss this call",
                type(observer).__name__,
                type(exc).__name__,
            )


def end_unobserved(record: CallRecord) -> None:
    """A record leaves memory without a row seen by ``notify`` (dropped, unbuildable):
    its span still ends, marked so."""
    span = record.span
    if span is None:
        return
    record.span = None
    spans = record.ctx.spans
    if spans is None:
        return
    try:
        spans.end_unwritten(span, record.status)
    except Exception as exc:
        warn_once("span_failed", type(exc).__name__, "ending a span failed: %r", exc)


def observe_shipped(records: Iterable[Any]) -> None:
    """``writer="process"``: the rows of records about to cross to the child, built here
    for this process's observers and spans (the child has neither)."""
    for record in records:
        if not isinstance(record, CallRecord) or record.observed:
            continue
        ctx = record.ctx
        if record.span is None and not ctx.observers:
            continue
        try:
            row = build_row(record, None)
        except Exception as exc:  # the child will keep it as rejected: ours is only telemetry
            logger.debug("no row for telemetry: %s", type(exc).__name__)
            end_unobserved(record)
            continue
        notify(record, row)
