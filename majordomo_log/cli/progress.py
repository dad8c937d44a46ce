"""Progress bars for the commands that take a while (``spool replay``, ``reprice``, a
large ``demo``): counts, total and rate on stderr, drawn by tqdm.

Shown only when stderr is a terminal, so a pipe, a log file or a captured test output
never fills with carriage returns; ``--progress`` forces the bar on (to see it through a
pager, or to test it) and ``--no-progress`` off. The library functions know nothing of
this: they take a plain ``progress(done, total)`` callback, and ``progress_bar`` yields
one that draws.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

Progress = Callable[[int, "int | None"], None]  # (done so far, the total when known)


def wanted(show: bool | None, stream: TextIO) -> bool:
    """Whether to draw: as ``--progress``/``--no-progress`` said, else when ``stream``
    is a terminal."""
    if show is not None:
        return show
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream: no terminal
        return False


_FALLBACK_SIZE = (80, 24)  # columns, rows


def _width(stream: TextIO) -> int:
    """The terminal's width; 0 when it has none (a pipe, with ``--progress``) or says 0
    (a pseudo-terminal nobody sized). Then the bar is given ``_FALLBACK_SIZE``: tqdm
    asks the terminal for what it is not given, and draws nothing in one of 0 rows."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _ignore(done: int, total: int | None) -> None:
    """The callback when no bar is drawn: the work reports to nobody."""


@contextlib.contextmanager
def progress_bar(
    description: str, unit: str, *, show: bool | None = None, stream: TextIO | None = None
) -> Iterator[Progress]:
    """A ``progress(done, total)`` callback drawing a bar on ``stream`` (stderr) while
    the block runs; the bar's last state and a newline once it is full, or when the
    block ends however it ends."""
    out = sys.stderr if stream is None else stream
    if not wanted(show, out):
        yield _ignore
        return
    # Imported here: tqdm takes some 40 ms to import, which tail and report never need.
    from tqdm import tqdm

    bars: list[tqdm[Any]] = []  # made at the first report, which knows the total
    sized = _width(out) > 0

    def update(done: int, total: int | None) -> None:
        if not bars:
            # mininterval: redrawn at most 10 times a second, whatever the rate of calls.
            bars.append(
                tqdm(
                    desc=description,
                    unit=unit,
                    total=total,
                    file=out,
                    mininterval=0.1,
                    ncols=None if sized else _FALLBACK_SIZE[0],
                    nrows=None if sized else _FALLBACK_SIZE[1],
                    dynamic_ncols=sized,
                )
            )
        bar = bars[0]
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total is not None and done >= total:
            # Ended as soon as it is full: what the command prints next (the demo's
            # report) starts on a line of its own. Closing twice is harmless.
            bar.close()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
