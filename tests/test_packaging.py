"""The wheel carries what the package reads at run time: the price table (from the
repository root), every dialect's migrations, the dashboard's static files and py.typed."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


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


def test_version_and_python_dash_m() -> None:
    """``majordomo-log --version`` and ``python -m majordomo_log``, for when the console
    script is not on PATH."""
    from importlib import metadata

    out = subprocess.run(
        [sys.executable, "-m", "majordomo_log", "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == f"majordomo-log {metadata.version('majordomo-log')}"
    script = Path(sys.executable).with_name("majordomo-log")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith(metadata.version("majordomo-log"))
