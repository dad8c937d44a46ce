"""Take the dashboard docs' screenshot of the dashboard: docs/images/dashboard.png.

Seeds two weeks of calls into a fresh SQLite log (tests/support/dashboard_log.py, the
dashboard tests' log), serves the dashboard over it and shoots its first page in
headless Chromium (tests/support/browser.py). Run from the repository root:

    .venv/bin/python tools/dashboard_screenshot.py [--out docs/images/dashboard.png]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from browser import chromium  # noqa: E402
from dashboard_log import make_calls, write_log  # noqa: E402

from majordomo_log.dashboard import Dashboard  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "dashboard.png"))
    parser.add_argument("--width", type=int, default=1360)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    # A fixed "now" (a Saturday noon, UTC): the same picture every run.
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the page shows the log's URL: the default one, as a user has it
        db_url = "sqlite:///llm_logs.db"
        records, _, _ = make_calls(now)
        asyncio.run(write_log(db_url, Path("request_logs"), records))
        with (
            Dashboard(db_url, "file://request_logs", port=0) as dashboard,
            chromium() as browser,
        ):
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(f"{dashboard.url}?window=14d&step=day&until={now:%Y-%m-%dT%H:%M}")
            page.wait_for_selector("#spend-chart[data-drawn]")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        os.chdir(ROOT)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
