"""Hard budgets' refusals, as a mixin of ``ClientWrapper`` (``capture/wrapper.py``): a
call a hard budget refuses is logged as a ``blocked`` row and ``BudgetExceeded`` is
raised before the provider is called. Whether to refuse is ``budgets/guard.py``'s
``check``; this is what the wrapper does with the answer, on the call's path.

A mixin of one object, like ``capture/control.py``'s: it reads the wrapper's private
state (its guard, its client's surface) and calls its record-making and submitting
methods, declared below and set by ``ClientWrapper.__init__``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .._exceptions import BudgetExceeded
from .methods import snapshot

if TYPE_CHECKING:
    from ..budgets.guard import BudgetGuard
    from ..record.call import CallRecord


class Refusals:
    """``_refuse_over_budget`` and its kin, for ``ClientWrapper``."""

    # The wrapper's state and methods this mixin uses (capture/wrapper.py sets them).
    _guard: BudgetGuard | None
    _surface: str  # capture/methods.client_surface of the client: "sync", "async", "both"
    _new_record: Callable[..., CallRecord]
    _submit: Callable[[CallRecord], None]
    _api_key_hash: Callable[[], str | None]
    _internal_error: Callable[[Exception], None]

    def _refuse_over_budget(
        self,
        record: CallRecord,
        kwargs: dict[str, Any],
        args: tuple[Any, ...],
        shown: Any,
        target: Any = None,
        attr: str = "",
        request: bytes | None = None,
    ) -> Coroutine[Any, Any, Any] | None:
        """None when the budgets allow this call. Otherwise the attempt is logged as a
        ``blocked`` row (its body ``request``, or a snapshot of ``args`` and ``shown``)
        and ``BudgetExceeded`` is raised, before the provider is called: here for a
        blocking method, or (``target.<attr>`` async) when the returned coroutine is
        awaited, where the caller awaits every other outcome of the call. The method is
        looked up only for a refusal: an allowed call pays for the check alone."""
        assert self._guard is not None
        refusal = self._guard.check(record, kwargs)
        if refusal is None:
            return None
        self._log_blocked(record, snapshot(args, shown) if request is None else request, refusal)
        method = None if target is None else getattr(target, attr, None)
        surface = self._surface
        if method is not None and (
            surface == "async"
            or (surface == "both" and inspect.iscoroutinefunction(inspect.unwrap(method)))
        ):
            return _raise_when_awaited(refusal)
        raise refusal

    def _refuse_unlogged(
        self,
        operation: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        target: Any = None,
        attr: str = "",
    ) -> Coroutine[Any, Any, Any] | None:
        """``_refuse_over_budget`` for a call whose response the caller reads as raw bytes
        (``with_streaming_response``, ``with_raw_response`` with ``stream=True``): not
        logged, but refused like any other once a hard budget is spent."""
        try:
            record = self._new_record(operation, kwargs.get("model"), True)
        except Exception as exc:
            self._internal_error(exc)
            return None
        return self._refuse_over_budget(record, kwargs, args, kwargs, target, attr)

    def _wrap_unlogged(self, target: Any, attr: str, operation: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            # with_streaming_response returns a context manager, sync or async, never a
            # coroutine: the refusal is raised here, where the caller opens it
            self._refuse_unlogged(operation, args, kwargs)
            return getattr(target, attr)(*args, **kwargs)

        call.__name__ = attr
        return call

    def _log_blocked(self, record: CallRecord, request: bytes, refusal: BudgetExceeded) -> None:
        try:
            record.block(str(refusal))
            if record.api_key_hash is None:
                record.api_key_hash = self._api_key_hash()
            record.request_json = request
        except Exception as error:
            self._internal_error(error)
            return
        self._submit(record)


async def _raise_when_awaited(refusal: BudgetExceeded) -> Any:
    raise refusal
