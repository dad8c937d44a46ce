"""What the commands print about the log: a SQLite log as a path that, pasted back as
``--db``, names the same file; the bodies found beside the SQLite file given; a missing
log's hint that leads somewhere; ``show``'s exit status when a body is missing (issue 18)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from console import environment, needs_script

import majordomo_log as ml
from majordomo_log.cli import main
from majordomo_log.testing import FakeProvider, fake_openai_client


async def _log(db: Path, bodies: Path | None) -> list[str]:
    """Two calls; their bodies in ``bodies`` (None: bodies not captured)."""
    store = await ml.SqliteAdapter.create(db)
    storage = None if bodies is None else await ml.FileStorageAdapter.create(bodies)
    llm = ml.LoggingLLM(
        fake_openai_client(FakeProvider()), store, storage, spool=db.parent / "spool"
    )
    ids = []
    for _ in range(2):
        reply = await llm.chat.completions.create(model="gpt-4o", messages=[])
        ids.append(ml.call_info(reply).request_id)
    await llm.close()
    return ids


@pytest.fixture
def demo_like(tmp_path: Path) -> tuple[Path, list[str]]:
    """A log where the demo writes one: ``demo-output/llm_logs.db`` and its bodies in
    ``demo-output/request_logs``; the working directory is ``tmp_path``."""
    out = tmp_path / "demo-output"
    ids = asyncio.run(_log(out / "llm_logs.db", out / "request_logs"))
    return tmp_path, ids


def _run_in(folder: Path, *argv: str) -> tuple[int, str, str]:
    import subprocess

    from console import SCRIPT

    env = {k: v for k, v in environment().items() if not k.startswith("MAJORDOMO_LOG_")}
    done = subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, env=env, cwd=folder, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


@needs_script
def test_show_finds_the_bodies_beside_the_sqlite_file(demo_like: tuple[Path, list[str]]) -> None:
    folder, ids = demo_like
    code, out, err = _run_in(folder, "show", ids[0], "--db", "demo-output/llm_logs.db")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["body"]["request_id"] == ids[0] and "$error" not in json.dumps(shown)


@needs_script
def test_a_body_that_cannot_be_found_is_an_error_after_the_row(
    demo_like: tuple[Path, list[str]],
) -> None:
    folder, ids = demo_like
    shutil.rmtree(folder / "demo-output" / "request_logs")
    code, out, err = _run_in(folder, "show", ids[0], "--db", "demo-output/llm_logs.db")
    assert code == 1
    shown = json.loads(out)
    assert shown["row"]["request_id"] == ids[0] and shown["body"] is None
    assert err.count("\n") == 1 and err.startswith("majordomo-log: error: the body of this call")
    assert "demo-output/request_logs" in err and "--storage" in err
    # --no-body asks for the row only: no error
    code, out, err = _run_in(folder, "show", ids[0], "--db", "demo-output/llm_logs.db", "--no-body")
    assert (code, err) == (0, "") and json.loads(out)["body"] is None


@needs_script
def test_a_call_that_stored_no_body_says_so_and_exits_0(tmp_path: Path) -> None:
    ids = asyncio.run(_log(tmp_path / "rows-only.db", None))
    code, out, err = _run_in(tmp_path, "show", ids[0], "--db", "rows-only.db")
    assert code == 0 and json.loads(out)["body"] is None
    assert err.count("\n") == 1 and "stored no body" in err


@needs_script
def test_a_missing_default_log_points_at_the_demos(demo_like: tuple[Path, list[str]]) -> None:
    folder, _ = demo_like
    for argv in (["report"], ["tail"], ["budgets", "status"], ["reprice"], ["ui", "--port", "0"]):
        code, out, err = _run_in(folder, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)
        assert "no database at llm_logs.db" in err and "pass --db demo-output/llm_logs.db" in err
        assert "run `majordomo-log demo`" not in err  # no loop back to the demo
    # The hint works as given.
    code, _, err = _run_in(folder, "report", "--db", "demo-output/llm_logs.db")
    assert (code, err) == (0, "")
    # With no demo log here, the hint says where the demo writes.
    shutil.rmtree(folder / "demo-output")
    code, _, err = _run_in(folder, "tail")
    assert code == 2 and "run `majordomo-log demo` to write a sample log to demo-output/" in err


@needs_script
@pytest.mark.parametrize("given", ["url-relative", "url-absolute"])
def test_a_printed_sqlite_log_pasted_back_names_the_same_file(tmp_path: Path, given: str) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "x.db"
    asyncio.run(_log(path, None))
    db = {
        "url-relative": "sqlite://sub/x.db",  # netloc 'sub': the file sub/x.db
        "url-absolute": f"sqlite:///{path}",
    }[given]
    printed = []
    code, out, _ = _run_in(tmp_path, "reprice", "--db", db, "--dry-run", "--no-progress")
    assert code == 0
    printed.append(out.split(": ", 1)[0])
    code, out, _ = _run_in(tmp_path, "prices", "--db", db)
    printed.append(out.split("models in ", 1)[1].split(" with no price", 1)[0])
    code, out, _ = _run_in(tmp_path, "migrate", "--db", db)
    printed.append(out.split(": ", 1)[0])
    code, out, _ = _run_in(tmp_path, "budgets", "status", "--db", db)
    printed.append(out.split("no budgets recorded in ", 1)[1].split(": ", 1)[0])
    code, _, err = _run_in(tmp_path, "show", "0190f5c2-0000-7000-8000-000000000001", "--db", db)
    printed.append(err.split(" in ", 1)[1].strip())
    for shown in printed:
        assert "://" not in shown and Path(tmp_path, shown).resolve() == path, printed
    code, _, err = _run_in(tmp_path, "tail", "--db", printed[0])  # pasted back
    assert (code, err) == (0, ""), printed


def test_shown_urls_keep_secrets_out() -> None:
    from majordomo_log.stores.urls import shown_url

    assert shown_url("sqlite:///rel/x.db") == "rel/x.db"
    assert shown_url("sqlite:////abs/x.db") == "/abs/x.db"
    assert shown_url("sqlite://tmp/x.db") == "tmp/x.db"
    assert shown_url("sqlite:///a%3Fb.db") == "a?b.db"
    assert shown_url("file://request_logs") == "request_logs"
    assert shown_url("file:///var/log/llm") == "/var/log/llm"
    assert shown_url("file:///var/log/llm?mode=0640") == "file:///var/log/llm?mode=0640"
    assert shown_url("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"
    assert (
        shown_url("s3://b/p?aws_secret_access_key=hunter2") == "s3://b/p?aws_secret_access_key=***"
    )
    assert shown_url("sqlite://u:hunter2@/x.db") == "sqlite://u:***@/x.db"  # not a file: as is
    assert shown_url("sqlite:///sqlite:///x.db").startswith("sqlite:")  # a path read as a URL


def test_a_file_name_with_url_characters_is_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    asyncio.run(_log(tmp_path / "a?b#c%20.db", None))
    assert main(["tail", "--db", "a?b#c%20.db", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["a?b#c%20.db"]


@needs_script
def test_spool_status_lists_no_spool_without_saying_what_it_is(tmp_path: Path) -> None:
    import datetime as dt
    import subprocess

    from console import SCRIPT
    from log_rows import row

    from majordomo_log.delivery.spool import SPOOL_DIR_ENV, Spool, SpoolEntry

    root = tmp_path / "spools"
    (root / "0000000000000000").mkdir(parents=True)  # a wrapper's folder, nothing spooled
    env = {**environment(), SPOOL_DIR_ENV: str(root)}

    def status(*argv: str) -> str:
        done = subprocess.run(
            [str(SCRIPT), "spool", "status", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0 and done.stderr == ""
        return done.stdout

    assert status().strip() == (
        f"no spooled records under {root} (1 empty spool folder (nothing waiting))"
    )
    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    Spool(root / "1111111111111111").append(
        [SpoolEntry(row(1, when))],
        reason="test",
        db=f"sqlite:///{tmp_path}/x.db",
        storage="file:///var/bodies",
    )
    shown = json.loads(status("--format", "json"))
    assert [(r["db"], r["storage"], r["records"]) for r in shown] == [
        (f"{tmp_path}/x.db", "/var/bodies", 1)
    ]
    assert status().rstrip().endswith("1 empty spool folder (nothing waiting), not shown")
