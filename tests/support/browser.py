"""A real headless browser for the dashboard's tests: Debian's Chromium driven by
Playwright for Python (its own browser downloads cannot work here, so it is pointed at
``/usr/bin/chromium``).

``require_browser()`` skips a test with the reason when Playwright or Chromium is not
installed, and fails it instead under ``MAJORDOMO_TEST_REQUIRE_SERVERS=1`` (set by
.ci/run, which installs Chromium with apt-get when it is missing), as
``servers.require`` does for the database servers. ``MAJORDOMO_TEST_CHROMIUM`` names
another Chromium binary.

Each launch gets a fresh profile (Playwright makes a new user-data-dir per launch and
deletes it afterwards), and the flags keep Chromium off the network: no background
networking, component updates, sync or QUIC. Screenshots are read with a small PNG
decoder (stdlib zlib), so no imaging package is needed.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from servers import REQUIRED

CHROMIUM = os.environ.get("MAJORDOMO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root, as CI runs
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_problem() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    return None


def require_browser() -> None:
    """Skip (fail in CI) when Playwright or Chromium is missing."""
    problem = browser_problem()
    if problem is None:
        return
    if REQUIRED:
        pytest.fail(problem + " (MAJORDOMO_TEST_REQUIRE_SERVERS=1: the browser is required)")
    pytest.skip(problem)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``), closed afterwards."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# -- reading a screenshot ----------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA bytes) of an 8-bit RGB or RGBA, non-interlaced PNG
    (what Chromium's screenshots are)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, color type {color}")
    channels = 4 if color == 6 else 3
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        previous = line
        if channels == 3:
            rgba = bytearray(width * 4)
            rgba[0::4], rgba[1::4], rgba[2::4] = line[0::3], line[1::3], line[2::3]
            rgba[3::4] = b"\xff" * width
            rows.append(bytes(rgba))
        else:
            rows.append(bytes(line))
    return width, height, rows


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    n = len(line)
    if kind == 0:
        return
    if kind == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + predictor) & 0xFF
    else:
        raise ValueError(f"bad PNG filter {kind}")


def colored_pixels(png: bytes, spread: int = 80) -> int:
    """How many pixels are clearly colored (their channels differ by more than
    ``spread``): a chart's lines, where text, axes and grid are greys and white."""
    _, _, rows = png_pixels(png)
    total = 0
    for row in rows:
        for i in range(0, len(row), 4):
            r, g, b = row[i], row[i + 1], row[i + 2]
            if max(r, g, b) - min(r, g, b) > spread:
                total += 1
    return total
