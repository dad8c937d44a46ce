"""The body layout shared by the file and S3 stores.

Two modes:

* ``object`` — one gzipped JSON envelope per call at ``YYYY/MM/DD/{request_id}.json.gz``:
  easy to browse, to fetch with standard tools and to expire by date prefix.
* ``segment`` — one object per batch at ``YYYY/MM/DD/segments/{first_request_id}.seg.gz``
  holding every envelope of the batch as its own gzip member, one after the other. The
  file is an ordinary multi-member gzip (``zcat`` prints the envelopes, one per line);
  each call's reference names the segment and its member's byte range
  (``...seg.gz#OFFSET+LENGTH``), read back with one ranged read. Far fewer writes (and,
  on S3, far fewer billed PUT requests) per body.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from collections.abc import Sequence

from .._exceptions import BodyNotFound, ConfigError
from .._gil import LoopTurns
from .base import Body

MODES = ("object", "segment")
_REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RANGE = re.compile(r"^(?P<key>.+)#(?P<offset>\d+)\+(?P<length>\d+)$")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"body mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def day_prefix(started_at: dt.datetime) -> str:
    return f"{started_at.astimezone(dt.timezone.utc):%Y/%m/%d}"


def body_key(request_id: str, started_at: dt.datetime) -> str:
    """The date-partitioned key of one body in object mode."""
    return f"{day_prefix(started_at)}/{request_id}.json.gz"


def is_request_id(value: str) -> bool:
    return bool(_REQUEST_ID.match(value))


def key_for_request_id(request_id: str) -> str:
    """A UUIDv7 carries its creation time, so its object-mode key needs no row."""
    unix_ms = int(request_id.replace("-", "")[:12], 16)
    return body_key(request_id, dt.datetime.fromtimestamp(unix_ms / 1000, dt.timezone.utc))


def compress(payload: bytes, level: int) -> bytes:
    return gzip.compress(payload, compresslevel=level, mtime=0)


def build_segment(bodies: Sequence[Body], level: int) -> tuple[str, bytes, list[str]]:
    """(segment key, segment bytes, one ``#offset+length`` suffix per body)."""
    members, suffixes, offset = [], [], 0
    turns = LoopTurns()
    for _, _, payload in bodies:
        turns.maybe_yield()
        member = compress(payload + b"\n", level)
        members.append(member)
        suffixes.append(f"#{offset}+{len(member)}")
        offset += len(member)
    request_id, started_at, _ = bodies[0]
    key = f"{day_prefix(started_at)}/segments/{request_id}.seg.gz"
    return key, b"".join(members), suffixes


def split_ref(ref: str) -> tuple[str, tuple[int, int] | None]:
    """(key, (offset, length) or None) of a body reference."""
    match = _RANGE.match(ref)
    if match is None:
        return ref, None
    return match["key"], (int(match["offset"]), int(match["length"]))


def decompress(data: bytes, ref: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise BodyNotFound(f"the body at {ref!r} is not a gzip member: {exc}") from exc
