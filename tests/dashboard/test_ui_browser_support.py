"""The browser tests' harness (tests/support/browser.py): a missing browser skips them
with the reason, and fails them in CI; the screenshot reader counts colored pixels."""

from __future__ import annotations

import struct
import zlib

import browser as support
import pytest


def test_a_missing_browser_skips_with_the_reason_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(support, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(support, "REQUIRED", False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium at /nonexistent/chromium"):
        support.require_browser()
    monkeypatch.setattr(support, "REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="the browser is required"):
        support.require_browser()


def png(width: int, height: int, pixel: bytes, filter_type: int) -> bytes:
    """A PNG of one color (RGB), every row with the same filter type."""
    raw = bytearray()
    for y in range(height):
        line = pixel * width
        if filter_type == 1:  # Sub: each byte minus the one a pixel before
            line = bytes(
                (line[i] - (line[i - 3] if i >= 3 else 0)) & 0xFF for i in range(len(line))
            )
        elif filter_type == 2:  # Up: minus the row above (zero for the first)
            line = bytes(b - (pixel * width)[i] if y else b for i, b in enumerate(line))
            line = bytes(v & 0xFF for v in line)
        raw += bytes([filter_type]) + line

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("filter_type", [0, 1, 2])
def test_colored_pixels_are_counted_and_greys_are_not(filter_type: int) -> None:
    assert support.colored_pixels(png(7, 5, bytes([31, 111, 209]), filter_type)) == 35
    assert support.colored_pixels(png(7, 5, bytes([200, 200, 200]), filter_type)) == 0
    width, height, rows = support.png_pixels(png(3, 2, bytes([1, 2, 3]), filter_type))
    assert (width, height) == (3, 2) and rows[1] == bytes([1, 2, 3, 255]) * 3
