"""The queue and retry options: checked when made, and one writer per pair of stores
whatever each wrapper asks for, with a warning naming what it asked for in vain."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from duck_client import Acme

import majordomo_log as ml
from majordomo_log._exceptions import ConfigError
from majordomo_log.delivery.options import QueueOptions, RetryOptions


@pytest.mark.parametrize(
    "make",
    [
        lambda: QueueOptions(batch_size=0),
        lambda: QueueOptions(batch_size=True),
        lambda: QueueOptions(flush_interval=0),
        lambda: QueueOptions(flush_interval=float("nan")),
        lambda: QueueOptions(max_records=0),
        lambda: QueueOptions(max_bytes=1023),
        lambda: QueueOptions(on_full="wait"),  # type: ignore[arg-type]
        lambda: RetryOptions(max_retries=-1),
        lambda: RetryOptions(backoff_base=-0.1),
        lambda: RetryOptions(backoff_cap=float("inf")),
    ],
)
def test_options_refuse_bad_values_with_a_config_error(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()
    assert issubclass(ConfigError, ValueError)  # callers catching ValueError still do


def test_a_wrapper_refuses_bad_queue_values_with_a_config_error(stores: Any) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        ml.LoggingLLM(Acme(), stores.db, stores.storage, batch_size=0, spool=False)


async def test_a_wrapper_sharing_stores_is_told_its_options_are_ignored(
    stores: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=tmp_path / "spool")
    with caplog.at_level(logging.WARNING, logger="majordomo_log"):
        same = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=tmp_path / "spool")
        assert not _warnings(caplog)  # the same options: nothing to say
        other = ml.LoggingLLM(
            Acme(), stores.db, stores.storage, spool=tmp_path / "spool", batch_size=500
        )
        repeated = ml.LoggingLLM(
            Acme(), stores.db, stores.storage, spool=tmp_path / "spool", batch_size=500
        )
        again = ml.LoggingLLM(
            Acme(), stores.db, stores.storage, spool=tmp_path / "spool", max_retries=8
        )
    # Each ignored request is told, once: the repeated one adds nothing.
    assert [r.getMessage() for r in _warnings(caplog)] == [
        f"the writer for {stores.db.url} already runs with batch_size=1000; this wrapper's "
        "batch_size=500 is ignored: wrappers sharing stores share one writer",
        f"the writer for {stores.db.url} already runs with max_retries=5; this wrapper's "
        "max_retries=8 is ignored: wrappers sharing stores share one writer",
    ]
    for llm in (again, repeated, other, same, first):
        await llm.close()


async def test_the_warning_names_every_option_that_differs(
    stores: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=tmp_path / "a")
    with caplog.at_level(logging.WARNING, logger="majordomo_log"):
        other = ml.LoggingLLM(
            Acme(), stores.db, stores.storage, spool=tmp_path / "b", on_full="block"
        )
    (record,) = _warnings(caplog)
    message = record.getMessage()
    assert "already runs with on_full='spill', spool=" in message
    assert f"this wrapper's on_full='block', spool={str(tmp_path / 'b')!r} are ignored" in message
    await other.close()
    await first.close()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "majordomo_log"]


async def test_a_wrapper_asking_for_another_sigterm_handling_is_told(
    stores: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=tmp_path / "spool")
    with caplog.at_level(logging.WARNING, logger="majordomo_log"):
        other = ml.LoggingLLM(
            Acme(), stores.db, stores.storage, spool=tmp_path / "spool", handle_sigterm=False
        )
    (record,) = _warnings(caplog)
    assert "already runs with handle_sigterm=True" in record.getMessage()
    assert "this wrapper's handle_sigterm=False is ignored" in record.getMessage()
    await other.close()
    await first.close()
