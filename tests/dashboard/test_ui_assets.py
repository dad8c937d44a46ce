"""The dashboard's static files (majordomo_log/dashboard/assets.py): each resolves
through importlib.resources (so from the wheel as from the tree), uPlot is the file the
npm registry published, with its license, and nothing names an outside address.
tests/test_packaging.py checks that the wheel carries them."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from majordomo_log.dashboard import assets


def test_every_asset_resolves_through_importlib_resources() -> None:
    folder = resources.files("majordomo_log.dashboard").joinpath("static")
    on_disk = {entry.name for entry in folder.iterdir() if entry.is_file()}
    assert on_disk == set(assets.ASSETS)
    for name in assets.ASSETS:
        data = assets.read(name)
        assert data and data == folder.joinpath(name).read_bytes(), name


def test_uplot_is_as_published_with_its_license() -> None:
    for name, digest in assets.VENDORED_SHA256.items():
        assert hashlib.sha256(assets.read(name) or b"").hexdigest() == digest, name
    license_text = (assets.read("uPlot.LICENSE") or b"").decode()
    assert "The MIT License" in license_text and "Leon Sorokin" in license_text
    assert f"(v{assets.UPLOT_VERSION})" in (assets.read("uPlot.iife.min.js") or b"")[:80].decode()


def test_only_named_assets_are_served() -> None:
    for name in ("../server.py", "static/dashboard.js", "", "__init__.py", "dashboard.JS"):
        assert assets.read(name) is None


def test_our_script_and_styles_name_no_outside_address() -> None:
    for name in ("dashboard.js", "dashboard.css", "uPlot.min.css"):
        assert not re.search(rb"https?://|//[a-z]", assets.read(name) or b""), name
    script = (assets.read("uPlot.iife.min.js") or b"").decode()
    # uPlot's only address is its own header comment; it fetches nothing.
    assert re.findall(r"https?://[^\s)*]+", script) == ["https://github.com/leeoniya/uPlot"]
    assert "XMLHttpRequest" not in script and "fetch(" not in script
