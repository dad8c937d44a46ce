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
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from ..._exceptions import BodyNotFound, ConfigError
from ..._loop_turns import LoopTurns
from ...schema import Body

MODES = ("object", "segment")
_REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RANGE = re.compile(r"^(?P<key>.+)#(?P<offset>\d+)\+(?P<length>\d+)$")
_GZIP_WBITS = 31  # zlib's own gzip wrapper: header (mtime 0), deflate, CRC and size

isal_zlib: Any
try:  # python-isal (the ``fast`` extra): the same gzip members, deflated 2-5x faster
    from isal import isal_zlib
except ImportError:  # the stdlib's zlib does the same job
    isal_zlib = None

# Which deflate makes the gzip members: "isal" where python-isal is installed, else
# "zlib". Either writes standard gzip (RFC 1952) that gzip, zcat and the other read.
DEFLATE = "zlib" if isal_zlib is None else "isal"
# zlib's levels (1-9) as isal's (0-3; its 0 compresses much less than zlib's 1).
_ISAL_LEVELS = (None, 1, 2, 2, 2, 2, 3, 3, 3, 3)
# What zlib deflates between two turns of the event loop (about 4 ms at level 1 here).
_PIECE_BYTES = 256 * 1024


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


def compress(
    payload: bytes | bytearray,
    level: int,
    *,
    end: bytes = b"",
    turns: LoopTurns | None = None,
) -> bytes:
    """``payload`` then ``end`` as one gzip member with mtime 0 (by isal where it is
    installed, else zlib, as ``gzip.compress(payload + end, level, mtime=0)`` makes it
    on Python 3.11+: ``DEFLATE``).

    zlib deflates without the GIL but takes it back between calls, to grow and join its
    output: fed ``_PIECE_BYTES`` at a time, with a turn for the event loop after each
    piece, a body of many megabytes never keeps the worker in C with the GIL for long.
    """
    deflate = _compressobj(level)
    if len(payload) <= _PIECE_BYTES:
        member: bytes = deflate.compress(payload) + deflate.compress(end) + deflate.flush()
        return member
    turns = turns or LoopTurns()
    view = memoryview(payload)
    pieces: list[bytes] = []
    for start in range(0, len(view), _PIECE_BYTES):
        pieces.append(deflate.compress(view[start : start + _PIECE_BYTES]))
        turns.maybe_yield()
    pieces += (deflate.compress(end), deflate.flush())
    return b"".join(pieces)


def _compressobj(level: int) -> Any:
    """A gzip-wrapped deflate stream from ``DEFLATE``'s library. Level 0 (stored, no
    compression) is zlib's either way: isal has no such level."""
    isal_level = _ISAL_LEVELS[level]
    if DEFLATE == "isal" and isal_zlib is not None and isal_level is not None:
        return isal_zlib.compressobj(isal_level, isal_zlib.DEFLATED, _GZIP_WBITS)
    return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)


def build_segment(bodies: Sequence[Body], level: int) -> tuple[str, bytes, list[str]]:
    """(segment key, segment bytes, one ``#offset+length`` suffix per body)."""
    members, suffixes, offset = [], [], 0
    turns = LoopTurns()
    for _, _, payload in bodies:
        turns.maybe_yield()
        member = compress(payload, level, end=b"\n", turns=turns)
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


def read_envelope(data: bytes, ref: str) -> dict[str, Any]:
    """The envelope in a body's stored bytes, or ``BodyNotFound`` if they are not one
    gzipped JSON object."""
    try:
        result = orjson.loads(decompress(data, ref))
    except orjson.JSONDecodeError as exc:  # e.g. a range spanning two members
        raise BodyNotFound(f"the body at {shown_ref(ref)} is not one JSON envelope") from exc
    if not isinstance(result, dict):
        raise BodyNotFound(f"the body at {shown_ref(ref)} is not one JSON envelope")
    return result


# -- the store boundary: what a store accepts to write, and to read ------------------------

# S3's limit on a key's length; no key of this layout comes near it.
MAX_KEY_BYTES = 1024
# S3's limit on an object's size: no byte range of a real reference reaches past it.
MAX_OBJECT_BYTES = 5 * 2**40


async def put_checked(
    bodies: Sequence[Body],
    put: Callable[[list[Body]], Awaitable[list[str | None]]],
    refused: Callable[[str], None],
) -> list[str | None]:
    """``put_many`` for a store: each body checked (``body_problem``), a bad one refused
    alone (``refused(problem)``, None in its place), the rest stored by ``put``."""
    refs: list[str | None] = [None] * len(bodies)
    valid = []
    for index, body in enumerate(bodies):
        problem = body_problem(body)
        if problem is None:
            valid.append(index)
        else:
            refused(problem)
    if valid:
        stored = await put([bodies[i] for i in valid])
        for index, ref in zip(valid, stored, strict=True):
            refs[index] = ref
    return refs


def body_problem(body: Body) -> str | None:
    """Why a body cannot be stored, or None. Its request id and time make its key, and a
    tampered spool could carry anything: a key is only made from a real request id (a
    lower-case UUIDv7) and a datetime."""
    request_id, started_at, payload = body
    if not isinstance(request_id, str) or not is_request_id(request_id):
        return "its request id is not a UUIDv7"
    if not isinstance(started_at, dt.datetime):
        return "its started_at is not a datetime"
    try:
        day_prefix(started_at)
    except (OverflowError, ValueError):
        return "its started_at is out of range"
    if not isinstance(payload, (bytes, bytearray)):
        return "it is not bytes"
    return None


def shown_ref(ref: object) -> str:
    """A reference as put in a message: it comes from a row, which may hold anything."""
    return f"{str(ref)!r:.80}"


def request_id_key(ref: str, mode: str) -> str:
    """A bare request id as its body's key (object mode only: a segment's key cannot be
    told from a request id); any other reference as it is."""
    if not is_request_id(ref):
        return ref
    if mode == "segment":
        raise BodyNotFound(
            "in segment mode a body is found by the reference stored on its row (body_ref)"
        )
    return key_for_request_id(ref)


def parse_ref(ref: str) -> tuple[str, tuple[int, int] | None]:
    """(key, byte range or None) of a reference, or ``BodyNotFound`` for one that cannot
    name a body: empty, an impossible range, a key with an empty, '.' or '..' segment,
    a leading '/', a backslash or a control character, or longer than any key."""
    if not isinstance(ref, str) or not ref:
        raise BodyNotFound("an empty body reference names no body")
    try:
        key, span = split_ref(ref)
    except ValueError:  # an offset of thousands of digits
        raise BodyNotFound(f"{shown_ref(ref)} is not a body reference") from None
    if span is not None and (span[1] == 0 or span[0] + span[1] > MAX_OBJECT_BYTES):
        raise BodyNotFound(f"{shown_ref(ref)} names an impossible byte range")
    check_key(key, ref)
    return key, span


def check_key(key: str, ref: str) -> None:
    """``BodyNotFound`` unless ``key`` is a plain relative key that stays where it is put."""
    if (
        not key
        or key.startswith("/")
        or any(segment in ("", ".", "..") for segment in key.split("/"))
        or any(ch < " " or ch in "\\\x7f" for ch in key)
        or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES
    ):
        raise BodyNotFound(f"{shown_ref(ref)} is not a body reference")
