"""The benchmark suite: every scenario in one process, a table, JSON and docs/benchmarks.md.

    make bench                                  # builds .venv-bench, then runs this
    .venv-bench/bin/python bench/run.py [--quick] [--only overhead,memory] [--publish]

Scenarios (modules of this folder, each ``async def run(rounds) -> list[dict]``), in order:
overhead, sync_overhead, budget_overhead, stages, throughput, raw_ceiling, stall,
process_writer, memory, vs_majordomo_llm. A module that is missing, or whose requirement is
missing (majordomo-llm), is reported as skipped with the reason; one that fails is reported
with its error and the others still run.

A full run (no ``--quick``, no ``--only``) writes bench/results/latest.json (results and
machine facts, including a calibration: ``sum(range(1000))`` µs) and rewrites the
generated block of docs/benchmarks.md between ``<!-- bench:begin -->`` and
``<!-- bench:end -->``. Other runs write bench/results/partial.json only, unless
``--publish`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, skipped  # noqa: E402

SCENARIOS = (
    "overhead",
    "sync_overhead",
    "budget_overhead",
    "stages",
    "throughput",
    "raw_ceiling",
    "stall",
    "process_writer",
    "memory",
    "vs_majordomo_llm",
)
REQUIRES = {"vs_majordomo_llm": "majordomo_llm"}  # module -> package it needs
ROUNDS, ROUNDS_QUICK = 5, 1
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
MARKDOWN = HERE.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

How fast majordomo-log is, measured by `make bench` (bench/run.py); see bench/*.py for
what each figure measures and how.

"""


async def run_scenario(name: str, rounds: int, quick: bool) -> list[dict[str, Any]]:
    """The result rows of one scenario module, or one skipped row saying why."""
    needs = REQUIRES.get(name)
    if needs is not None and importlib.util.find_spec(needs) is None:
        return [skipped(name, "all", f"{needs} is not installed (make bench installs it)")]
    if not (HERE / f"{name}.py").exists():
        return [skipped(name, "all", f"bench/{name}.py does not exist")]
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return [skipped(name, "all", f"import failed: {exc}")]
    runner = module.run
    kwargs = {"quick": True} if quick and "quick" in inspect.signature(runner).parameters else {}
    try:
        rows: list[dict[str, Any]] = await runner(rounds, **kwargs)
    except Exception as exc:
        traceback.print_exc()
        return [skipped(name, "all", f"failed: {type(exc).__name__}: {exc}") | {"error": True}]
    return rows


def fmt(value: float | None) -> str:
    if value is None:
        return "skipped"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"


def met_mark(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


def table(rows: list[dict[str, Any]]) -> str:
    head = ("scenario", "metric", "value", "unit", "target", "met")
    cells = [
        (
            r["scenario"],
            r["metric"],
            fmt(r["value"]),
            r["unit"],
            r["target"] or "",
            met_mark(r["met"]),
        )
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    lines = []
    for cell in [head, *cells]:
        parts = [
            str(c).rjust(w) if i == 2 else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cell, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_block(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Run of {m['date']} at {m['git_rev']}, {report['wall_seconds']:.0f} s wall time"
        f"{' (quick)' if report['quick'] else ''}: Python {m['python']}, {m['cpu']}, "
        f"{m['nproc']} CPUs; calibration `sum(range(1000))` = "
        f"{m['calibration_sum_range_1000_us']} µs; micro-operations "
        f"{m.get('slowdown_vs_reference', '?')}x the time they took on the machine of "
        "REFERENCE.md §3, where the targets were set. Values are medians over rounds "
        "(bench/results/latest.json has every run).",
        "",
        "| scenario | metric | value | unit | target | met | note |",
        "|---|---|--:|---|---|---|---|",
    ]
    for r in report["results"]:
        note = str(r.get("note", "")).replace("|", "/")
        lines.append(
            f"| {r['scenario']} | {r['metric']} | {fmt(r['value'])} | {r['unit']} | "
            f"{r['target'] or ''} | {met_mark(r['met'])} | {note} |"
        )
    return "\n".join(lines)


def write_markdown(block: str) -> None:
    text = MARKDOWN.read_text() if MARKDOWN.exists() else HEADER + f"{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    MARKDOWN.write_text(f"{before}{BEGIN}\n{block}\n{END}{after}")


async def main(args: argparse.Namespace) -> int:
    names = list(SCENARIOS) if not args.only else args.only.split(",")
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
        return 2
    rounds = args.rounds or (ROUNDS_QUICK if args.quick else ROUNDS)
    started = time.perf_counter()
    info = machine()
    print(f"machine: {info}", flush=True)
    results: list[dict[str, Any]] = []
    for name in names:
        t0 = time.perf_counter()
        print(f"== {name} (rounds={rounds}{', quick' if args.quick else ''})", flush=True)
        rows = await run_scenario(name, rounds, args.quick)
        print(table(rows))
        print(f"   ({time.perf_counter() - t0:.0f} s)\n", flush=True)
        results += rows
    report = {
        "machine": info,
        "quick": args.quick,
        "only": names if args.only else None,
        "rounds": rounds,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    print(table(results))
    print(f"\nwall time {report['wall_seconds']:.0f} s")
    publish = args.publish or not (args.quick or args.only)
    out = HERE / "results" / ("latest.json" if publish else "partial.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(HERE.parent)}")
    if publish:
        write_markdown(markdown_block(report))
        print(f"rewrote the generated table in {MARKDOWN.name}")
    return 1 if any(r.get("error") for r in results) else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller runs")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5, quick 1)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write latest.json and docs/benchmarks.md even for a --quick/--only run",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
