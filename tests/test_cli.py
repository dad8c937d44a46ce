"""The `majordomo-log` command, run in-process on a database filled through the wrapper."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

import majordomo_log as ml
from majordomo_log._reports import as_decimal
from majordomo_log.cli import main
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client


async def _fill(db_path: Path, bodies: Path) -> list[str]:
    db = await ml.SqliteAdapter.create(db_path)
    storage = await ml.FileStorageAdapter.create(bodies)
    provider = FakeProvider(openai_usage={"prompt_tokens": 100, "completion_tokens": 10})
    openai_llm = ml.LoggingLLM(fake_openai_client(provider), db, storage, api_key_alias="k-o")
    claude = ml.LoggingLLM(fake_anthropic_client(provider), db, storage, api_key_alias="k-a")
    ids = []
    for user in ("u1", "u2", "u2"):
        with ml.tags(feature="chat", user_id=user):
            r = await openai_llm.chat.completions.create(model="gpt-4o", messages=[])
            ids.append(ml.call_info(r).request_id)
    with ml.tags(feature="support"):
        m = await claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[])
        ids.append(ml.call_info(m).request_id)
        await openai_llm.chat.completions.create(model="my-private-model", messages=[])
    await openai_llm.close()
    await claude.close()
    return ids


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    db, bodies = tmp_path / "log.db", tmp_path / "bodies"
    ids = asyncio.run(_fill(db, bodies))
    return db, bodies, ids


def _sql_total(db: Path) -> Decimal:
    with sqlite3.connect(db) as conn:
        (total,) = conn.execute("SELECT SUM(total_cost) FROM llm_requests").fetchone()
    return as_decimal(total) or Decimal(0)


def test_report_totals_match_sql(
    filled: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, _ = filled
    assert main(["report", "--db", str(db), "--by", "feature", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["feature"]: r["calls"] for r in rows} == {"chat": 3, "support": 2}
    assert sum(Decimal(r["total_cost"]) for r in rows if r["total_cost"]) == _sql_total(db)
    support = next(r for r in rows if r["feature"] == "support")
    assert support["unpriced"] == 1  # my-private-model: cost NULL, counted, never $0


@pytest.mark.parametrize("by", ["model", "provider", "user_id", "api_key_alias", "day"])
def test_report_groupings_as_csv(
    filled: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str], by: str
) -> None:
    db, _, _ = filled
    assert main(["report", "--db", f"sqlite:///{db}", "--by", by, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sum(int(r["calls"]) for r in rows) == 5
    assert sum(Decimal(r["total_cost"] or 0) for r in rows) == _sql_total(db)


def test_report_table_and_window(
    filled: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, _ = filled
    assert main(["report", "--db", str(db), "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert "gpt-4o" in out and "5 calls, total $" in out
    assert main(["report", "--db", str(db), "--until", "2000-01-01"]) == 0
    assert "(no calls)" in capsys.readouterr().out


def test_tail_and_show(
    filled: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, bodies, ids = filled
    assert main(["tail", "--db", str(db), "-n", "2", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["show", ids[0], "--db", str(db), "--storage", str(bodies)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["row"]["request_id"] == ids[0]
    assert shown["body"]["request_id"] == ids[0]
    assert shown["body"]["request"]["model"] == "gpt-4o"


def test_prices_lists_table_and_unpriced_models(
    filled: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, _ = filled
    assert main(["prices", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "claude-haiku-4-5" in out and "gemini-2.5-pro" in out
    unpriced = out.split("with no price:")[1]
    assert "my-private-model" in unpriced and "gpt-4o " not in unpriced


def test_migrate_then_up_to_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert main(["migrate", "--db", url]) == 0
    assert "applied 0001_create_llm_requests" in capsys.readouterr().out
    assert main(["migrate", "--db", url]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--db", "missing.db"], "no database at missing.db"),
        (["report", "--db", "oracle://scott:tiger@db/x"], "unsupported database URL"),
        (["show", "nope", "--db", "missing.db"], "no database"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert "tiger" not in err  # a password in a URL is never echoed


def test_demo_report_matches_sql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--calls", "40", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    total = Decimal(out.split("Total spend: $")[1].split()[0])
    assert total == _sql_total(tmp_path / "llm_logs.db").quantize(Decimal("0.000001"))
    with sqlite3.connect(tmp_path / "llm_logs.db") as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM llm_requests").fetchone()
    assert rows == 40
    assert len(list((tmp_path / "request_logs").rglob("*.json.gz"))) == 40
