"""The wheel carries what the package reads at run time: the price table (from the
repository root), every dialect's migrations, the dashboard's static files and py.typed;
its metadata has the package's one version and the dependencies the code imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest

import majordomo_log

ROOT = Path(__file__).parents[1]
# Distribution name -> the module it is imported as, where they differ.
IMPORTED_AS = {"PyYAML": "yaml"}


def test_wheel_contains_prices_migrations_assets_and_type_marker(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("majordomo_log-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "majordomo_log/llm_config.yaml" in names
    assert "majordomo_log/py.typed" in names
    for dialect in ("sqlite", "postgresql", "mysql"):
        folder = f"majordomo_log/stores/sql/migrations/{dialect}"
        shipped = {n for n in names if n.startswith(f"{folder}/")}
        in_repo = {f"{folder}/{p.name}" for p in (ROOT / folder).glob("*.sql")}
        assert shipped == in_repo and in_repo
    static = "majordomo_log/dashboard/static"
    shipped = {n for n in names if n.startswith(f"{static}/")}
    in_repo = {f"{static}/{p.name}" for p in (ROOT / static).iterdir() if p.is_file()}
    assert shipped == in_repo and f"{static}/uPlot.iife.min.js" in shipped
    assert f"{static}/uPlot.LICENSE" in shipped
    packaged = zipfile.ZipFile(wheel).read("majordomo_log/llm_config.yaml")
    assert packaged == (ROOT / "llm_config.yaml").read_bytes()
    # The license text travels with the wheel; the metadata says what runs where.
    [license_file] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert zipfile.ZipFile(wheel).read(license_file) == (ROOT / "LICENSE").read_bytes()
    [metadata_file] = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata_file).decode()
    assert "License-Expression: MIT" in metadata
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Classifier: Programming Language :: Python :: {version}" in metadata
    # The package index shows the README with no dead links: each relative one became
    # its text (pyproject's fancy-pypi-readme hook), links to the web stay links.
    description = metadata.split("\n\n", 1)[1]
    assert "Description-Content-Type: text/markdown" in metadata
    assert description.startswith("# majordomo-log") and "docs/usage.md" in description
    links = re.findall(r"\]\(([^)]+)\)", description)
    assert links and all(re.match(r"https?://", link) for link in links), links
    readme_links = re.findall(r"\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert any(not link.startswith("http") for link in readme_links)  # the rule had work
    # One version, written in majordomo_log/_version.py: the wheel's is the package's.
    fields = Parser().parsestr(metadata)
    assert fields["Version"] == majordomo_log.__version__
    assert wheel.name.startswith(f"majordomo_log-{majordomo_log.__version__}-")
    requires = fields.get_all("Requires-Dist") or []
    assert not [r for r in requires if r.lower().startswith(("aiofiles", "types-aiofiles"))]
    # majordomo_log.testing's extra, and the demo's (which runs on it), name httpx2.
    assert {"testing", "demo"} <= set(fields.get_all("Provides-Extra") or [])
    for extra in ("testing", "demo"):
        named = {_name(r) for r in requires if re.search(f"extra == [\"']{extra}[\"']", r)}
        assert named == {"httpx2", "openai", "anthropic"}, extra


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text()))


def test_every_core_dependency_is_imported() -> None:
    """A dependency declared and never imported (aiofiles was) costs every install."""
    imported = set()
    for path in (ROOT / "majordomo_log").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
    declared = [_name(r) for r in _pyproject()["project"]["dependencies"]]
    unused = [d for d in declared if IMPORTED_AS.get(d, d) not in imported]
    assert declared and unused == []
    assert "aiofiles" not in imported


def test_extras() -> None:
    """demo runs on majordomo_log.testing, so it needs what testing needs; all is every
    optional driver and integration, not the fakes."""
    extras = _pyproject()["project"]["optional-dependencies"]
    assert extras["demo"] == extras["testing"]
    runtime = [e for e in extras if e not in ("all", "demo", "testing", "dev")]
    assert sorted(extras["all"]) == sorted(r for e in runtime for r in extras[e])


def test_testing_without_httpx2_names_the_extra() -> None:
    """A core install has no httpx2: importing majordomo_log.testing says what to install."""
    code = (
        "import sys\n"
        "sys.modules['httpx2'] = None\n"
        "try:\n"
        "    import majordomo_log.testing\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert 'pip install "majordomo-log[testing]"' in out.stdout, out.stdout + out.stderr


def test_version_and_python_dash_m() -> None:
    """``majordomo-log --version`` and ``python -m majordomo_log``, for when the console
    script is not on PATH: both say ``majordomo_log.__version__``."""
    version = majordomo_log.__version__
    out = subprocess.run(
        [sys.executable, "-m", "majordomo_log", "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == f"majordomo-log {version}"
    script = Path(sys.executable).with_name("majordomo-log")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"majordomo-log {version}"
