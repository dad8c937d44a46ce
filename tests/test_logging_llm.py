"""``LoggingLLM``'s options: objects or the keyword arguments they replace, never both,
each checked when the wrapper is made, and each reaching the part it configures."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from duck_client import Acme

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client, fake_sync_openai_client


def test_options_objects_reach_the_writer_and_the_record(stores: Any, tmp_path: Path) -> None:
    def hook(envelope: dict[str, Any]) -> None:
        return None

    llm = ml.LoggingLLM(
        Acme(),
        stores.db,
        stores.storage,
        queue=ml.QueueOptions(batch_size=7, max_records=70, on_full="block"),
        retries=ml.RetryOptions(max_retries=2),
        bodies=ml.BodyOptions(redact=hook, max_bytes=4096),
        spool=ml.Spool(tmp_path / "spool", max_bytes=1 << 20),
    )
    writer = llm._writer
    assert writer.queue_options == ml.QueueOptions(batch_size=7, max_records=70, on_full="block")
    assert writer.retry_options == ml.RetryOptions(max_retries=2)
    assert llm._ctx.redact_hooks == (hook,) and llm._ctx.max_body_bytes == 4096
    assert writer.spool is not None and writer.spool.max_bytes == 1 << 20


def test_keyword_arguments_still_work(stores: Any) -> None:
    llm = ml.LoggingLLM(
        Acme(),
        stores.db,
        stores.storage,
        batch_size=9,
        max_retries=1,
        capture_bodies=False,
        max_body_bytes=2048,
        spool=False,
    )
    assert llm._writer.queue_options == ml.QueueOptions(batch_size=9)
    assert llm._writer.retry_options == ml.RetryOptions(max_retries=1)
    assert llm._ctx.capture_bodies is False and llm._ctx.max_body_bytes == 2048


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"queue": ml.QueueOptions(), "batch_size": 5}, "queue= or batch_size="),
        ({"retries": ml.RetryOptions(), "max_retries": 1}, "retries= or max_retries="),
        ({"bodies": ml.BodyOptions(), "redact": [print]}, "bodies= or redact="),
    ],
)
def test_an_object_and_its_keywords_together_are_refused(
    stores: Any, options: dict[str, Any], names: str
) -> None:
    with pytest.raises(ml.ConfigError, match=names):
        ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=False, **options)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"max_queue_records": 0}, "max_queue_records"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"on_full": "wait"}, "on_full"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_a_bad_keyword_is_named_as_it_was_passed(
    stores: Any, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ml.ConfigError, match=named):
        ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=False, **options)


def test_capture_bodies_takes_what_it_always_took() -> None:
    assert ml.BodyOptions(capture=0).capture is False  # type: ignore[arg-type]
    assert ml.BodyOptions(capture=1).capture is True  # type: ignore[arg-type]
    with pytest.raises(ml.ConfigError, match="capture"):
        ml.BodyOptions(capture="no")  # type: ignore[arg-type]


def test_a_redact_hook_that_is_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="redact hooks"):
        ml.BodyOptions(redact=["not callable"])  # type: ignore[list-item]


class KeyThatRaises:
    @property
    def api_key(self) -> str:
        raise RuntimeError("the key store is down")


async def test_a_wrapper_that_fails_to_build_holds_no_writer_open(stores: Any) -> None:
    with pytest.raises(RuntimeError, match="key store"):
        ml.LoggingLLM(KeyThatRaises(), stores.db, stores.storage, spool=False)
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=False)
    await llm.close()  # the last wrapper on these stores: the writer stops, stores close
    assert stores.db.closed and stores.storage.closed


def _logged(db_file: Path) -> int:
    with sqlite3.connect(db_file) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM llm_requests").fetchone()
    return int(count)


def _bodies(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAJORDOMO_LOG_DB", raising=False)
    monkeypatch.delenv("MAJORDOMO_LOG_STORAGE", raising=False)
    return tmp_path


async def test_no_stores_given_logs_to_llm_logs_db_and_request_logs(workdir: Path) -> None:
    """``LoggingLLM(client)``: rows in ./llm_logs.db, bodies in ./request_logs beside it."""
    async with ml.LoggingLLM(fake_openai_client(FakeProvider()), spool=False) as llm:
        await llm.chat.completions.create(model="gpt-4o", messages=[])
    assert _logged(workdir / "llm_logs.db") == 1
    assert _bodies(workdir / "request_logs") == 1


def test_no_stores_given_follows_the_environment_sync_client(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAJORDOMO_LOG_DB", "logs/app.db")
    monkeypatch.setenv("MAJORDOMO_LOG_STORAGE", str(workdir / "bodies"))
    with ml.LoggingLLM(fake_sync_openai_client(FakeProvider()), spool=False) as llm:
        llm.chat.completions.create(model="gpt-4o", messages=[])
    assert _logged(workdir / "logs" / "app.db") == 1
    assert _bodies(workdir / "bodies") == 1
    assert not (workdir / "llm_logs.db").exists() and not (workdir / "request_logs").exists()


def test_db_alone_without_storage_env_puts_bodies_beside_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAJORDOMO_LOG_DB", "sqlite:///demo/log.db")
    with ml.LoggingLLM(fake_sync_openai_client(FakeProvider()), spool=False) as llm:
        llm.chat.completions.create(model="gpt-4o", messages=[])
    assert _logged(workdir / "demo" / "log.db") == 1
    assert _bodies(workdir / "demo" / "request_logs") == 1


async def test_a_db_given_without_storage_still_keeps_no_bodies(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As before: db given, storage left out (or None) means no bodies, even with
    $MAJORDOMO_LOG_STORAGE set; storage=None with no db keeps none either."""
    monkeypatch.setenv("MAJORDOMO_LOG_STORAGE", str(workdir / "bodies"))
    async with ml.LoggingLLM(fake_openai_client(FakeProvider()), "mine.db", spool=False) as llm:
        await llm.chat.completions.create(model="gpt-4o", messages=[])
    with ml.LoggingLLM(fake_sync_openai_client(FakeProvider()), None, None, spool=False) as sync:
        sync.chat.completions.create(model="gpt-4o", messages=[])
    assert _logged(workdir / "mine.db") == 1 and _logged(workdir / "llm_logs.db") == 1
    assert _bodies(workdir / "bodies") == 0 and _bodies(workdir / "request_logs") == 0
