"""The stage table of bench/stages.py in CPU instructions per record, counted by callgrind,
for two checkouts side by side (issue 14): an older commit and this one (HEAD).

    .venv/bin/python bench/stage_instructions.py [--old /tmp/wt-base] [--stages hot,pricing,...]

Why instructions: on a shared machine wall-clock timings of a few microseconds wander by
tens of percent from run to run; callgrind's instruction counts repeat to within a few
hundred per record. They are not time (a cache miss or a syscall costs more than its
instruction count says), but a change that removes work shows up in them without noise.

How each figure is made. A small driver (this file with ``--child``) builds its inputs,
warms up (so price tables, caches and compiled statements are paid outside the count),
freezes the garbage collector over everything made so far (``gc.freeze()``: a full
collection walking the inputs would fall at a different point in runs of different
lengths), runs the stage over COUNT records and exits at once (``os._exit``: no teardown).
It runs under ``valgrind --tool=callgrind`` twice, with COUNT = LOW and COUNT = HIGH,
``PYTHONHASHSEED=0``, and the figure is

    (PROGRAM TOTALS at HIGH - PROGRAM TOTALS at LOW) / (HIGH - LOW)

i.e. what one more record costs: start-up, imports, input building and warm-up are the
same in both runs and cancel out. All threads are counted (the SQLite write runs partly in
aiosqlite's thread and a worker thread). ``PYTHONPATH`` set to a checkout picks the code
measured; the driver only uses what both checkouts have.

The stages (the rows of the table), all on records made by a real ``LoggingLLM`` around a
real ``openai.AsyncOpenAI`` whose ``chat.completions.create`` is replaced by an ``async
def`` returning bench/_common.py's ``REPLY`` at once (a 4 KB request, no HTTP):

- hot path: instructions a wrapped call adds to a bare one (wrapped call - bare call,
  each measured as above). The writer does not drain during the loop (budgets far above
  the calls made, ``flush_interval=3600``, and the fake never yields to the event loop),
  but its real ``submit`` runs and the records stay queued, as under load.
- minimal wrapper + snapshot: the same for a yardstick wrapper doing the least a logger
  can (two ``perf_counter`` reads, ``orjson.dumps(kwargs)``, a tuple appended to a
  deque); ``hot path / minimal`` is printed below the table.
- pricing: ``record.priced()`` (on HEAD this also reads usage and the served model off the
  response, which the hot path used to do).
- envelope: ``build_envelope(record)`` (record/envelope.py), after pricing.
- segment gzip: ``build_segment(bodies, 1)`` (stores/bodies/layout.py) over 1000-body
  segments, per body.
- row: ``build_row(record, "ref")`` (record/rows.py), after pricing and the envelope.
- SQLite write: ``SqliteAdapter.write_batch(rows, [])``, 1000 rows per call, per row.

The table's ratio is HEAD / old. The JSON (bench/results/stage_instructions.json) keeps
both totals of every run, so a figure can be checked or recomputed.

    .venv/bin/python bench/stage_instructions.py --child PROBE COUNT

is one driver run (what valgrind is given; PROBE is a stage, or bare/wrapped/minimal for
the hot path's three calls).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "stage_instructions.json"
DEFAULT_OLD = Path("/tmp/wt-base")

LOW, HIGH = 1000, 3000  # records counted in the two runs; multiples of BATCH
BATCH = 1000  # bodies per segment, rows per write_batch
WARM_CALLS = 200  # hot path: calls made before counting
WARM_RECORDS = 10  # other stages: records put through the stage before counting
CONCURRENT_VALGRINDS = 2  # each takes 20-90 s and a core

# Stage -> the driver probes whose per-record figures make it (see stage_figure).
STAGES: dict[str, tuple[str, ...]] = {
    "hot": ("wrapped", "bare"),
    "minimal": ("minimal", "bare"),
    "pricing": ("pricing",),
    "envelope": ("envelope",),
    "segment": ("segment",),
    "row": ("row",),
    "sqlite": ("sqlite",),
}
STAGE_LABELS = {
    "hot": "hot path (added per call)",
    "minimal": "minimal wrapper + snapshot (added per call)",
    "pricing": "pricing",
    "envelope": "envelope",
    "segment": "segment gzip (1000 per segment)",
    "row": "row",
    "sqlite": "SQLite write (1000 per batch)",
}
# The stages a record goes through from call to commit (the yardstick is not one).
PIPELINE = ("hot", "pricing", "envelope", "segment", "row", "sqlite")


# -- the driver (runs under valgrind) ----------------------------------------------------


def _openai_client() -> Any:
    """A real AsyncOpenAI whose chat.completions.create answers REPLY at once, without
    yielding to the event loop: the SDK's resource objects are what gets wrapped."""
    import openai
    from _common import REPLY

    client = openai.AsyncOpenAI(api_key="sk-bench-key", base_url="http://127.0.0.1:9/v1")

    async def create(**kwargs: Any) -> Any:
        return REPLY

    client.chat.completions.create = create  # type: ignore[method-assign]
    return client


