"""``make prices`` (tools/update_prices.py): regenerating llm_config.yaml from genai-prices
changes nothing in the file as committed, puts a hand-edited generated price back, keeps
hand-written entries, comments and listed differences byte for byte, and is a no-op the
second time."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

if sys.version_info < (3, 11):  # genai-prices 0.2.3 (pinned) needs Python 3.11+; CI runs 3.11
    pytest.skip("genai-prices 0.2.3 requires Python 3.11+", allow_module_level=True)

import majordomo_log as ml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "llm_config.yaml"
TODAY = dt.date(2031, 1, 2)
HAND_WRITTEN = """
  # A negotiated rate, not from genai-prices: never regenerated.
  - id: acme-internal
    provider: openai
    match: '^acme-internal$'
    prices:
      - effective: "2026-01-01"
        input: "0.123"
        output: "9.87654"
"""


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "update_prices", REPO / "tools" / "update_prices.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


tool = load_tool()
VERSION = tool.importlib.metadata.version("genai-prices")


def regenerate(text: str) -> str:
    out, _ = tool.regenerate(text, today=TODAY, version=VERSION)
    assert isinstance(out, str)
    return out


def test_the_committed_file_is_what_genai_prices_gives() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    out, report = tool.regenerate(text, today=TODAY, version=VERSION)
    assert out == text  # `checked` is not touched either: nothing else changed
    assert report.regenerated == [] and report.not_in_genai_prices == []
    assert report.unchanged == text.count("\n    source: genai-prices\n") >= 60


def test_a_hand_edited_generated_price_is_put_back_and_a_second_run_is_a_no_op() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    o3 = text.index("  - id: o3\n")
    edited = text[:o3] + text[o3:].replace('input: "2.00"', 'input: "2.22"', 1)
    assert edited != text
    once, report = tool.regenerate(edited, today=TODAY, version=VERSION)
    assert report.regenerated == ["o3"]
    assert once == text.replace(f'checked: "{_checked(text)}"', f'checked: "{TODAY}"')
    assert regenerate(once) == once


def test_hand_written_entries_comments_and_listed_differences_survive(tmp_path: Path) -> None:
    text = CONFIG.read_text(encoding="utf-8") + HAND_WRITTEN
    # a generated price edited, so that the run rewrites something
    edited = text.replace(
        '        input: "2.50"\n        output: "10.00"',
        '        input: "7"\n        output: "10.00"',
        1,
    )
    out, report = tool.regenerate(edited, today=TODAY, version=VERSION)
    assert report.regenerated == ["gpt-4o"] and report.hand_written == ["acme-internal"]
    assert out.endswith(HAND_WRITTEN)
    comments = [line for line in edited.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in out.splitlines() if line.lstrip().startswith("#")] == comments
    # deepseek-chat lists its standard-hours rates as differences from genai-prices
    deepseek = out.index("  - id: deepseek-chat\n")
    assert out[deepseek:].split("genai_prices:")[0].count('input: "0.27"') == 1
    path = tmp_path / "prices.yaml"
    path.write_text(out, encoding="utf-8")
    table = ml.PriceTable.load([path], builtin=False)  # `source:` and its absence both load
    internal = table.resolve("acme-internal")
    assert internal is not None and str(internal.versions[0].rates.output) == "9.87654"


def test_a_new_genai_prices_version_updates_the_header(tmp_path: Path) -> None:
    text = CONFIG.read_text(encoding="utf-8")
    out, _ = tool.regenerate(text, today=TODAY, version="9.9.9")
    changed = [(a, b) for a, b in zip(text.splitlines(), out.splitlines(), strict=True) if a != b]
    assert len(changed) == 2
    assert "genai-prices 9.9.9" in changed[0][1] and changed[1][1] == f'checked: "{TODAY}"'


def test_the_command_prints_the_diff_and_check_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "llm_config.yaml"
    text = CONFIG.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            'input: "0.15"\n        output: "0.60"', 'input: "0.16"\n        output: "0.60"', 1
        )
    )
    assert tool.main(["--config", str(path), "--check"]) == 1
    out, err = capsys.readouterr()
    assert '-        input: "0.16"\n+        input: "0.15"\n' in out
    assert "nothing written" in err and path.read_text() != text
    assert tool.main(["--config", str(path)]) == 0
    capsys.readouterr()
    assert path.read_text().replace(_checked(path.read_text()), _checked(text)) == text
    assert tool.main(["--config", str(path), "--check"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "up to date" in err


def _checked(text: str) -> str:
    return text.split('checked: "', 1)[1].split('"', 1)[0]
