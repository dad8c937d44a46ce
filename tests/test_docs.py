"""The docs stay true: their examples run as written, their schema and view tables match
the migrations, their CLI examples run on a demo log (the README's first screen has its
own tests: test_readme.py)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import openai
import pytest

from majordomo_log.schema import COLUMNS
from majordomo_log.testing import FakeProvider, fake_openai_client, fake_sync_openai_client

DOCS = Path(__file__).parents[1] / "docs"


def _doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _run_section(doc: str, heading: str) -> None:
    code = _section_code(doc, heading)
    exec(compile(code, f"docs/{doc}", "exec"), {"__name__": "docs"})


def _section_code(doc: str, heading: str) -> str:
    section = _doc(doc).split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {heading}"
    return match.group(1)


def test_async_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = FakeProvider(openai_usage={"prompt_tokens": 10, "completion_tokens": 5})
    client = fake_openai_client(provider)  # built before the SDK class is swapped below
    monkeypatch.setattr(openai, "AsyncOpenAI", lambda: client)
    monkeypatch.chdir(tmp_path)
    _run_section("usage.md", "An async service")
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "1 0 0"  # written, dropped, pending
    with sqlite3.connect(tmp_path / "llm_logs.db") as conn:
        row = conn.execute(
            "SELECT feature, user_id, workflow, api_key_alias, outcome, total_tokens, cost_status"
            " FROM llm_requests"
        ).fetchone()
    assert row == ("chat", "u-42", "support", "prod-key-1", "accepted", 15, "computed")
    assert len(list((tmp_path / "request_logs").rglob("*.seg.gz"))) == 1  # one batch, one segment


def test_sync_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = FakeProvider(openai_usage={"prompt_tokens": 10, "completion_tokens": 5})
    client = fake_sync_openai_client(provider)
    monkeypatch.setattr(openai, "OpenAI", lambda: client)
    monkeypatch.chdir(tmp_path)
    _run_section("usage.md", "A sync program")
    assert capsys.readouterr().out.splitlines()[-1] == "1"
    with sqlite3.connect(tmp_path / "llm_logs.db") as conn:
        row = conn.execute(
            "SELECT feature, user_id, outcome, total_tokens, cost_status FROM llm_requests"
        ).fetchone()
    assert row == ("chat", "u-42", "accepted", 15, "computed")
    assert len(list((tmp_path / "request_logs").rglob("*.seg.gz"))) == 1


def test_schema_table_matches_the_migrations(tmp_path: Path) -> None:
    block = _doc("schema.md").split("<!-- schema:start -->", 1)[1]
    block = block.split("<!-- schema:end -->", 1)[0]
    documented = [
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2])
        for line in block.strip().splitlines()[2:]
    ]
    import asyncio

    import majordomo_log as ml

    async def create() -> None:
        db = await ml.SqliteAdapter.create(tmp_path / "schema.db")
        await db.close()

    asyncio.run(create())
    with sqlite3.connect(tmp_path / "schema.db") as conn:
        actual = [(r[1], r[2]) for r in conn.execute("PRAGMA table_info(llm_requests)")]
    assert documented == actual
    assert [name for name, _ in actual] == list(COLUMNS)


def test_budgets_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # gpt-4o-mini at $0.15/M input, $0.60/M output: 1000 + 500 tokens cost $0.00045, so
    # the third call of the day finds u-42 at $0.0009... and the fourth at $0.00135
    provider = FakeProvider(openai_usage={"prompt_tokens": 1000, "completion_tokens": 500})
    client = fake_sync_openai_client(provider)
    monkeypatch.setattr(openai, "OpenAI", lambda: client)
    monkeypatch.chdir(tmp_path)
    _run_section("budgets.md", "A first budget, end to end")
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "$0.001 per day by user_id ('u-42',) 0.00135 0.001"
    assert len(provider.requests) == 3  # the fourth was refused before the provider
    with sqlite3.connect(tmp_path / "llm_logs.db") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM llm_requests ORDER BY 1")]
    assert statuses == ["blocked", "ok", "ok", "ok"]


def test_views_table_matches_the_migrations(tmp_path: Path) -> None:
    """Each shipped view's documented columns: its group columns (when they are columns),
    then the rest, in the order the view has them."""
    import asyncio

    import majordomo_log as ml

    block = _doc("schema.md").split("<!-- views:start -->", 1)[1].split("<!-- views:end -->", 1)[0]
    documented = {}
    for line in block.strip().splitlines()[2:]:
        name, keys, columns = (cell.strip() for cell in line.strip().strip("|").split("|"))
        documented[name.strip("`")] = [*keys.split(", "), *columns.split(", ")]

    async def create() -> None:
        db = await ml.SqliteAdapter.create(tmp_path / "views.db")
        await db.close()

    asyncio.run(create())
    with sqlite3.connect(tmp_path / "views.db") as conn:
        views = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")]
        actual = {v: [r[1] for r in conn.execute(f"PRAGMA table_info({v})")] for v in views}
    assert sorted(documented) == sorted(actual)
    for view, columns in actual.items():
        assert [c for c in documented[view] if c in columns] == columns, view
        assert set(documented[view]) - set(columns) <= {"priced call"}, view


def test_the_cli_examples_run_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI section's examples, each run on a demo log, and the list of groupings it
    gives is the one ``report --by`` takes."""
    import shlex

    from majordomo_log.cli import main, reports

    section = _doc("cli.md")
    examples = re.findall(r"For example:\n\n```sh\n(.*?)```", section, re.S)[0]
    commands = [shlex.split(line, comments=True) for line in examples.strip().splitlines()]
    assert len(commands) >= 4 and all(c[0] == "majordomo-log" for c in commands)
    assert main(["demo", "--calls", "40", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    for command in commands:
        assert main([*command[1:], "--db", str(tmp_path / "llm_logs.db")]) == 0, command
        out, err = capsys.readouterr()
        assert out and err == "", command
    listed = section.split("`report --by` groups by", 1)[1].split("(default", 1)[0]
    assert re.findall(r"`(\w+)`", listed) == list(reports.GROUPINGS)


def test_dashboard_section_has_its_commands_and_screenshot() -> None:
    from majordomo_log.cli.main import build_parser

    section = _doc("dashboard.md").split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line.split("#")[0].split() for line in block.group(1).splitlines()]
    assert commands and all(c[:2] == ["majordomo-log", "ui"] for c in commands)
    for words in commands:  # every option shown is one the command takes
        args = build_parser().parse_args(words[1:])
        assert args.command == "ui"
    image = re.search(r"!\[[^\]]+\]\((images/[^)]+\.png)\)", section)
    assert image is not None
    png = (DOCS / image.group(1)).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
