"""The recipes run end to end against the servers of this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from s3server import S3Server, s3_server  # noqa: F401
from secret_scan import scan_postgres_schema
from servers import require

RECIPES = Path(__file__).parents[1] / "recipes"


async def test_postgres_and_s3_recipe_runs(tmp_path: Path, s3_server: S3Server) -> None:  # noqa: F811
    url = require("postgresql")
    schema = "mdl_recipe_" + tmp_path.name[-6:].replace("-", "_")
    bucket = s3_server.new_bucket_name()
    await s3_server.create_bucket(bucket)
    env = {
        **os.environ,
        "MAJORDOMO_LOG_DB": f"{url}?schema={schema}",
        "MAJORDOMO_LOG_STORAGE": (
            f"s3://{bucket}/llm-logs?endpoint_url={s3_server.endpoint_url}"
            f"&path_style=1&region={s3_server.region}"
        ),
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
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
            row = await conn.fetchrow(f'SELECT outcome, body_ref FROM "{schema}".llm_requests')
        finally:
            await conn.close()
        assert row["outcome"] == "accepted"
        assert row["body_ref"].startswith(f"s3://{bucket}/llm-logs/")
    finally:
        conn = await asyncpg.connect(url)
        await scan_postgres_schema(conn, schema)  # the secret scan, before it is gone
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
