"""Bodies/s into local files and into S3 (SeaweedFS on loopback), in each body mode.

    .venv/bin/python bench/body_stores.py

4 KB JSON envelopes written in batches of 1000 through put_many(), the way the writer
does; medians of 3 rounds, all in one run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from s3server import start_seaweedfs, stop

import majordomo_log as ml
from majordomo_log._ids import uuid7

WHEN = dt.datetime.now(dt.timezone.utc)


def bodies(n: int) -> list[tuple[str, dt.datetime, bytes]]:
    out = []
    for _ in range(n):
        rid = uuid7()
        text = f"{rid} " + "lorem ipsum dolor sit amet " * 150
        out.append((rid, WHEN, json.dumps({"request_id": rid, "text": text[:4000]}).encode()))
    return out


async def rate(store: object, n: int) -> float:
    batch = bodies(n)
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        refs = await store.put_many(batch[start : start + 1000])  # type: ignore[attr-defined]
        assert all(refs)
    return n / (time.perf_counter() - t0)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    server, proc = await asyncio.to_thread(start_seaweedfs, tmp / "weed")
    try:
        results = {}
        for mode, n in (("object", 2000), ("segment", 20_000)):
            files = await ml.FileStorageAdapter.create(tmp / f"files-{mode}", mode=mode)
            results[f"files, {mode}"] = statistics.median([await rate(files, n) for _ in range(3)])
            bucket = server.new_bucket_name()
            await server.create_bucket(bucket)
            s3 = await ml.S3Adapter.create(bucket, mode=mode, **server.adapter_kwargs())
            results[f"S3, {mode}"] = statistics.median([await rate(s3, n) for _ in range(3)])
            await s3.close()
    finally:
        await asyncio.to_thread(stop, proc)
    for name, value in results.items():
        print(f"{name:<16} {value:>10,.0f} bodies/s")


if __name__ == "__main__":
    asyncio.run(main())