async def _logging_llm(client: Any, workdir: Path) -> Any:
    """A LoggingLLM whose writer never drains while the driver runs: every budget far
    above what is queued, and no timed flush."""
    import majordomo_log as ml

    db = await ml.SqliteAdapter.create(workdir / "calls.db")
    return ml.LoggingLLM(
        client,
        db,
        None,
        spool=False,
        batch_size=10**9,  # no early wake-up of the writer either
        flush_interval=3600,
        max_queue_records=10**9,
        max_queue_bytes=10**12,
    )


async def _hot_path(probe: str, count: int, workdir: Path) -> None:
    from _common import MESSAGES

    client = _openai_client()
    if probe == "bare":

        async def call() -> Any:
            return await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    elif probe == "wrapped":
        llm = await _logging_llm(client, workdir)

        async def call() -> Any:
            return await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    else:  # minimal: the least a logger can do
        import orjson

        clock = time.perf_counter
        kept: deque[tuple[bytes, Any, float, float]] = deque()

        async def logged(**kwargs: Any) -> Any:
            started = clock()
            snapshot = orjson.dumps(kwargs)
            response = await client.chat.completions.create(**kwargs)
            kept.append((snapshot, response, started, clock()))
            return response

        async def call() -> Any:
            return await logged(model="gpt-4o", messages=MESSAGES)

    for _ in range(WARM_CALLS):
        await call()
    gc.collect()
    gc.freeze()
    for _ in range(count):
        await call()
    os._exit(0)  # no teardown: closing the wrapper would write the queued records


async def _records(n: int, workdir: Path) -> list[Any]:
    """n records made by the real wrapper, kept (as bench/stages.py does) instead of queued."""
    from _common import MESSAGES

    llm = await _logging_llm(_openai_client(), workdir)
    records: list[Any] = []
    llm._writer.submit = records.append  # keep, don't queue
    for _ in range(n):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    return records


