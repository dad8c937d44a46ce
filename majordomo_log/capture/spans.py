"""The wrapper's OpenTelemetry spans on the caller's path: a mixin of ``ClientWrapper``.

A call's span is opened when the call starts (a sync call: before the provider is
called; an awaited one: when its coroutine runs, so a coroutine never awaited opens
none) and is current while the provider is called, so the HTTP client's spans nest
under it. It is ended off the path, with the call's row (``telemetry/observer.py``).
None of this runs without OpenTelemetry: ``_spans`` is None then.
"""

from __future__ import annotations

from collections.abc import Callable

from ..record.call import CallRecord
from ..telemetry.protocols import CallTracing


class Spans:
    """Opening a call's span, entering and leaving it; never raises into the call."""

    _spans: CallTracing | None
    _internal_error: Callable[[Exception], None]  # ClientWrapper's

    def _start_span(self, record: CallRecord) -> None:
        assert self._spans is not None
        try:
            self._spans.start(record)
        except Exception as exc:  # telemetry never costs the call
            self._internal_error(exc)

    def _enter_span(self, record: CallRecord) -> object | None:
        """Make the call's span current while the provider is called; None if that
        fails, which costs the nesting only."""
        assert self._spans is not None
        try:
            return self._spans.enter(record.span)
        except Exception as exc:
            self._internal_error(exc)
            return None

    def _leave_span(self, token: object) -> None:
        assert self._spans is not None
        try:
            self._spans.leave(token)
        except Exception as exc:
            self._internal_error(exc)
