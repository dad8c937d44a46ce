"""µs that the OpenTelemetry support (issue 17, from 8e6baee on) adds to a wrapped call when
OpenTelemetry is not configured or turned off (issue 17's target: at most 1 µs per call),
sync and async, against the same measurement of the code before it (de7da37), in one run.

    git worktree add /tmp/wt-before de7da37
    .venv/bin/python bench/otel_overhead.py [rounds]   # wall clock, then callgrind: ~10 min
    .venv/bin/python bench/otel_overhead.py [rounds] --skip-instructions  # 15-30 s a round
    (--before DIR: the checkout before, default /tmp/wt-before; --after DIR: the code
    measured against it, default this tree; --json FILE: every figure)

The clients are budget_overhead.py's: sync_overhead.py's real ``openai.OpenAI`` whose
``chat.completions.create`` answers at once with _common.py's ``REPLY``, and
stage_instructions.py's real ``openai.AsyncOpenAI`` whose ``create`` is an ``async def``
answering the same way (never yielding to the loop). Each is called bare and through
``LoggingLLM`` wrappers (SQLite + files, queue budgets raised so nothing is spilled) in
three configurations:

- ``default``: built as by a user who never mentions telemetry, opentelemetry-api and the
  SDK importable but no provider set (the API's proxy providers): OpenTelemetry is found
  not configured when the wrapper is built;
- ``off``: ``opentelemetry=False``, which is also the path with opentelemetry-api absent
  (no span, no observer: ``telemetry/setup.py`` returns the same ``(None, ())``);
- ``sdk``, for scale (the code after only): ``opentelemetry=ml.OpenTelemetryOptions(...)``
  with an SDK ``TracerProvider`` (a ``SimpleSpanProcessor`` into an
  ``InMemorySpanExporter``, emptied between blocks) and an SDK ``MeterProvider`` (an
  ``InMemoryMetricReader``): a span opened on every call and made current around the
  provider's call; the writer ends it and records the metrics. No global provider is set,
  so ``default`` stays unconfigured in the same process.

The code before has no ``opentelemetry`` argument: its ``default`` and ``off`` are two
identical wrappers, built the same way (what they differ by is the method's noise).

Wall clock: each round runs this file once per checkout as a child process
(``--child-wall``), ``PYTHONPATH`` picking the code, the order of the two swapping every
round. A child warms up, then times ``CALLS`` calls per side (bare and each wrapper) in
alternating blocks of ``BLOCK``, the order of the sides rotating every set of blocks, the
writer flushed between sets, untimed: budget_overhead.py's "hot path", so the figure is
the caller's own path (the writer's one added branch per row, ``prepare.py``, is not in
it). A call is timed from before ``create()`` to its result. Per child and side: the
median call, and median(side) - median(bare) (the wrapper's cost); figures are medians
over rounds, and the added cost is the median over rounds of after - before, same
configuration, the two children of a round paired. On a loaded machine the children of a
round differ by more than the figure sought: the instruction counts settle it.

Instructions (unless ``--skip-instructions``): callgrind (``--separate-threads=yes``) on
the caller's threads, one valgrind run per checkout, the two in parallel, driven as in
budget_overhead.py (``--child-count``): the main thread builds and warms each probe (a
side above), then its calls are made N times and 2N times, each on a thread of its own
(``_Counted``: the garbage collector collected and frozen before), with the writer never
draining (``batch_size`` 10**9, ``flush_interval`` 3600) and no loop turns; the figure is
(thread total at 2N - at N) / N. Two runs of the same code agree to within about 150
instructions per call (0.3% of the wrapper), where wall clock on a loaded machine does
not. The wall-clock rate of the wrapper in this run (µs over instructions, after,
``default``) turns the instructions added into µs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(BENCH))

import stage_instructions  # noqa: E402
from _common import MESSAGES, median, p99  # noqa: E402
from budget_overhead import _Counted  # noqa: E402
from sync_overhead import BIG_QUEUE, fake_openai  # noqa: E402

import majordomo_log as ml  # noqa: E402

CALLS = 10_000  # per side, per child (wall clock)
BLOCK = 500
N = 1_000  # callgrind: each probe's calls made N times, then 2N times
WARM_CALLS = 300
BEFORE = Path("/tmp/wt-before")
MODES = ("sync", "async")
CONFIGS = ("default", "off", "sdk")
TELEMETRY = hasattr(ml, "OpenTelemetryOptions")  # the code measured has issue 17's support
TARGET_US = 1.0


def configs() -> tuple[str, ...]:
    """The configurations the code measured has (before: no ``sdk``)."""
    return CONFIGS if TELEMETRY else CONFIGS[:2]


class Sdk:
    """OpenTelemetry's SDK providers for the ``sdk`` wrappers, never set globally: spans
    kept in memory (``clear()`` counts and drops them), metrics in an in-memory reader."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.spans = 0

    def options(self) -> Any:
        return ml.OpenTelemetryOptions(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def clear(self) -> None:
        self.spans += len(self.exporter.get_finished_spans())
        self.exporter.clear()


def telemetry_kwargs(config: str, sdk: Sdk | None) -> dict[str, Any]:
    if not TELEMETRY or config == "default":
        return {}
    if config == "off":
        return {"opentelemetry": False}
    assert sdk is not None
    return {"opentelemetry": sdk.options()}


def check_config(llm: Any, config: str) -> None:
    """The wrapper is in the configuration named: spans and observers only with ``sdk``."""
    if not TELEMETRY:
        return
    ctx = llm._ctx
    assert (ctx.spans is not None) == (config == "sdk"), (config, ctx.spans)
    assert bool(ctx.observers) == (config == "sdk"), (config, ctx.observers)
    if config == "default":
        from majordomo_log.telemetry.setup import _configured_metrics, _configured_tracing

        assert not _configured_tracing() and not _configured_metrics(), "a provider is set"


def _call(create: Callable[..., Any]) -> Callable[[], Any]:
    def call() -> Any:
        return create(model="gpt-4o", messages=MESSAGES)

    return call


def rotated(sides: Sequence[str], k: int) -> list[str]:
    k %= len(sides)
    return [*sides[k:], *sides[:k]]


# -- wall clock: one child per checkout and round ------------------------------------------


def timed(call: Callable[[], Any], n: int, out: list[float]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        call()
        out.append((clock() - t0) / 1000)


async def timed_async(call: Callable[[], Awaitable[Any]], n: int, out: list[float]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await call()
        out.append((clock() - t0) / 1000)


def sync_times(tmp: Path, sdk: Sdk | None, calls: int) -> dict[str, list[float]]:
    """Each side's call times (µs), sync: ``calls`` each after a warm-up set of blocks."""
    db, storage = f"sqlite:///{tmp / 'sync.db'}", str(tmp / "bodies")
    client = fake_openai(None)
    common: dict[str, Any] = {"spool": tmp / "spool", **BIG_QUEUE}
    llms = {
        c: ml.LoggingLLM(client, db, storage, **common, **telemetry_kwargs(c, sdk))
        for c in configs()
    }
    for config, llm in llms.items():
        check_config(llm, config)
    sides = {"bare": _call(client.chat.completions.create)}
    sides.update({c: _call(llm.chat.completions.create) for c, llm in llms.items()})
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for block in range(-1, calls // BLOCK):  # block -1: the warm-up
            out = times if block >= 0 else {name: [] for name in names}
            for name in rotated(names, block):
                timed(sides[name], BLOCK, out[name])
            for llm in llms.values():
                llm.flush()
            if sdk is not None:
                sdk.clear()
    finally:
        for llm in llms.values():
            llm.close()
    return times


async def async_times(tmp: Path, sdk: Sdk | None, calls: int) -> dict[str, list[float]]:
    db = await ml.SqliteAdapter.create(tmp / "async.db")
    storage = await ml.FileStorageAdapter.create(tmp / "async-bodies", mode="segment")
    client = stage_instructions._openai_client()
    common: dict[str, Any] = {"spool": tmp / "async-spool", **BIG_QUEUE}
    llms = {
        c: ml.LoggingLLM(client, db, storage, **common, **telemetry_kwargs(c, sdk))
        for c in configs()
    }
    for config, llm in llms.items():
        check_config(llm, config)
    sides = {"bare": _call(client.chat.completions.create)}
    sides.update({c: _call(llm.chat.completions.create) for c, llm in llms.items()})
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for block in range(-1, calls // BLOCK):
            out = times if block >= 0 else {name: [] for name in names}
            for name in rotated(names, block):
                await timed_async(sides[name], BLOCK, out[name])
            for llm in llms.values():
                await llm.flush()
            if sdk is not None:
                sdk.clear()
    finally:
        for llm in llms.values():
            await llm.close()
    return times


def child_wall(calls: int) -> None:
    """Prints one JSON line: where the code came from, each side's median and p99 (µs)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-otel-overhead-"))
    sdk = Sdk() if TELEMETRY else None
    try:
        figures: dict[str, Any] = {"median": {}, "p99": {}}
        by_mode = {
            "sync": sync_times(tmp, sdk, calls),
            "async": asyncio.run(async_times(tmp, sdk, calls)),
        }
        for mode, times in by_mode.items():
            for side, values in times.items():
                assert len(values) == calls, (mode, side, len(values))
                figures["median"][f"{mode} {side}"] = median(values)
                figures["p99"][f"{mode} {side}"] = p99(values)
        if sdk is not None:  # both modes' sdk calls and their warm-ups each made a span
            assert sdk.spans == 2 * (calls + BLOCK), sdk.spans
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"code": str(Path(ml.__file__).parent), "telemetry": TELEMETRY, **figures}))


def child_env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "0"}


def run_child(root: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=child_env(root),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"child failed ({root}):\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["code"]).resolve() == (root / "majordomo_log").resolve(), out["code"]
    return out


def wall(roots: dict[str, Path], rounds: int, calls: int) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {version: [] for version in roots}
    for r in range(rounds):
        versions = list(roots) if r % 2 == 0 else list(reversed(roots))
        for version in versions:
            runs[version].append(run_child(roots[version], "--child-wall", str(calls)))
        print(f"  round {r + 1}/{rounds}, load {os.getloadavg()[0]:.1f}", flush=True)
    return runs


def wall_figures(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per version, mode and side: the median call and the wrapper's cost (each a median
    over rounds, with every round's), and after - before of the wrapper's cost."""
    out: dict[str, Any] = {}
    for version, children in runs.items():
        for mode in MODES:
            for side in ("bare", *CONFIGS):
                key = f"{mode} {side}"
                if key not in children[0]["median"]:
                    continue
                calls = [c["median"][key] for c in children]
                out[f"{version}, {key}, call"] = calls
                if side != "bare":
                    bare = [c["median"][f"{mode} bare"] for c in children]
                    out[f"{version}, {key}, wrapper"] = [
                        a - b for a, b in zip(calls, bare, strict=True)
                    ]
    for mode in MODES:
        for config in CONFIGS[:2]:
            after = out[f"after, {mode} {config}, wrapper"]
            before = out[f"before, {mode} {config}, wrapper"]
            out[f"added, {mode} {config}"] = [a - b for a, b in zip(after, before, strict=True)]
    return out


# -- instructions: one valgrind per checkout ------------------------------------------------


def _quiet(client: Any, db: Any, storage: Any, config: str, sdk: Sdk | None) -> Any:
    """A wrapper whose writer never drains while the driver runs (budget_overhead.py's)."""
    llm = ml.LoggingLLM(
        client,
        db,
        storage,
        spool=False,
        batch_size=10**9,
        flush_interval=3600,
        max_queue_records=10**9,
        max_queue_bytes=10**12,
        **telemetry_kwargs(config, sdk),
    )
    check_config(llm, config)
    return llm


def _sync_probe(config: str, workdir: Path, sdk: Sdk | None) -> Callable[[int], None]:
    client = fake_openai(None)
    if config == "bare":
        create = client.chat.completions.create
    else:
        db = f"sqlite:///{workdir / config}.db"
        create = _quiet(client, db, str(workdir / config), config, sdk).chat.completions.create

    def calls(count: int) -> None:
        for _ in range(count):
            create(model="gpt-4o", messages=MESSAGES)

    calls(WARM_CALLS)
    return calls


def _async_probe(config: str, workdir: Path, sdk: Sdk | None) -> Callable[[int], None]:
    """On a loop of its own, run by whichever thread makes the calls."""
    loop = asyncio.new_event_loop()

    async def build() -> Any:
        client = stage_instructions._openai_client()
        if config == "bare":
            return client.chat.completions.create
        db = await ml.SqliteAdapter.create(workdir / f"async-{config}.db")
        return _quiet(client, db, None, config, sdk).chat.completions.create

    create = loop.run_until_complete(build())

    async def calls(count: int) -> None:
        for _ in range(count):
            await create(model="gpt-4o", messages=MESSAGES)

    loop.run_until_complete(calls(WARM_CALLS))
    return lambda count: loop.run_until_complete(calls(count))


def probes() -> list[str]:
    return [f"{mode} {side}" for mode in MODES for side in ("bare", *configs())]


def child_count(n: int) -> None:
    """Thread 2 + 2 i makes probe i's N calls, thread 3 + 2 i its 2N (see probes())."""
    assert len(os.listdir("/proc/self/task")) == 1, "a thread was started before the probes'"
    names = probes()
    threads = [_Counted() for _ in range(2 * len(names))]
    from majordomo_log import _loop_turns

    _loop_turns._WORK_SECONDS = float("inf")  # as stage_instructions.py: no loop turns
    workdir = Path.cwd()
    info = {"code": str(Path(ml.__file__).parent), "probes": names}
    (workdir / "probes.json").write_text(json.dumps(info))
    sdk = Sdk() if TELEMETRY else None
    for i, name in enumerate(names):
        mode, config = name.split()
        op = (_sync_probe if mode == "sync" else _async_probe)(config, workdir, sdk)
        threads[2 * i].run(lambda op=op: op(n))
        threads[2 * i + 1].run(lambda op=op: op(2 * n))
    os._exit(0)  # no teardown: closing would write the queued records


def count(root: Path, n: int) -> dict[str, Any]:
    """One valgrind run of ``child_count`` on the code at ``root``: instructions per call."""
    with tempfile.TemporaryDirectory() as workdir:
        # bytecode caches written, and the driver checked, before counting
        command = [sys.executable, str(SCRIPT), "--child-count", "20"]
        subprocess.run(command, cwd=workdir, env=child_env(root), check=True)
    with tempfile.TemporaryDirectory() as workdir:
        out = Path(workdir) / "callgrind.out"
        subprocess.run(
            [
                *("valgrind", "--tool=callgrind", "--separate-threads=yes"),
                f"--callgrind-out-file={out}",
                *(sys.executable, str(SCRIPT), "--child-count", str(n)),
            ],
            cwd=workdir,
            env=child_env(root),
            check=True,
            capture_output=True,
        )
        info = json.loads((Path(workdir) / "probes.json").read_text())
        assert Path(info["code"]).resolve() == (root / "majordomo_log").resolve(), info["code"]
        totals: dict[int, int] = {}
        for part in Path(workdir).glob("callgrind.out-*"):
            text = part.read_text(errors="replace")
            thread = re.search(r"^thread: (\d+)$", text, re.MULTILINE)
            total = re.search(r"^totals: (\d+)$", text, re.MULTILINE)
            if thread is None or total is None:
                raise RuntimeError(f"no thread or totals line in {part.name}")
            key = int(thread.group(1))
            totals[key] = totals.get(key, 0) + int(total.group(1))
    per_call = {}
    for i, name in enumerate(info["probes"]):
        low, high = totals[2 + 2 * i], totals[3 + 2 * i]
        per_call[name] = {"per_call": (high - low) / n, "totals": [low, high]}
    return per_call


def instructions(roots: dict[str, Path], n: int) -> dict[str, dict[str, Any]]:
    with ThreadPoolExecutor(len(roots)) as pool:
        counted = list(pool.map(lambda root: count(root, n), roots.values()))
    return dict(zip(roots, counted, strict=True))


# -- the report ---------------------------------------------------------------------------


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.2f} to {max(values):.2f}"


def report(wall_runs: dict[str, Any] | None, counts: dict[str, dict[str, Any]] | None) -> list[str]:
    lines: list[str] = []
    if wall_runs is not None:
        rounds = len(wall_runs["before"])
        f = wall_figures(wall_runs)
        lines += [
            f"Wall clock, median over {rounds} rounds (µs per call; wrapper = call - bare call,"
            " same child)",
            "",
            "| mode, side | before: call | before: wrapper | after: call | after: wrapper |"
            " added (after - before), rounds paired |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for mode in MODES:
            for side in ("bare", *CONFIGS):
                cells = []
                for version in ("before", "after"):
                    call = f.get(f"{version}, {mode} {side}, call")
                    wrapper = f.get(f"{version}, {mode} {side}, wrapper")
                    cells.append("" if call is None else f"{median(call):.2f}")
                    cells.append("" if wrapper is None else f"{median(wrapper):.2f}")
                added = f.get(f"added, {mode} {side}")
                cells.append("" if added is None else f"**{median(added):+.2f}** ({_range(added)})")
                lines.append(f"| {mode}, {side} | " + " | ".join(cells) + " |")
        lines.append("")
    if counts is not None:

        def per(version: str, probe: str) -> float | None:
            figure = counts[version].get(probe)
            return None if figure is None else float(figure["per_call"])

        def wrapper(version: str, mode: str, side: str) -> float | None:
            """Instructions the wrapper adds to the bare call (None: no such probe)."""
            call, bare = per(version, f"{mode} {side}"), per(version, f"{mode} bare")
            return None if call is None or bare is None or side == "bare" else call - bare

        lines += [
            f"Instructions per call, caller's thread (callgrind, (2N - N) / N, N = {N})",
            "",
            "| mode, side | before: call | before: wrapper | after: call | after: wrapper |"
            " added | added / wrapper before |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for mode in MODES:
            for side in ("bare", *CONFIGS):
                cells = []
                wrappers = {}
                for version in ("before", "after"):
                    call = per(version, f"{mode} {side}")
                    wrappers[version] = wrapper(version, mode, side)
                    cells.append("" if call is None else f"{call:,.0f}")
                    w = wrappers[version]
                    cells.append("" if w is None else f"{w:,.0f}")
                before, after = wrappers["before"], wrappers["after"]
                if before is None or after is None:
                    cells += ["", ""]
                else:
                    cells += [f"**{after - before:+,.0f}**", f"{(after - before) / before:+.2%}"]
                lines.append(f"| {mode}, {side} | " + " | ".join(cells) + " |")
        lines.append("")
        if wall_runs is not None:
            f = wall_figures(wall_runs)
            for mode in MODES:
                us = median(f[f"after, {mode} default, wrapper"])
                ins = wrapper("after", mode, "default")
                assert ins is not None
                rate = us / ins
                for config in CONFIGS[:2]:
                    before, after = wrapper("before", mode, config), wrapper("after", mode, config)
                    assert before is not None and after is not None
                    added = after - before
                    lines.append(
                        f"- {mode}, {config}: {added:+,.0f} instructions x {rate * 1e3:.3f} ns per"
                        f" instruction (this run's wrapper: {us:.2f} µs / {ins:,.0f}) ="
                        f" {added * rate:+.3f} µs per call (target: at most {TARGET_US:g} µs)"
                    )
            lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=10)
    parser.add_argument("--calls", type=int, default=CALLS, help="per side and child")
    parser.add_argument("--before", type=Path, default=BEFORE, help="checkout before (de7da37)")
    parser.add_argument("--after", type=Path, default=ROOT, help="checkout after")
    parser.add_argument("--skip-wall", action="store_true")
    parser.add_argument("--skip-instructions", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    roots = {"before": args.before.resolve(), "after": args.after.resolve()}
    for version, root in roots.items():
        if not (root / "majordomo_log").is_dir():
            parser.error(f"--{version} {root}: no majordomo_log there")
    cpu = platform.processor() or "?"
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), cpu)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    loads = [os.getloadavg()]
    print(f"{started}, {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"before: {roots['before']}; after: {roots['after']}; load {loads[0]}", flush=True)
    wall_runs = counts = None
    t0 = time.monotonic()
    if not args.skip_wall:
        print(f"wall clock: {args.rounds} rounds of {args.calls} calls per side", flush=True)
        wall_runs = wall(roots, args.rounds, args.calls)
        loads.append(os.getloadavg())
    if not args.skip_instructions:
        print(f"callgrind: N = {N}, both checkouts in parallel", flush=True)
        counts = instructions(roots, N)
        loads.append(os.getloadavg())
    print(f"({time.monotonic() - t0:.0f} s; load averages {loads})\n")
    print("\n".join(report(wall_runs, counts)))
    if args.json:
        dump = {
            "started": started,
            "cpu": cpu,
            "loads": loads,
            "roots": {k: str(v) for k, v in roots.items()},
            "wall": wall_runs,
            "wall_figures": None if wall_runs is None else wall_figures(wall_runs),
            "instructions": counts,
            "n": N,
        }
        args.json.write_text(json.dumps(dump, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child-wall":
        child_wall(int(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "--child-count":
        child_count(int(sys.argv[2]))
    else:
        main()
