"""The ``servers`` mark of tests/conftest.py, on a small suite run in a subprocess: tests that
request a server fixture or a server dialect of ``DIALECTS`` are marked, and a test without
the mark that reaches a server anyway fails, so that ``-m "not servers"`` needs none."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

SUITE = """
    import pytest
    from servers import DIALECTS, require


    @pytest.fixture
    def s3_server():
        return "stands in for tests/support/s3server.py's fixture: nothing starts"


    def test_requests_the_fixture(s3_server):
        pass


    @pytest.mark.parametrize("dialect", DIALECTS)
    def test_per_dialect(dialect):
        pass


    @pytest.mark.servers
    def test_calls_require_marked():
        require("postgresql")


    def test_calls_require_unmarked():
        require("postgresql")


    def test_gets_the_fixture_at_run_time(request):
        request.getfixturevalue("s3_server")


    def test_needs_no_server():
        pass
"""

INI = """
    [pytest]
    asyncio_mode = auto
    asyncio_default_fixture_loop_scope = function
    strict_markers = true
    markers = servers: needs a server
"""


def run_suite(tmp_path: Path, *args: str) -> str:
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (suite / "test_suite.py").write_text(textwrap.dedent(SUITE))
    (suite / "pytest.ini").write_text(textwrap.dedent(INI))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS / "support"), str(TESTS.parent)]),
        "MAJORDOMO_TEST_POSTGRES_URL": "postgresql://nobody@127.0.0.1:9/none",
        "MAJORDOMO_TEST_REQUIRE_SERVERS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def test_server_fixtures_and_server_dialects_are_marked(tmp_path: Path) -> None:
    out = run_suite(tmp_path, "--co", "-m", "servers", "--basetemp", str(tmp_path / "t"))
    selected = sorted(line for line in out.splitlines() if "::" in line)
    assert selected == [
        "test_suite.py::test_calls_require_marked",
        "test_suite.py::test_per_dialect[mysql]",
        "test_suite.py::test_per_dialect[postgresql]",
        "test_suite.py::test_requests_the_fixture",
    ], out


def test_an_unmarked_test_that_reaches_a_server_fails(tmp_path: Path) -> None:
    out = run_suite(tmp_path, "-m", "not servers", "-rfE", "--basetemp", str(tmp_path / "t"))
    failed = sorted(line for line in out.splitlines() if line.startswith(("FAILED", "ERROR")))
    assert len(failed) == 2, out
    assert failed[0].startswith("ERROR test_suite.py::test_gets_the_fixture_at_run_time"), out
    assert failed[1].startswith("FAILED test_suite.py::test_calls_require_unmarked"), out
    assert "test_calls_require_unmarked needs a postgresql server but is not marked" in out
    assert "test_gets_the_fixture_at_run_time obtained s3_server but is not marked" in out
    assert "1 failed, 3 passed, 4 deselected, 1 error" in out, out
