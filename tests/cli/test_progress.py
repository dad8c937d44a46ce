"""Progress bars on the long commands (``demo``, ``reprice``, ``spool replay``): drawn on
stderr when it is a terminal (or with ``--progress``), with counts reaching the total
and a rate; nothing when stderr is a pipe, or with ``--no-progress``. And the callbacks
the library functions take, which the bars are drawn from."""

from __future__ import annotations

import datetime as dt
import io
import re
import sqlite3
from pathlib import Path

import pytest
from console import needs_script, run, run_on_terminal
from log_rows import UTC, row

import majordomo_log as ml
from majordomo_log.cli.progress import progress_bar, wanted
from majordomo_log.delivery.replay import replay_spool
from majordomo_log.delivery.spool import Spool, SpoolEntry

START = dt.datetime(2026, 3, 1, tzinfo=UTC)


def counts(drawn: str) -> list[tuple[int, int]]:
    """Every ``done/total`` the bar showed, in order."""
    return [(int(a), int(b)) for a, b in re.findall(r"\b(\d+)/(\d+) \[", drawn)]


def spool_with(folder: Path, db_url: str, sizes: list[int], first: int = 0) -> int:
    """Batch files of ``sizes`` rows each for ``db_url``; the rows in all."""
    spool, n = Spool(folder), first
    for size in sizes:
        entries = [SpoolEntry(row(n + i, START + dt.timedelta(seconds=n + i))) for i in range(size)]
        spool.append(entries, reason="test", db=db_url, storage=None)
        n += size
    return n - first


def rows_in(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM llm_requests").fetchone()
    conn.close()
    return int(count)


# -- the bar itself ------------------------------------------------------------------------


def test_the_bar_shows_counts_total_and_rate_and_is_off_without_a_terminal() -> None:
    shown = io.StringIO()
    with progress_bar("copying", "rows", show=True, stream=shown) as progress:
        for done in (0, 1, 2, 3):
            progress(done, 3)
    drawn = shown.getvalue()
    assert drawn.startswith("\rcopying: ") and drawn.endswith("\n")
    assert counts(drawn)[-1] == (3, 3) and "rows/s]" in drawn

    silent = io.StringIO()  # not a terminal, and nothing forced: nothing at all
    with progress_bar("copying", "rows", stream=silent) as progress:
        progress(1, 3)
    assert silent.getvalue() == ""
    assert not wanted(None, silent) and wanted(True, silent) and not wanted(False, silent)


def test_a_bar_that_does_not_fill_ends_its_line_when_the_work_fails() -> None:
    shown = io.StringIO()
    with pytest.raises(RuntimeError), progress_bar("copying", "rows", show=True, stream=shown) as p:
        p(0, 10)
        p(4, 10)
        raise RuntimeError("the store went away")
    assert counts(shown.getvalue())[-1] == (4, 10) and shown.getvalue().endswith("\n")


# -- the library's callbacks ------------------------------------------------------------


async def test_replay_reports_every_file_in_records_whatever_became_of_it(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    folder = tmp_path / "spool"
    mine = spool_with(folder, db.url, [3, 5])
    other = spool_with(folder, "sqlite:///elsewhere.db", [4], first=100)  # passed over
    calls: list[tuple[int, int | None]] = []
    try:
        result = await replay_spool(Spool(folder), db, None, progress=lambda *a: calls.append(a))
    finally:
        await db.close()
    assert (result.records, result.skipped) == (mine, 1)
    total = mine + other
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) == 4  # the start, then each of the three files


# -- the commands: through the console script ----------------------------------------------


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = run("demo", "--calls", "120", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out / "llm_logs.db"


@needs_script
def test_demo_draws_its_calls_on_a_terminal_and_prints_its_report_after(tmp_path: Path) -> None:
    code, out, drawn = run_on_terminal("demo", "--calls", "400", "--out", str(tmp_path))
    assert code == 0
    shown = counts(drawn)
    assert shown[-1] == (400, 400) and all(total == 400 for _, total in shown)
    assert "calls/s]" in drawn and drawn.endswith("\r\n")  # the pty turns \n into \r\n
    assert out.startswith("400 calls written to the database")
    assert "\r" not in out  # stdout: the report only
    assert rows_in(tmp_path / "llm_logs.db") == 400


@needs_script
@pytest.mark.parametrize("columns", [100, 0])
def test_reprice_draws_its_rows_on_a_terminal(demo_db: Path, tmp_path: Path, columns: int) -> None:
    db = tmp_path / "log.db"
    db.write_bytes(demo_db.read_bytes())
    code, out, drawn = run_on_terminal("reprice", "--db", str(db), "--dry-run", columns=columns)
    assert code == 0 and "120 rows examined" in out
    assert drawn.startswith("\rrepricing: ") and counts(drawn)[-1] == (120, 120)
    width = columns or 80  # a terminal nobody sized: drawn 80 wide, not cut to nothing
    assert max(len(line) for line in re.split(r"[\r\n]+", drawn)) <= width


@needs_script
def test_spool_replay_forced_on_through_a_pipe(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    total = spool_with(tmp_path / "spool", "sqlite:///anywhere.db", [30, 30, 15])
    done = run(
        "spool",
        "replay",
        "--db",
        str(db),
        "--storage",
        str(tmp_path / "bodies"),
        "--spool-dir",
        str(tmp_path / "spool"),
        "--any-store",
        "--progress",
    )
    assert done.returncode == 0, done.stderr
    assert counts(done.stderr)[-1] == (total, total) and "records/s]" in done.stderr
    assert f"replayed {total} records from 3 files" in done.stdout
    assert rows_in(db) == total


@needs_script
def test_nothing_is_drawn_into_a_pipe(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    db.write_bytes(demo_db.read_bytes())
    spool_with(tmp_path / "spool", "sqlite:///anywhere.db", [10, 10])
    elsewhere = ["--storage", str(tmp_path / "bodies"), "--spool-dir", str(tmp_path / "spool")]
    for argv in (
        ["demo", "--calls", "50", "--out", str(tmp_path / "demo")],
        ["reprice", "--db", str(db), "--dry-run"],
        ["spool", "replay", "--db", str(db), "--any-store", *elsewhere],
    ):
        done = run(*argv)
        assert done.returncode == 0, (argv, done.stderr)
        assert done.stderr == "", argv
        assert "\r" not in done.stdout and "/s]" not in done.stdout, argv


@needs_script
def test_no_progress_keeps_a_terminal_clean(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    db.write_bytes(demo_db.read_bytes())
    code, out, drawn = run_on_terminal("reprice", "--db", str(db), "--dry-run", "--no-progress")
    assert code == 0 and "120 rows examined" in out and drawn == ""
