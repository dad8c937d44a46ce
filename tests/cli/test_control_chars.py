"""Terminal control characters in the log (a tag that clears the screen, retitles the
window, or writes over a line with '\\r'): the table output of ``tail`` and ``report``
shows them escaped and holds no control byte but its own line ends; JSON and CSV keep
every value exactly. Through the console script."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
from pathlib import Path

from console import SCRIPT, environment, needs_script, run
from log_rows import UTC, log_at, row

from majordomo_log.cli.render import render

NOW = dt.datetime.now(UTC)
HOSTILE = [
    "\x1b[2J\x1b]0;title\x07",  # clear the screen, retitle the window
    "ok\rFAKE",  # write over the start of the line
    "two\nlines\ttab",
    "c1\x85\x9b31m del\x7f",  # NEL, CSI, DEL
    "\x08\x08\x08back",
]


def exact_stdout(*args: str) -> str:
    """The command's stdout as it wrote it (``run`` reads text, which turns '\\r' into
    '\\n')."""
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, env=environment(), timeout=300)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    return done.stdout.decode()


def control_bytes(text: str) -> list[str]:
    """The control characters in ``text`` other than its line ends."""
    return [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]


@needs_script
def test_tables_escape_control_characters_json_and_csv_keep_them(tmp_path: Path) -> None:
    rows = [
        row(n, NOW - dt.timedelta(minutes=n), feature=value, user_id=value)
        for n, value in enumerate(HOSTILE, start=1)
    ]
    with log_at("sqlite", tmp_path, rows) as url:
        table = run("tail", "--db", url)
        report = run("report", "--db", url, "--by", "feature,user_id")
        as_json = run("tail", "--db", url, "--format", "json")
        as_csv = exact_stdout("tail", "--db", url, "--format", "csv")
        report_json = run("report", "--db", url, "--by", "feature", "--format", "json")
    for done in (table, report, as_json, report_json):
        assert done.returncode == 0 and done.stderr == "", done.stderr
    for done in (table, report):
        assert control_bytes(done.stdout) == [], done.stdout
        assert "\\x1b[2J\\x1b]0;title\\x07" in done.stdout
        assert "ok\\rFAKE" in done.stdout and "two\\nlines\\ttab" in done.stdout
        assert "c1\\x85\\x9b31m del\\x7f" in done.stdout
    # one table line per call: a '\n' in a value does not start a line of its own
    assert len(table.stdout.splitlines()) == 2 + len(HOSTILE)
    assert [r["feature"] for r in json.loads(as_json.stdout)] == HOSTILE
    assert [r["user_id"] for r in json.loads(as_json.stdout)] == HOSTILE
    assert [r["feature"] for r in csv.DictReader(io.StringIO(as_csv, newline=""))] == HOSTILE
    assert sorted(r["feature"] for r in json.loads(report_json.stdout)) == sorted(HOSTILE)


def test_headers_and_every_control_character_are_escaped() -> None:
    every = "".join(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)))
    rows = [{every: every, "plain": "é ü ☃ \\x1b"}]
    out = render(rows, "table")
    assert control_bytes(out) == [] and len(out.splitlines()) == 3
    assert "\\x00\\x01" in out and "\\x9f" in out and "é ü ☃" in out
    assert json.loads(render(rows, "json")) == rows  # data formats keep it all
