"""CPU instructions per record for pricing (``CallRecord.priced``) or usage normalization
alone (``CallRecord.normalized_usage``), counted by callgrind, which repeats to the
instruction where wall-clock timings on a shared machine do not.

    python bench/pricing_instructions.py [priced|normalize]

runs the stage twice under valgrind, over LOW and HIGH of the same batch of records (made
as bench/stages.py makes them: a real ``LoggingLLM`` around the instant fake client), and
prints (instructions at HIGH - instructions at LOW) / (HIGH - LOW): what one more record
costs, with start-up, imports and record building cancelled out. ``PYTHONPATH`` picks the
checkout measured (e.g. an older worktree for a before/after).

    python bench/pricing_instructions.py --child priced 200

is one such run (what valgrind is given).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BUILT = 2000  # records made in every run, whatever the number priced
LOW, HIGH = 200, 1200
STAGES = ("priced", "normalize")


async def _records(n: int) -> list[object]:
    from _common import MESSAGES, FakeOpenAI

    import majordomo_log as ml

    with tempfile.TemporaryDirectory() as tmp:
        db = await ml.SqliteAdapter.create(Path(tmp) / "pricing.db")
        llm = ml.LoggingLLM(FakeOpenAI(), db, None, max_queue_records=10 * n, spool=False)
        records: list[object] = []
        llm._writer.submit = records.append  # type: ignore[method-assign]  # keep, don't queue
        for _ in range(n):
            await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        await llm.close()
    return records


def child(stage: str, count: int) -> None:
    records = asyncio.run(_records(BUILT))
    # The records and everything made so far out of the collector's sight: a full
    # collection walking them is the records' cost, and it falls at a different point
    # in runs of different lengths.
    gc.collect()
    gc.freeze()
    first = records[0]
    # one record outside the count, so that lazy set-up (price tables, caches) is paid in
    # both runs and cancels out
    first.priced() if stage == "priced" else first.normalized_usage()  # type: ignore[attr-defined]
    if stage == "priced":
        for record in records[1 : count + 1]:
            record.priced()  # type: ignore[attr-defined]
    else:
        for record in records[1 : count + 1]:
            record.normalized_usage()  # type: ignore[attr-defined]


def _instructions(stage: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
                *(sys.executable, __file__, "--child", stage, str(count)),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        summary = subprocess.run(
            ["callgrind_annotate", str(out)], check=True, capture_output=True, text=True
        ).stdout
    match = re.search(r"^\s*([\d,]+)\s+.*PROGRAM TOTALS", summary, re.MULTILINE)
    assert match is not None, summary[:2000]
    return int(match.group(1).replace(",", ""))


def main(stage: str) -> None:
    low, high = _instructions(stage, LOW), _instructions(stage, HIGH)
    per_record = (high - low) / (HIGH - LOW)
    print(
        f"{stage}: {per_record:,.0f} instructions per record ({low:,} at {LOW}, {high:,} at {HIGH})"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        chosen = sys.argv[1] if len(sys.argv) > 1 else "priced"
        if chosen not in STAGES:
            sys.exit(f"usage: {sys.argv[0]} [{'|'.join(STAGES)}]")
        main(chosen)
