"""The dashboard's static files, shipped in the package (``dashboard/static/``) and read
through ``importlib.resources``, so they come from the wheel, a zip or a source tree
alike: no CDN, no network at run time.

The chart is drawn in the browser by uPlot (https://github.com/leeoniya/uPlot, MIT,
``static/uPlot.LICENSE``), vendored from the npm registry as published (version and
SHA-256 below; ``tests/dashboard/test_assets.py`` checks them). Why a script rather than
SVG drawn on the server: uPlot is one 51 KB file with no dependencies, draws thousands of
points on a canvas at once (a year of hourly buckets is 8,760 per line), and gives the
chart a cursor with the values under it and drag-to-zoom, which static SVG would need
our own script for anyway. Nothing depends on it: every figure it draws is also in an
HTML table on the page, so a page read without scripts (a screen reader, a test, curl)
loses nothing. It sets styles through the DOM only and builds its legend with
``textContent``, so it runs under the Content-Security-Policy the server sends (no
inline script or style) and a group named ``<script>`` is text on the legend too.

``dashboard.js`` is ours: it reads the chart's figures from the page's JSON and draws
them; ``dashboard.css`` is the look (dark text on a light background).
"""

from __future__ import annotations

import hashlib
from importlib import resources

UPLOT_VERSION = "1.6.32"
# name: Content-Type. Only these are served: a path is never looked up as it comes.
ASSETS = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# uPlot's files as in the npm package uplot@1.6.32 (dist/, and LICENSE).
VENDORED_SHA256 = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "uPlot.LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}

_cache: dict[str, bytes] = {}


def read(name: str) -> bytes | None:
    """A static file's bytes, or None when ``name`` is not one of :data:`ASSETS`."""
    if name not in ASSETS:
        return None
    data = _cache.get(name)
    if data is None:
        data = resources.files(__package__).joinpath("static", name).read_bytes()
        _cache[name] = data
    return data


def content_type(name: str) -> str:
    return ASSETS[name]


def etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
