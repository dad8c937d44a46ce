"""The ``majordomo_log`` logger and once-per-key warnings.

Applications own logging configuration: the library only adds a NullHandler and
lets records propagate. A warning that could fire on every call (an unknown
model, a store that is down) is emitted once per kind and key per process.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("majordomo_log")
logger.addHandler(logging.NullHandler())

_seen: set[tuple[str, str]] = set()
_seen_lock = threading.Lock()


def warn_once(kind: str, key: str, message: str, *args: object) -> None:
    """Log ``message`` at WARNING the first time (kind, key) is seen."""
    with _seen_lock:
        if (kind, key) in _seen:
            return
        _seen.add((kind, key))
    logger.warning(message, *args)


def reset_warnings() -> None:
    """Forget which warnings were emitted (for tests)."""
    with _seen_lock:
        _seen.clear()
