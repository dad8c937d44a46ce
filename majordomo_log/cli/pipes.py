"""A reader that stops reading (``majordomo-log tail -n 0 | head``): what the command
does when its stdout is a pipe closed early.

Python ignores SIGPIPE, so a write to the closed pipe raises ``BrokenPipeError``. As
the Python docs' note on SIGPIPE says, stdout is then pointed at ``os.devnull``, so
that the interpreter's last flush of what is still buffered does not raise again. The
command prints nothing more and exits 141 (128 + SIGPIPE), the status a shell reports
for a command SIGPIPE ended; ``set -o pipefail`` scripts see it as the usual one.
"""

from __future__ import annotations

import os
import signal
import sys

PIPE_CLOSED = 128 + signal.SIGPIPE


def stdout_closed() -> int:
    """Stdout to ``os.devnull``, so that nothing more fails; the status to exit with."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no stdout file descriptor to point elsewhere
        pass
    return PIPE_CLOSED
