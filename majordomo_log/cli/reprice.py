"""What ``majordomo-log reprice`` shows: a progress bar on stderr while it runs (when
stderr is a terminal; otherwise one plain line at the end, nothing a log file would
fill with carriage returns), and the result on stdout."""

from __future__ import annotations

import time
from typing import TextIO

from ..record.reprice import RepriceResult


class ProgressBar:
    """``progress=`` for ``reprice``: redrawn at most every ``interval`` seconds."""

    def __init__(self, stream: TextIO, *, width: int = 30, interval: float = 0.1) -> None:
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):  # a closed or fake stream: no terminal
            self.tty = False
        self.width = width
        self.interval = interval
        self.read = 0
        self.total: int | None = None
        self._drawn = 0.0
        self._shown = False

    def update(self, read: int, total: int | None) -> None:
        self.read, self.total = read, total
        now = time.monotonic()
        if self.tty and now - self._drawn >= self.interval:
            self._drawn = now
            self._draw()

    def finish(self, done: bool = True) -> None:
        """The bar's last state and a newline; without a terminal, the count in one line.
        ``done=False`` (the run failed): only end the bar's line, if one was drawn."""
        if self.tty:
            if done:
                self._draw()
            if self._shown:
                self.stream.write("\n")
        elif done:
            self.stream.write(f"reprice: {self.read:,} rows read\n")
        self.stream.flush()

    def _draw(self) -> None:
        total = self.total or 0
        share = min(self.read / total, 1.0) if total else 1.0
        filled = round(self.width * share)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rrepricing [{bar}] {self.read:,}/{total:,} rows")
        self.stream.flush()
        self._shown = True


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
