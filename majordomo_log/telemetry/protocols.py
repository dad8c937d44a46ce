"""The two extension points of telemetry, apart so that a call's context can name them
without importing what implements them (``record/call.py`` holds them per wrapper)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..schema import Row


@runtime_checkable
class CallObserver(Protocol):
    """Told of every call of the wrappers it is given to (``LoggingLLM(metrics=[...])``),
    once, with the call's row as the store gets it. Runs on the writer's thread, never on
    the caller's path; must be thread-safe (wrappers on several stores share it) and
    should be quick (it delays the writer). ``ml.PrometheusMetrics`` is one."""

    def observe(self, row: Row) -> None: ...


class CallTracing(Protocol):
    """A wrapper's spans (``telemetry/otel_spans.py``): opened on the caller's path when a
    call starts (``start`` sets ``record.span`` and ``record.trace_ids``), current while
    the provider is called (``enter``/``leave``), ended off the path with the call's row,
    or without one when the call is never written (dropped)."""

    def start(self, record: Any) -> None: ...

    def enter(self, span: Any) -> object: ...

    def leave(self, token: Any) -> None: ...

    def end(self, span: Any, row: Row) -> None: ...

    def end_unwritten(self, span: Any, status: str) -> None: ...
