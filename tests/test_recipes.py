"""The recipes run end to end against the servers of this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from servers import require

RECIPES = Path(__file__).parents[1] / "recipes"


async def test_postgres_recipe_runs(tmp_path: Path) -> None:
    url = require("postgresql")
    schema = "mdl_recipe_" + tmp_path.name[-6:].replace("-", "_")
    env = {
        **os.environ,
        "MAJORDOMO_LOG_DB": f"{url}?schema={schema}",
        "MAJORDOMO_LOG_STORAGE": f"file://{tmp_path / 'bodies'}",
    }
    env.pop("OPENAI_API_KEY", None)
    try:
        done = subprocess.run(
            [sys.executable, str(RECIPES / "postgres" / "app.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "logged " in done.stdout and "'model': 'gpt-4o-mini'" in done.stdout
        conn = await asyncpg.connect(url)
        try:
            outcome = await conn.fetchval(f'SELECT outcome FROM "{schema}".llm_requests')
        finally:
            await conn.close()
        assert outcome == "accepted"
        assert len(list((tmp_path / "bodies").rglob("*.json.gz"))) == 1
    finally:
        conn = await asyncpg.connect(url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
