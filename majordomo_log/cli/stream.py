"""Pages of rows printed as they are read (``majordomo-log tail``): CSV with its header
once, JSON as one array written an element at a time (the same text ``render`` gives
for the whole list), and the table a page at a time, each page its own aligned table
with its header (columns are sized per page: a whole-log table would have to be read
whole first)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Sequence
from typing import Any, TextIO

from .render import render, write_csv

EMPTY_TABLE = "(no calls)"


async def print_pages(
    pages: AsyncIterable[list[dict[str, Any]]],
    fmt: str,
    columns: Sequence[str],
    out: TextIO,
) -> int:
    """Print each page to ``out`` as it comes, flushed; the number of rows printed."""
    count = 0
    if fmt == "csv":
        write_csv(out, [columns])
    elif fmt == "json":
        out.write("[")
    async for page in pages:
        if not page:
            continue
        if fmt == "csv":
            write_csv(out, [["" if r.get(c) is None else r.get(c) for c in columns] for r in page])
        elif fmt == "json":
            for r in page:
                item = json.dumps({c: r.get(c) for c in columns}, default=str, indent=2)
                out.write(("," if count else "") + "\n" + _indent(item))
                count += 1
            out.flush()
            continue
        else:
            out.write(("\n" if count else "") + render(page, "table", columns) + "\n")
        count += len(page)
        out.flush()
    if fmt == "json":
        out.write("\n]\n" if count else "]\n")
    elif fmt == "table" and not count:
        out.write(EMPTY_TABLE + "\n")
    out.flush()
    return count


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))