async def _pipeline_stage(stage: str, count: int, workdir: Path) -> None:
    from majordomo_log.delivery import prepare as prepare_module
    from majordomo_log.record.envelope import build_envelope
    from majordomo_log.record.rows import build_row
    from majordomo_log.stores.bodies.layout import build_segment

    records = await _records(WARM_RECORDS + HIGH, workdir)  # the same, whatever the count

    # What the stage is given, made for every record as the pipeline would make it
    # (prepare() prices each record and builds its envelope), outside the count.
    def priced_only() -> None:
        read_request_id = getattr(prepare_module, "read_request_id", None)
        for record in records:
            if read_request_id is not None:  # prepare() does it before pricing
                read_request_id(record)
            record.priced()

    stage_input: list[Any] = records
    if stage == "envelope":
        priced_only()
    elif stage == "row":
        prepare_module.prepare(records, True)
    elif stage == "segment":
        stage_input = prepare_module.prepare(records, True)
    elif stage == "sqlite":
        prepare_module.prepare(records, True)
        stage_input = [build_row(record, "ref") for record in records]

    warm, counted = stage_input[:WARM_RECORDS], stage_input[WARM_RECORDS : WARM_RECORDS + count]
    kept: list[Any] = []  # results are kept, so freeing them is not in the count either
    run: Callable[[list[Any]], Any]
    if stage == "pricing":

        def run(batch: list[Any]) -> None:
            kept.extend(record.priced() for record in batch)

    elif stage == "envelope":

        def run(batch: list[Any]) -> None:
            kept.extend(build_envelope(record) for record in batch)

    elif stage == "row":

        def run(batch: list[Any]) -> None:
            kept.extend(build_row(record, "ref") for record in batch)

    elif stage == "segment":

        def run(batch: list[Any]) -> None:
            for start in range(0, len(batch), BATCH):
                kept.append(build_segment(batch[start : start + BATCH], 1))

    else:  # sqlite: write_batch is a coroutine, run here on the driver's loop
        import majordomo_log as ml

        db = await ml.SqliteAdapter.create(workdir / "stage.db")
        for start in range(0, len(warm), BATCH):
            await db.write_batch(warm[start : start + BATCH], [])
        gc.collect()
        gc.freeze()
        for start in range(0, len(counted), BATCH):
            await db.write_batch(counted[start : start + BATCH], [])
        os._exit(0)

    run(warm)
    gc.collect()
    gc.freeze()
    run(counted)
    os._exit(0)


def child(probe: str, count: int) -> None:
    # The worker threads' turns for the event loop (a short sleep after each millisecond of
    # Python work) off: under valgrind a millisecond is a few records, and the turns would
    # count the loop's wake-ups, not the stage.
    from majordomo_log import _loop_turns

    _loop_turns._WORK_SECONDS = float("inf")
    workdir = Path.cwd()
    if probe in ("bare", "wrapped", "minimal"):
        asyncio.run(_hot_path(probe, count, workdir))
    else:
        asyncio.run(_pipeline_stage(probe, count, workdir))


# -- the measurement (runs valgrind) ------------------------------------------------------


def _child_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}


