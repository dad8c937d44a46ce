"""The `majordomo-log` command, run in-process on a database filled through the wrapper."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import majordomo_log as ml
from majordomo_log.cli import main, reports
from majordomo_log.cli.render import render
from majordomo_log.cli.reports import as_decimal
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
    segments = (tmp_path / "request_logs").rglob("*.seg.gz")  # the default layout
    assert sum(gzip.decompress(p.read_bytes()).count(b"\n") for p in segments) == 40


# -- read commands never write -------------------------------------------------------------

READ_COMMANDS = [
    ["tail"],
    ["report"],
    ["report", "--outliers"],
    ["show", "0190f5c2-0000-7000-8000-000000000001"],
    ["prices"],
    ["budgets", "status"],
]


def _unrelated_sqlite_file(path: Path) -> bytes:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('not a call log')")
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_read_commands_create_nothing_in_a_sqlite_file_that_is_not_a_log(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file that is not there: no empty database is made.
    code = main([*command, "--db", str(tmp_path / "absent.db")])
    out, err = capsys.readouterr()
    if command[0] == "prices":  # the price table needs no log
        assert code == 0 and "claude-haiku-4-5" in out and "with no price" not in out
    else:
        assert code == 2 and "no database at" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    # A SQLite file of something else: left byte for byte as it was.
    path = tmp_path / "notes.db"
    before = _unrelated_sqlite_file(path)
    assert main([*command, "--db", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "llm_requests" in err and "majordomo-log migrate" in err
    assert out == ""  # prices: not half a report either
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]  # no journal, no WAL


def test_read_commands_on_a_log_write_nothing(
    filled: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, bodies, ids = filled
    before = db.read_bytes()
    assert main(["tail", "--db", str(db), "-n", "1", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["prices", "--db", str(db), "--format", "json"]) == 0
    assert "my-private-model" in capsys.readouterr().out
    absent = bodies.parent / "no-bodies-here"
    assert main(["show", ids[0], "--db", str(db), "--storage", str(absent)]) == 1
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["row"]["request_id"] == ids[0] and shown["body"] is None  # the row is shown
    assert "no body folder" in err and err.count("\n") == 1
    assert not absent.exists()
    assert db.read_bytes() == before


async def _server_namespace(dialect: str) -> tuple[str, str]:
    """(URL of an empty schema or database of its own, its name)."""
    from servers import mysql_admin, require

    url = require(dialect)
    name = f"mdl_cli_ro_{uuid.uuid4().hex[:10]}"
    if dialect == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'CREATE SCHEMA "{name}"')
        finally:
            await conn.close()
        return f"{url}?schema={name}", name
    await mysql_admin(url, f"CREATE DATABASE {name}")
    return urlsplit(url)._replace(path=f"/{name}").geturl(), name


async def _tables_in(dialect: str, name: str) -> list[str]:
    from servers import require

    url = require(dialect)
    if dialect == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", name)
            return [r["tablename"] for r in rows]
        finally:
            await conn.close()
    import aiomysql

    parts = urlsplit(url)
    conn = await aiomysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (name,)
            )
            return [r[0] for r in await cur.fetchall()]
    finally:
        conn.close()


async def _drop(dialect: str, name: str) -> None:
    from servers import mysql_admin, require

    url = require(dialect)
    if dialect == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
    else:
        await mysql_admin(url, f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.servers
def test_read_commands_create_no_table_in_an_empty_server_database(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, name = asyncio.run(_server_namespace(dialect))
    try:
        for command in READ_COMMANDS:
            assert main([*command, "--db", url]) == 2, command
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "majordomo-log migrate" in err, err
            assert asyncio.run(_tables_in(dialect, name)) == [], command
    finally:
        asyncio.run(_drop(dialect, name))


@pytest.mark.servers
def test_read_commands_create_no_postgres_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from servers import require

    url = require("postgresql")
    name = f"mdl_cli_absent_{uuid.uuid4().hex[:10]}"

    async def schema_exists() -> bool:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", name))
        finally:
            await conn.close()

    try:
        assert main(["tail", "--db", f"{url}?schema={name}"]) == 2
        assert "majordomo-log migrate" in capsys.readouterr().err
        assert not asyncio.run(schema_exists())
    finally:
        asyncio.run(_drop("postgresql", name))


# -- bad arguments: one line, never a traceback ----------------------------------------------

BAD_ARGUMENTS = [
    ["tail", "-n", "99999999999999999999"],
    ["tail", "-n", "-1"],
    ["tail", "-n", "-0.5"],
    ["tail", "--status", "failed"],
    ["tail", "--since", "1y"],
    ["tail", "-n", "ten"],
    ["tail", "-n", "9" * 5000],
    ["report", "--since", "99999999999d"],
    ["report", "--since", "999999d"],  # 2,700 years before year 1
    ["report", "--since", "0001-01-01T00:00:00+01:00"],  # before year 1 in UTC
    ["report", "--until", "9999-12-31T23:59:59-14:00"],  # after 9999 in UTC
    ["report", "--since", "yesterday"],
    ["report", "--since", ""],
    ["report", "--by", "nothing"],
    ["tail", "--format", "xml"],
    ["demo", "--calls", "1000000000000"],
]


def test_bad_arguments_are_one_line_errors(
    filled: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, _ = filled
    for argv in BAD_ARGUMENTS:
        with pytest.raises(SystemExit) as info:
            main([*argv, "--db", str(db)])
        assert info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("majordomo-log "), (argv, err)
        assert "error:" in err and "usage:" not in err and "Traceback" not in err
    # The extremes that are valid still work.
    for argv in (
        ["report", "--since", "0001-01-01"],
        ["report", "--until", "9999-12-31T23:59:59"],
        ["tail", "-n", str(2**63 - 1)],
    ):
        assert main([*argv, "--db", str(db)]) == 0, argv
        assert "Traceback" not in capsys.readouterr().err


def test_bad_database_urls_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for argv, message in [
        (["tail", "--db", ""], "names no file"),
        (["tail", "--db", "sqlite://user:hunter22@/x.db"], "no user or password"),
        (["show", "x", "--db", "sqlite:///x.db?mode=rw#frag"], "no database"),
        (["tail", "--db", "postgresql://u:12#hunter22@127.0.0.1:1/db"], "percent-encode"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "hunter22" not in err, err
        assert list(tmp_path.iterdir()) == []


def test_an_unknown_grouping_is_a_config_error(filled: tuple[Path, Path, list[str]]) -> None:
    async def report() -> None:
        db = await ml.SqliteAdapter.create(filled[0])
        try:
            await reports.spend_report(db, "nothing")
        finally:
            await db.close()

    with pytest.raises(ml.ConfigError, match="cannot group by 'nothing'"):
        asyncio.run(report())


def test_render_formats_the_same_rows_three_ways() -> None:
    rows = [{"model": "gpt-4o", "calls": 2, "total_cost": Decimal("0.5")}, {"model": "x"}]
    assert render(rows, "table").splitlines() == [
        "model   calls  total_cost",
        "------  -----  ----------",
        "gpt-4o      2    0.500000",
        "x",
    ]
    assert render(rows, "csv") == "model,calls,total_cost\ngpt-4o,2,0.5\nx,,"
    assert json.loads(render(rows, "json"))[1] == {"model": "x", "calls": None, "total_cost": None}
    assert render([], "table") == "(no calls)"
