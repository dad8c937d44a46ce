"""``majordomo-log demo`` as a newcomer runs it (issue 18): every command it suggests runs
as printed, its count is the database's (spooled records included), and it leaves
nothing under the home folder."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from console import SCRIPT, environment, needs_script

from majordomo_log.cli.demo import run_demo


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM llm_requests").fetchone()
    conn.close()
    return int(count)


@needs_script
def test_the_demo_leaves_home_empty_and_each_command_it_suggests_runs(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        **{k: v for k, v in environment().items() if not k.startswith(("MAJORDOMO_LOG_", "XDG_"))},
        "HOME": str(home),
    }
    done = subprocess.run(
        [str(SCRIPT), "demo", "--calls", "60"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert list(home.iterdir()) == []  # no spool, no cache under HOME
    assert sorted(p.name for p in (work / "demo-output").iterdir()) == [
        "llm_logs.db",
        "request_logs",
    ]  # its spool, empty, removed
    assert done.stdout.startswith("60 calls written to the database")
    tried = done.stdout.split("\nTry:\n", 1)[1].strip().splitlines()
    words = [shlex.split(line) for line in tried]
    assert [w[1] for w in words if w[0] == str(SCRIPT)] == ["report", "tail", "show", "prices"]
    assert all("demo-output/llm_logs.db" in w for w in words)
    for line, argv in zip(tried, words, strict=True):
        if argv[0] == "sqlite3" and shutil.which("sqlite3") is None:
            continue
        ran = subprocess.run(
            line, shell=True, capture_output=True, text=True, env=env, cwd=work, timeout=120
        )
        assert ran.returncode == 0 and ran.stdout, (line, ran.stderr)
        assert ran.stderr == "" or argv[1] == "prices", (line, ran.stderr)  # its source notes
        if argv[1:2] == ["show"]:
            assert '"body": {' in ran.stdout  # the body, found beside the database
    assert list(home.iterdir()) == []


def test_calls_that_went_by_way_of_the_spool_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A queue of 5 records for 400 calls fired at once: most go to the spool, and are
    # replayed into the database before the demo ends.
    assert asyncio.run(run_demo(tmp_path, calls=400, max_queue_records=5)) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert _rows(tmp_path / "llm_logs.db") == 400
    assert first.startswith("400 calls written to the database (")
    spooled = int(first.split("(", 1)[1].split(" of them by way of the spool")[0].replace(",", ""))
    assert 0 < spooled < 400
    assert not (tmp_path / "spool").exists()  # replayed, then removed
