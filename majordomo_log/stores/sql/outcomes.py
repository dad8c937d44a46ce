"""Outcome updates that matched no row: what each SQL store's ``write_batch`` returns.

Every store applies a batch's outcome updates (``UPDATE llm_requests SET outcome ...``)
after its rows, in the same transaction, then asks which of the ids it was given are
in the table: an update whose id is not there changed nothing, and the writer says so
(a warning naming the id, ``stats().outcomes_unmatched``) instead of staying silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ...schema import OutcomeUpdate

IDS_PER_QUERY = 500  # ids per ``IN (...)``: under every dialect's limit on parameters


def id_chunks(outcomes: Sequence[OutcomeUpdate]) -> Iterator[list[str]]:
    """The distinct request ids of ``outcomes``, ``IDS_PER_QUERY`` at a time."""
    ids = list(dict.fromkeys(request_id for request_id, _, _ in outcomes))
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


def unmatched(outcomes: Sequence[OutcomeUpdate], present: Iterable[str]) -> list[str]:
    """The request id of each update whose row is not among ``present``, in order."""
    found = set(present)
    return [request_id for request_id, _, _ in outcomes if request_id not in found]