def _child_command(probe: str, count: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", probe, str(count)]


def check_driver(tree: Path, probe: str) -> None:
    """One short run without valgrind: the driver works against this tree, and Python's
    bytecode caches are written before the counted runs (compiling is not the stage)."""
    with tempfile.TemporaryDirectory() as workdir:
        subprocess.run(
            _child_command(probe, BATCH),
            cwd=workdir,
            env=_child_env(tree),
            check=True,
            capture_output=True,
        )


def instructions(tree: Path, probe: str, count: int) -> int:
    """PROGRAM TOTALS of one driver run under callgrind."""
    with tempfile.TemporaryDirectory() as workdir:
        out = Path(workdir) / "callgrind.out"
        subprocess.run(
            [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
                *_child_command(probe, count),
            ],
            cwd=workdir,
            env=_child_env(tree),
            check=True,
            capture_output=True,
        )
        summary = subprocess.run(
            ["callgrind_annotate", str(out)], check=True, capture_output=True, text=True
        ).stdout
    match = re.search(r"^\s*([\d,]+)\s+.*PROGRAM TOTALS", summary, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no PROGRAM TOTALS in callgrind_annotate's output:\n{summary[:2000]}")
    return int(match.group(1).replace(",", ""))


def _commit(tree: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    ).stdout.strip()


def measure(trees: dict[str, Path], stages: list[str]) -> dict[str, Any]:
    """Every (tree, probe) pair run at LOW and HIGH, two valgrinds at a time."""
    probes = sorted({probe for stage in stages for probe in STAGES[stage]})
    pairs = [(label, probe) for label in trees for probe in probes]
    for label, probe in pairs:
        check_driver(trees[label], probe)

    runs = [(label, probe, count) for label, probe in pairs for count in (LOW, HIGH)]

    def one(run: tuple[str, str, int]) -> int:
        label, probe, count = run
        started = time.monotonic()
        total = instructions(trees[label], probe, count)
        took = time.monotonic() - started
        print(f"  {label:>8} {probe:<9} {count:>5}: {total:>15,} ({took:.0f} s)", flush=True)
        return total

    with ThreadPoolExecutor(CONCURRENT_VALGRINDS) as pool:
        totals = dict(zip(runs, pool.map(one, runs), strict=True))

    per_record = {
        (label, probe): (totals[label, probe, HIGH] - totals[label, probe, LOW]) / (HIGH - LOW)
        for label, probe in pairs
    }
    return {
        "probes": {
            label: {
                probe: {
                    "per_record": per_record[label, probe],
                    "totals": {
                        str(LOW): totals[label, probe, LOW],
                        str(HIGH): totals[label, probe, HIGH],
                    },
                }
                for probe in probes
            }
            for label in trees
        },
        "stages": {
            stage: {label: stage_figure(stage, per_record, label) for label in trees}
            for stage in stages
        },
    }


def stage_figure(stage: str, per_record: dict[tuple[str, str], float], label: str) -> float:
    """A stage's instructions per record: a probe's own, or for the two hot-path rows
    the wrapped (or minimal) call's minus the bare call's."""
    first, *rest = STAGES[stage]
    return per_record[label, first] - sum(per_record[label, probe] for probe in rest)


# -- the report ---------------------------------------------------------------------------


def table(stage_figures: dict[str, dict[str, float]], old: str, new: str) -> str:
    def thousands(value: float) -> str:
        return f"{value / 1000:,.1f}k"

    lines = [
        f"| stage (instructions per record) | {old} | {new} | ratio |",
        "|---|---:|---:|---:|",
    ]
    for stage, figures in stage_figures.items():
        ratio = figures[new] / figures[old] if figures[old] else float("nan")
        lines.append(
            f"| {STAGE_LABELS[stage]} | {thousands(figures[old])} | "
            f"{thousands(figures[new])} | {ratio:.2f} |"
        )
    if all(stage in stage_figures for stage in PIPELINE):
        old_sum = sum(stage_figures[stage][old] for stage in PIPELINE)
        new_sum = sum(stage_figures[stage][new] for stage in PIPELINE)
        lines.append(
            f"| **all stages, call to commit** | {thousands(old_sum)} | "
            f"{thousands(new_sum)} | {new_sum / old_sum:.2f} |"
        )
    if "hot" in stage_figures and "minimal" in stage_figures:
        hot, minimal = stage_figures["hot"], stage_figures["minimal"]
        lines.append("")
        lines.append(
            f"hot path / minimal wrapper: {old} {hot[old] / minimal[old]:.2f}x, "
            f"{new} {hot[new] / minimal[new]:.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, default=DEFAULT_OLD, help="the older checkout")
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated, of {','.join(STAGES)} (default: all)",
    )
    args = parser.parse_args()
    stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")

    old_label = _commit(args.old) or str(args.old)
    trees = {old_label: args.old.resolve(), "HEAD": ROOT}
    print(f"{old_label} = {args.old}, HEAD = {_commit(ROOT)} ({ROOT}); LOW {LOW}, HIGH {HIGH}")
    measured = measure(trees, stages)
    print()
    print(table(measured["stages"], old_label, "HEAD"))

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "unit": "instructions per record (callgrind), (total(HIGH) - total(LOW)) / "
                "(HIGH - LOW); hot path and minimal: minus the bare call's",
                "low": LOW,
                "high": HIGH,
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "trees": {
                    old_label: {"path": str(args.old), "commit": old_label},
                    "HEAD": {"path": str(ROOT), "commit": _commit(ROOT)},
                },
                **measured,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
