"""`majordomo-log reprice`: the demo's fine-tuned calls, logged unpriced, get their price
once a price file has it; a second run changes nothing. Run through the installed
console script, as a user runs it. Its progress bar: tests/cli/test_progress.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from majordomo_log.cli import main
from majordomo_log.cli.reports import as_decimal

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("majordomo-log")
PRICE_FILE = """
models:
  - id: acme-ft
    provider: openai
    match: '^ft:gpt-4o:acme:.*$'
    prices:
      - effective: "2024-08-06"
        input: "3.75"
        output: "15.00"
        cache_read: "1.875"
"""


def run(*args: str, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout, whichever is installed
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=stderr is not None, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--calls", "150", "--out", str(out)]) == 0
    return out / "llm_logs.db"


def ft_rows(db: Path) -> list[tuple[str, str | None, float | None, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT cost_status, price_version, total_cost, usage_flags FROM llm_requests"
            " WHERE model LIKE 'ft:%' ORDER BY request_id"
        ).fetchall()


def total(db: Path) -> Decimal:
    with sqlite3.connect(db) as conn:
        (value,) = conn.execute("SELECT SUM(total_cost) FROM llm_requests").fetchone()
    return as_decimal(value) or Decimal(0)


@pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is not installed")
def test_the_demos_fine_tuned_calls_are_priced_once_a_price_exists(
    demo_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    db.write_bytes(demo_db.read_bytes())
    prices = tmp_path / "ft.yaml"
    prices.write_text(PRICE_FILE)
    before = ft_rows(db)
    assert before and {r[0] for r in before} == {"unknown_model"}
    spend_before = total(db)

    dry = run("reprice", "--db", str(db), "--prices", str(prices), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{len(before)} would change" in dry.stdout and "dry run" in dry.stdout
    assert ft_rows(db) == before

    done = run("reprice", "--db", str(db), "--prices", str(prices), "--model", "ft:gpt-4o:*")
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} rows examined: {len(before)} changed, 0 unchanged" in done.stdout
    assert done.stderr == ""  # no terminal, no progress bar
    after = ft_rows(db)
    assert {(r[0], r[1]) for r in after} == {("computed", "acme-ft@2024-08-06+custom")}
    assert all(r[2] is not None and r[2] > 0 for r in after)
    added = sum(as_decimal(r[2]) or Decimal(0) for r in after)
    assert total(db) == spend_before + added

    again = run("reprice", "--db", str(db), "--prices", str(prices))
    assert again.returncode == 0, again.stderr
    assert " 0 changed, " in again.stdout
    assert ft_rows(db) == after


def test_the_summary_names_each_reason(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "log.db"
    db.write_bytes(demo_db.read_bytes())
    assert main(["reprice", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "150 rows examined: 0 changed" in out
    # the demo's rate-limited calls (error) and its fine-tuned calls (no price)
    assert "skipped: error 2, unknown_model " in out


def test_reprice_creates_no_database_and_no_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reprice", "--db", str(tmp_path / "absent.db")]) == 2
    assert "no database at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    notes = tmp_path / "notes.db"
    with sqlite3.connect(notes) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    conn.close()
    assert main(["reprice", "--db", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "no llm_requests table" in err and err.count("\n") == 1
    with sqlite3.connect(notes) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert tables == {"notes"}


def test_a_bad_price_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{id: x}]")
    assert main(["reprice", "--db", str(tmp_path / "x.db"), "--prices", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'prices' must be a non-empty list" in err and err.count("\n") == 1
