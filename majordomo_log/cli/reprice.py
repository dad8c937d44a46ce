"""What ``majordomo-log reprice`` prints on stdout: the result (its progress bar is
``cli/progress.py``'s)."""

from __future__ import annotations

from ..record.reprice import RepriceResult


def summary(result: RepriceResult, where: str) -> str:
    """The result in two lines (three with skipped rows), for stdout."""
    verb = "would change" if result.dry_run else "changed"
    lines = [
        f"{where}: {result.examined:,} rows examined: {result.changed:,} {verb}, "
        f"{result.unchanged:,} unchanged, {result.skipped_total:,} skipped"
        + (" (dry run: nothing written)" if result.dry_run else "")
    ]
    if result.skipped:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in result.skipped.items())
        lines.append(f"skipped: {reasons}")
    if result.changed:
        lines.append(
            f"total_cost of the {verb} rows: ${result.cost_before:.6f} -> ${result.cost_after:.6f}"
        )
    return "\n".join(lines)
