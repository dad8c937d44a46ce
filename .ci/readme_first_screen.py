#!/usr/bin/env python3
"""The README's first screen, top to bottom, as a stranger runs it.

A fresh clone of this repository's HEAD and an empty HOME; then `make demo` (which makes
its own venv with the `demo` extra only), the quickstart extracted from the README and
run with that venv's Python in an empty folder, the real-key quickstart without a key
(it must fail before any file is made), and the commands the README gives to look at
the log. Run by .ci/run after the test suite; stdlib only, so it needs nothing
installed. Exits non-zero, saying what broke, on the first thing that does not hold.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_VENV_LIMIT_MB = 200


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    print("$", " ".join(args), flush=True)
    done = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    shown = done.stdout.splitlines()
    print("\n".join(shown[:30]))
    if len(shown) > 30:
        print(f"... ({len(shown) - 30} more lines)")
    print(done.stderr, end="", file=sys.stderr)
    if done.returncode != 0:
        sys.exit(f"first screen: {' '.join(args)!r} exited {done.returncode}")
    return str(done.stdout)


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"first screen: {what}")
    print(f"ok: {what}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="readme-first-screen-"))
    try:
        screen(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def screen(work: Path) -> None:
    clone, home, run_dir, keyless = work / "clone", work / "home", work / "run", work / "nokey"
    for folder in (home, run_dir, keyless):
        folder.mkdir()
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MAJORDOMO_", "OPENAI_", "ANTHROPIC_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["HOME"] = str(home)
    readme = (clone / "README.md").read_text(encoding="utf-8")
    shell_blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    python_blocks = re.findall(r"```python\n(.*?)```", readme, re.S)

    # 1. The two commands: the first runs here (the second is the suite .ci/run ran).
    first = [line.split("#")[0].strip() for line in shell_blocks[0].splitlines()]
    check(first == ["make demo", "make test"], "the README opens with make demo, make test")
    demo_out = run(["make", "demo"], clone, env, timeout=900)
    check("Try:" in demo_out, "make demo ends with what to try next")
    size_mb = sum(f.lstat().st_blocks * 512 for f in (clone / ".venv").rglob("*")) >> 20  # du
    check(size_mb < DEMO_VENV_LIMIT_MB, f"the demo's venv is {size_mb} MB, under 200 MB")
    check(not (home / ".cache" / "majordomo-log").exists(), "the demo left nothing in HOME")
    python = str(clone / ".venv" / "bin" / "python")
    script = str(clone / ".venv" / "bin" / "majordomo-log")

    # 2. The quickstart as printed, offline, with the demo's environment.
    out = run([python, "-c", python_blocks[0]], run_dir, env, timeout=120)
    request_id, tokens, cost, status = out.split()
    check(status == "computed" and int(tokens) > 0, "the quickstart logged a priced call")
    left = sorted(p.name for p in run_dir.iterdir())
    check(left == ["llm_logs.db", "request_logs"], f"it left the log and nothing else: {left}")

    # 3. The real-key quickstart without a key fails before any file exists.
    done = subprocess.run([python, "-c", python_blocks[1]], cwd=keyless, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    check(done.returncode != 0 and "OpenAIError" in done.stderr, "no key: the SDK's own error")
    check(not any(keyless.iterdir()), "no key: no file left behind")

    # 4. The commands to look at the log, on the quickstart's log.
    look = [line.split("  #")[0].strip() for line in shell_blocks[-1].splitlines()]
    for line in look:
        if line.startswith("majordomo-log ui"):
            continue  # a server that runs until stopped; tests/dashboard drive it
        if line.startswith("sqlite3 "):
            sql = re.search(r'"(.*)"', line)
            assert sql is not None
            rows = sqlite3.connect(run_dir / "llm_logs.db").execute(sql.group(1)).fetchall()
            clean = all(len(repr(row[-1])) < 14 for row in rows)  # no float noise
            check(bool(rows) and clean, f"{sql.group(1)}: {rows}")
            continue
        words = line.replace("REQUEST_ID", request_id).split()
        printed = run([script, *words[1:]], run_dir, env, timeout=120)
        check(bool(printed) and '"$error"' not in printed, line)
    print(f"first screen: all of it holds ({cost} USD logged)")


if __name__ == "__main__":
    main()
