"""The README's first screen stays true: its two commands, its quickstart run as printed
in a fresh process (offline, and with a key against provider-shaped HTTP on loopback),
the commands it gives to look at the log, and its links.

.ci/readme_first_screen.py runs the same screen again on a fresh clone with an empty
HOME, through `make demo`'s own environment."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from majordomo_log.testing import FakeProvider
from majordomo_log.testing.server import OpenAIServer

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCRIPT = Path(sys.executable).with_name("majordomo-log")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def _run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MAJORDOMO_"))}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environ,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_readme_opens_with_the_two_commands() -> None:
    commands = [line.split("#")[0].strip() for line in _blocks("sh")[0].splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_the_first_screen_says_how_to_install() -> None:
    first_screen = README.split("## Quickstart", 1)[0]
    installs = re.findall(r'pip install "([^"]+)"', first_screen)
    assert installs, "no install line before the quickstart"
    tomllib = pytest.importorskip("tomllib")  # 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for spec in installs:
        for extra in re.search(r"\[(.*)\]", spec).group(1).split(","):  # type: ignore[union-attr]
            assert extra in extras, spec
    listed = re.findall(r"`(\w+)`", README.split("Extras:", 1)[1].split("\n\n", 1)[0])
    named = [word for word in listed if word not in ("openai", "anthropic")]  # SDKs, not extras
    assert sorted(named) == sorted(set(extras) - {"dev", "demo"})


def test_offline_quickstart_runs_as_printed_and_leaves_only_the_log(tmp_path: Path) -> None:
    offline = _blocks("python")[0]
    assert len(offline.strip().splitlines()) <= 10
    done = _run(offline, tmp_path)
    assert done.returncode == 0, done.stderr
    request_id, tokens, cost, status = done.stdout.split()
    assert status == "computed" and int(tokens) > 0 and Decimal(cost) > 0
    # The stores were closed at exit: no -wal or -shm beside the database.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llm_logs.db", "request_logs"]
    with sqlite3.connect(tmp_path / "llm_logs.db") as conn:
        row = conn.execute(
            "SELECT feature, total_tokens, cost_status FROM llm_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
    assert row == ("chat", int(tokens), "computed")
    assert len(list((tmp_path / "request_logs").rglob("*.seg.gz"))) == 1


def test_real_key_quickstart_against_provider_shaped_http(tmp_path: Path) -> None:
    with_key = _blocks("python")[1]
    provider = FakeProvider(openai_usage={"prompt_tokens": 12, "completion_tokens": 3})
    with OpenAIServer(provider) as server:
        done = _run(
            with_key, tmp_path, OPENAI_API_KEY="sk-test-readme", OPENAI_BASE_URL=server.url + "/v1"
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the model's answer
    with sqlite3.connect(tmp_path / "llm_logs.db") as conn:
        assert conn.execute("SELECT total_tokens, status FROM llm_requests").fetchall() == [
            (15, "ok")
        ]


def test_real_key_quickstart_without_a_key_fails_before_any_file(tmp_path: Path) -> None:
    done = _run(_blocks("python")[1], tmp_path)
    assert done.returncode != 0 and "OpenAIError" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_commands_to_look_at_the_log_run_on_the_quickstarts_log(tmp_path: Path) -> None:
    for _ in range(3):
        assert _run(_blocks("python")[0], tmp_path).returncode == 0
    (request_id,) = sqlite3.connect(tmp_path / "llm_logs.db").execute(
        "SELECT request_id FROM llm_requests LIMIT 1"
    ).fetchone()
    section = README.split("## What it logged\n", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("  #")[0].strip() for line in _blocks("sh")[-1].splitlines()]
    assert section.count("```sh") == 1 and lines[0].startswith("majordomo-log report")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAJORDOMO_")}
    for line in lines:
        if line.startswith("majordomo-log ui"):
            continue  # a server: tests/dashboard drives it
        if line.startswith("sqlite3 "):
            sql = re.search(r'"(.*)"', line).group(1)  # type: ignore[union-attr]
            rows = sqlite3.connect(tmp_path / "llm_logs.db").execute(sql).fetchall()
            assert rows and all(len(repr(spend)) < 14 for _, spend in rows), rows  # no noise
            continue
        words = line.replace("REQUEST_ID", request_id).split()
        done = subprocess.run(
            [str(SCRIPT), *words[1:]], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and done.stdout and not done.stderr, (line, done.stderr)
    assert '"$error"' not in done.stdout  # `show` found the body beside the database


DOCUMENTS = ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_relative_links_name_files_that_exist(document: str) -> None:
    path = ROOT / document if document == "README.md" else ROOT / "docs" / document
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (path.parent / target.split("#")[0]).exists(), f"{document}: {target}"
