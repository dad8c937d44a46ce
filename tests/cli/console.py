"""Running ``majordomo-log`` as a user runs it: the installed console script, in a
process of its own, with this checkout's code first on the path (whichever checkout the
virtual environment was installed from), its output piped or on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("majordomo-log")
needs_script = pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is not installed")


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with stdout and stderr piped (not terminals)."""
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=environment(), timeout=300
    )


def run_on_terminal(*args: str, columns: int = 100) -> tuple[int, str, str]:
    """The command with stderr on a pseudo-terminal ``columns`` wide (0: one nobody
    sized, as some CI runners give): (exit status, stdout, what the terminal got)."""
    leader, follower = pty.openpty()
    # stdout to a file, not a pipe nobody would read while the terminal is being read
    with tempfile.TemporaryFile() as stdout:
        try:
            if columns:
                winsize = struct.pack("HHHH", 24, columns, 0, 0)
                fcntl.ioctl(follower, termios.TIOCSWINSZ, winsize)
            proc = subprocess.Popen(
                [str(SCRIPT), *args], stdout=stdout, stderr=follower, env=environment()
            )
            os.close(follower)
            follower = -1
            drawn = b""
            while True:  # read as it comes: a full terminal buffer would block the command
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the command's side is closed and drained
                    break
                if not chunk:
                    break
                drawn += chunk
            code = proc.wait(timeout=300)
        finally:
            if follower >= 0:
                os.close(follower)
            os.close(leader)
        stdout.seek(0)
        out = stdout.read().decode()
    return code, out, drawn.decode("utf-8", "replace")
