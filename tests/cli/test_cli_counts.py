"""The demo's count must be positive: zero is refused with a one-line usage error (for
``tail -n``, 0 means every call: tests/cli/test_tail.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from majordomo_log import cli


@pytest.mark.parametrize(("command", "option"), [("demo", "--calls")])
def test_cli_rejects_zero_count_with_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, option: str
) -> None:
    where = {"demo": ["--out", str(tmp_path / "demo")]}[command]
    with pytest.raises(SystemExit) as exited:
        cli.main([command, option, "0", *where])
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert option in errors[0] and "'0'" in errors[0]
