"""Rows as the CLI prints them: an aligned table, CSV or JSON.

The table is for a terminal, so its cells and headers show control characters (C0,
DEL, C1) escaped, as ``\\x1b``, ``\\r``, ``\\n``, ``\\t``: a tag of ``'\\x1b[2J'`` in the
log must not clear the screen of whoever reads it, nor ``'\\r'`` write over a line. CSV
and JSON are data for programs and keep every value exactly."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}")
    for code in (*range(0x20), *range(0x7F, 0xA0))  # C0, DEL, C1
}


def render(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else ()))
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], default=str, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        write_csv(out, [columns])
        write_csv(out, [["" if r.get(c) is None else r.get(c) for c in columns] for r in rows])
        return out.getvalue().rstrip("\n")
    if not rows:
        return "(no calls)"
    headers = [escape(c) for c in columns]
    cells = [[escape(_cell(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def write_csv(out: TextIO, rows: Iterable[Sequence[Any]]) -> None:
    """CSV lines ending in '\\n'. A row with a '\\r' in a value has every value quoted:
    the csv module quotes only the line terminator's characters, and a bare '\\r' would
    end the record for a reader."""
    plain = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        (quoted if any("\r" in str(v) for v in row) else plain).writerow(row)


def escape(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\n``)."""
    return text.translate(_ESCAPES)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.6f}" if abs(value) < 1000 else f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return value is None or (
        isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    )
