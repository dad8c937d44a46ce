"""``majordomo-log spool status|inspect|replay``: the records waiting on local disk for a
store, shown, and written to the stores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._exceptions import SpoolCorrupt
from ..delivery.replay import replay_spool
from ..delivery.spool import Spool, default_spool_dir, spool_root
from ..schema import COLUMNS
from ..stores.open import open_db, open_storage
from ..stores.urls import shown_url
from .progress import progress_bar
from .render import render


def spool_dirs(args: argparse.Namespace) -> list[Path]:
    """The spool named by --spool-dir, or every spool under the spool root."""
    if args.spool_dir:
        return [Path(args.spool_dir)]
    root = spool_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir())


async def cmd_spool_status(args: argparse.Namespace) -> int:
    """One line per spool holding records; a spool folder with nothing in it (a wrapper
    makes its folder when it starts) is counted, not listed: it is for no store yet."""
    rows, empty = [], 0
    for folder in spool_dirs(args):
        spool = Spool(folder)
        status = spool.status()
        if not status.files and not status.rejected_files:
            empty += 1
            continue
        db, storage = _stores_of(spool)
        rows.append(
            {
                "spool": str(folder),
                "db": db,
                "storage": storage,
                "files": status.files,
                "records": status.records,
                "bytes": status.bytes,
                "oldest": status.oldest.isoformat(timespec="seconds") if status.oldest else None,
                "rejected": status.rejected_records,
            }
        )
    where = f"in {args.spool_dir}" if args.spool_dir else f"under {spool_root()}"
    if not rows:
        print(f"no spooled records {where}" + (f" ({_empty(empty)})" if empty else ""))
        return 0
    print(render(rows, args.format))
    if empty and args.format == "table":
        print(f"\n{_empty(empty)}, not shown")
    return 0


def _empty(count: int) -> str:
    return f"{count} empty spool folder{'s' if count != 1 else ''} (nothing waiting)"


def _stores_of(spool: Spool) -> tuple[str, str]:
    """The stores a spool's records are for, as its first file's header names them."""
    first = next(iter(spool.pending() or spool.rejected()), None)
    if first is None:
        return "(unknown: no file)", "(unknown: no file)"
    try:
        batch = spool.read(first)
    except (SpoolCorrupt, OSError):
        return "(unknown: unreadable file)", "(unknown: unreadable file)"
    # Written by the stores, without secrets; redacted again (shown_url) in case an
    # older version or another store wrote them.
    return (
        shown_url(batch.db) if batch.db else "(not recorded)",
        shown_url(batch.storage) if batch.storage else "(none: rows only)",
    )


async def cmd_spool_inspect(args: argparse.Namespace) -> int:
    rows = []
    for folder in spool_dirs(args):
        spool = Spool(folder)
        files = spool.rejected() if args.rejected else spool.pending()
        for path in files:
            batch = spool.read(path)
            for entry in batch.entries:
                row = dict(zip(COLUMNS, entry.row, strict=True))
                rows.append(
                    {
                        "file": path.name,
                        "reason": batch.reason,
                        "request_id": entry.request_id,
                        "started_at": row["started_at"],
                        "model": row["model"],
                        "status": row["status"],
                        "total_cost": row["total_cost"],
                        "body": "stored" if entry.body_ref else ("spooled" if entry.body else ""),
                        "error": entry.error or batch.error,
                    }
                )
    print(render(rows, args.format) if rows else "(empty)")
    return 0


async def cmd_spool_replay(args: argparse.Namespace) -> int:
    db = await open_db(args.db)
    try:
        storage = await open_storage(args.storage)
        try:
            folder = args.spool_dir or default_spool_dir(db.url, storage.url)
            with progress_bar("replaying", "records", show=args.progress) as progress:
                result = await replay_spool(
                    Spool(folder), db, storage, any_store=args.any_store, progress=progress
                )
        finally:
            await storage.close()
    finally:
        await db.close()
    print(
        f"replayed {result.records} records from {result.files} files in {folder}; "
        f"{result.rejected} rejected, {result.skipped} files skipped, {result.corrupt} unreadable"
    )
    if result.skipped and not args.any_store:
        print(
            "skipped files were spooled for other stores: pass --spool-dir and --any-store "
            "to write them here",
            file=sys.stderr,
        )
    return 1 if result.rejected or result.corrupt else 0
