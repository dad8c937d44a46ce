"""``majordomo-log ui`` through the installed console script, as a user runs it: it serves
the seeded log on a free port, answers a page, and stops on SIGTERM or Ctrl-C with exit
0; a log that cannot be opened is one line and exit 2, and nothing is created."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_log import SeededLog, seeded_log

SCRIPT = Path(sys.executable).with_name("majordomo-log")
WAIT = 60.0  # seconds: a guard against a hang, not a measurement


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededLog]:
    with seeded_log("sqlite", tmp_path_factory.mktemp("ui-cli"), calls=40) as log:
        yield log


def command(*args: str) -> list[str]:
    assert SCRIPT.is_file(), f"the console script is not installed at {SCRIPT}"
    return [str(SCRIPT), *args]


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        command("ui", "--port", "0", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], WAIT)
    line = proc.stdout.readline() if ready else ""
    match = re.search(r"at (http://127\.0\.0\.1:\d+/) \(read-only; Ctrl-C to stop\)", line)
    if match is None:
        proc.kill()
        _, err = proc.communicate(timeout=WAIT)
        pytest.fail(f"no URL on the first line: {line!r}; stderr: {err[-2000:]}")
    return proc, match[1]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_console_script_serves_then_stops(seeded: SeededLog, stop: signal.Signals) -> None:
    proc, url = start("--db", seeded.db_url, "--storage", seeded.storage_url)
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as answer:
            page = answer.read().decode()
        assert answer.status == 200 and "<h2>Spend by model</h2>" in page
        call = seeded.rows[-1].request_id
        with urllib.request.urlopen(f"{url}call/{call}", timeout=WAIT) as answer:
            assert call in answer.read().decode()
    finally:
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err


def test_a_missing_log_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    done = subprocess.run(
        command("ui", "--port", "0", "--db", str(missing)),
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=tmp_path,  # no demo-output/ here: the hint would name it
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"majordomo-log: error: no database at {missing} (a read command never creates"
        " one): name a log with --db or MAJORDOMO_LOG_DB, or run `majordomo-log demo` to"
        " write a sample log to demo-output/llm_logs.db"
    ]
    assert not missing.exists()


def test_bad_options(tmp_path: Path) -> None:
    done = subprocess.run(
        command("ui", "--port", "70000"), capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 2 and "not a port number from 0 to 65535" in done.stderr
    helped = subprocess.run(command("--help"), capture_output=True, text=True, timeout=WAIT)
    assert re.search(r"^\s+ui\s+a local read-only dashboard", helped.stdout, re.M)
