"""Time-ordered request ids (UUIDv7, RFC 9562), made off the caller's path.

Python < 3.14 has no uuid7. The caller's path takes only what an id is made of: the
start time it already has and 74 random bits (``random_bits``, 0.1 µs); the string is
formatted when something first reads ``CallRecord.request_id``, usually the writer
(0.9 µs that a call no longer pays). The same bits give the same string, so two
threads that read it at once agree without a lock. Time-ordered ids keep SQL primary
keys append-only.

The random bits come from a private generator seeded from ``os.urandom`` and reseeded
in every forked child (an ``os.urandom`` call per id costs 0.6 µs); ids need to be
unique, not secret.
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid

_random = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
random_bits = _random.getrandbits

# version 7 in bits 76-79, the RFC 9562 variant (binary 10) in bits 62-63
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_LOW_62 = (1 << 62) - 1


def format_uuid7(unix_ms: int, rand74: int) -> str:
    """The UUIDv7 string for a Unix time in ms and 74 random bits."""
    value = (
        ((unix_ms & 0xFFFF_FFFF_FFFF) << 80)
        | _VERSION_AND_VARIANT
        | ((rand74 >> 62) << 64)
        | (rand74 & _LOW_62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7(unix_ms: int | None = None) -> str:
    """A new UUIDv7 string whose first 48 bits are the Unix time in ms (now by default)."""
    if unix_ms is None:
        unix_ms = time.time_ns() // 1_000_000
    return format_uuid7(unix_ms, random_bits(74))


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def request_id_text(value: object) -> str:
    """``value`` as a request id the log can hold, or why not: a ``str`` spelled as the
    log spells ids (a UUID, lower case, dashed: what ``call_info(resp).request_id``
    gives) or a ``uuid.UUID`` (as a PostgreSQL driver returns the column)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(
            f"request_id must be the str from call_info(response).request_id, "
            f"got {type(value).__name__}"
        )
    if not _CANONICAL.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(
            f"request_id {shown!r} is not a request id of this log: a UUID in lower case "
            "with dashes, as call_info(response).request_id gives (not the provider's id)"
        )
    return value
