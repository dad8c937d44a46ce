"""Scenario: ``writer="thread"`` (the default) against ``writer="process"``, in one run.

    .venv-bench/bin/python bench/process_writer.py [rounds]   # 3 by default

Every figure is the median of the rounds; the modes are interleaved within a round, and
compared within one run only (2 shared vCPUs: records/s in particular moves by 2x from
one run to the next).

Per mode, a fresh SQLite database and body folder (object mode) per round; the wrapped
``FakeOpenAI`` answers at once with a new ``ChatCompletion`` per call and yields to the
loop once per call, as a network call would; 4 KB requests.

- "app CPU per call": CPU time of the application's process only (``getrusage`` of
  the process, user + system, all its threads, to the µs; a child's CPU is not in it)
  from the first of ``CALLS`` calls until ``flush()`` returned (everything committed),
  divided by ``CALLS``.
- "bare client CPU per call": the same stretch with the fake client unwrapped (its own
  ``model_validate`` of a new ``ChatCompletion`` and the loop turn), measured in the same
  round; "logging CPU per call" is a mode's app CPU minus it: what logging costs the
  application, the figure the 25 µs target of the process writer is about. Pricing,
  envelopes, redaction, gzip and I/O are in it for the thread writer, not for the
  process writer (there: capture, turning the response into its JSON as it is queued,
  the sender thread's pickling and pipe writes, the receiver's bookkeeping). A forked
  child costs the parent copy-on-write faults (its heap is shared with the child until
  written), a spawned one does not: fork reads a few µs higher.
- "records/s": ``CALLS`` / wall time of the same stretch.
- "child start": from the sender's start of a writer process until it said ready (fork
  and spawn), on a fresh wrapper.
- "child RSS" / "child PSS": ``/proc/<pid>/status`` VmRSS and ``smaps_rollup`` Pss of
  the writer process after the run (a forked child shares its parent's pages until
  written: PSS counts shared pages divided among the sharers).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import MESSAGES, FakeOpenAI, result

import majordomo_log as ml

SCENARIO = "process_writer"
CALLS, CALLS_QUICK = 10_000, 2_000
WARMUP = 200


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process, all its threads
    return usage.ru_utime + usage.ru_stime


async def _bare(calls: int) -> dict[str, Any]:
    """The fake client alone: what every mode's app CPU includes besides logging."""
    create = FakeOpenAI(yields=True, fresh=True).chat.completions.create
    for _ in range(WARMUP):
        await create(model="gpt-4o", messages=MESSAGES)
    cpu, wall = _cpu(), time.perf_counter()
    for _ in range(calls):
        await create(model="gpt-4o", messages=MESSAGES)
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    return {"cpu_us": cpu / calls * 1e6, "rps": calls / wall}


def _proc_kb(pid: int, path: str, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key):
                return float(line.split()[1])
    except OSError:
        return None
    return None


async def _one(mode: str, method: str | None, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        db = await ml.SqliteAdapter.create(Path(folder) / "log.db")
        storage = await ml.FileStorageAdapter.create(Path(folder) / "bodies")
        options = (
            {}
            if mode == "thread"
            else {
                "process": ml.ProcessOptions(start_method=method)  # type: ignore[arg-type]
            }
        )
        llm = ml.LoggingLLM(
            FakeOpenAI(yields=True, fresh=True),
            db,
            storage,
            writer=mode,
            spool=Path(folder) / "spool",
            max_queue_records=calls + WARMUP,
            max_queue_bytes=1 << 30,
            **options,  # type: ignore[arg-type]
        )
        create = llm.chat.completions.create  # type: ignore[attr-defined]
        for _ in range(WARMUP):  # and the writer process started
            await create(model="gpt-4o", messages=MESSAGES)
        await llm.flush()
        cpu, wall = _cpu(), time.perf_counter()
        for _ in range(calls):
            await create(model="gpt-4o", messages=MESSAGES)
        stats = await llm.flush()
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
        assert stats.written == calls + WARMUP and stats.dropped == 0, stats
        out: dict[str, Any] = {"cpu_us": cpu / calls * 1e6, "rps": calls / wall}
        writer: Any = llm._writer
        if mode == "process":
            pid = writer.child_pid
            out["start_ms"] = writer.start_seconds * 1000
            out["rss_mb"] = (_proc_kb(pid, "status", "VmRSS:") or 0) / 1024
            out["pss_mb"] = (_proc_kb(pid, "smaps_rollup", "Pss:") or 0) / 1024
        await llm.close()
        return out


async def run(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    calls = CALLS_QUICK if quick else CALLS
    modes = [("thread", None), ("process", "fork"), ("process", "spawn")]
    runs: dict[tuple[str, str | None], list[dict[str, Any]]] = {m: [] for m in modes}
    bare: list[dict[str, Any]] = []
    for _ in range(max(1, rounds)):
        bare.append(await _bare(calls))
        for mode in modes:  # interleaved: a slow moment of the machine hits all modes
            runs[mode].append(await _one(mode[0], mode[1], calls))
    note = f"{calls} calls, 4 KB requests, SQLite + files, getrusage() of the app only"
    rows = [
        result(SCENARIO, "bare client CPU per call", [b["cpu_us"] for b in bare], "µs",
               note="the fake client unwrapped: in every mode's app CPU"),
    ]  # fmt: skip
    for (mode, method), got in runs.items():
        name = mode if method is None else f"{mode}/{method}"
        rows.append(
            result(SCENARIO, f"app CPU per call, {name}", [g["cpu_us"] for g in got], "µs",
                   note=note)
        )  # fmt: skip
        logging_us = [g["cpu_us"] - b["cpu_us"] for g, b in zip(got, bare, strict=True)]
        rows.append(
            result(SCENARIO, f"logging CPU per call, {name}", logging_us, "µs",
                   at_most=25.0 if mode == "process" else None,
                   note="app CPU minus the bare client's, same round")
        )  # fmt: skip
        rows.append(result(SCENARIO, f"records/s, {name}", [g["rps"] for g in got], "rec/s"))
        if mode == "process":
            rows.append(
                result(SCENARIO, f"child start, {method}", [g["start_ms"] for g in got], "ms")
            )
            rows.append(result(SCENARIO, f"child RSS, {method}", [g["rss_mb"] for g in got], "MB"))
            rows.append(result(SCENARIO, f"child PSS, {method}", [g["pss_mb"] for g in got], "MB"))
    return rows


if __name__ == "__main__":
    from run import table

    print(table(asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3))))
