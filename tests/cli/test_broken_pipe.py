"""A reader that closes the pipe early (``majordomo-log tail -n 0 | true``, ``report |
head -1``): the console script prints nothing on stderr and exits 141 (128 + SIGPIPE),
whether the pipe broke while it was writing or at its last flush."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from console import SCRIPT, environment, needs_script
from log_rows import UTC, log_at, row

pytestmark = needs_script

NOW = dt.datetime.now(UTC)


def closed_early(*args: str) -> tuple[int, str]:
    """The command with its stdout a pipe whose reader is gone before it writes."""
    proc = subprocess.Popen(
        [str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads: the command's first write (or flush) breaks
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize(
    "argv",
    [
        ["tail", "-n", "0"],
        ["tail", "-n", "0", "--format", "json"],
        ["report"],
        ["report", "--by", "feature", "--format", "csv"],
    ],
)
def test_a_pipe_closed_early_ends_quietly_with_141(argv: list[str], tmp_path: Path) -> None:
    rows = [row(n, NOW - dt.timedelta(minutes=n), feature=f"f{n % 3}") for n in range(1, 400)]
    with log_at("sqlite", tmp_path, rows) as url:
        code, err = closed_early(*argv, "--db", url)
    assert (code, err) == (141, "")
