"""How records wait and how writes are retried: small validated option objects, each
default in one place.

    llm = ml.LoggingLLM(client, db, storage,
                        queue=ml.QueueOptions(batch_size=500, on_full="block"),
                        retries=ml.RetryOptions(max_retries=8))

Wrappers that share a pair of stores share one writer, made with the options of the
first; a later wrapper asking for other options gets a logged warning
(``delivery/shared.py``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from .._exceptions import ConfigError

OnFull = Literal["spill", "drop_bodies_first", "block"]
WriterMode = Literal["thread", "process"]
WRITER_MODES: tuple[WriterMode, ...] = ("thread", "process")
StartMethod = Literal["fork", "spawn"]
START_METHODS: tuple[StartMethod, ...] = ("fork", "spawn")
ON_FULL_POLICIES: tuple[OnFull, ...] = ("spill", "drop_bodies_first", "block")
MIN_QUEUE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """The queue between the caller and the background writer.

    ``batch_size`` records are written in one transaction, at the latest every
    ``flush_interval`` seconds. The queue holds at most ``max_records`` records and
    ``max_bytes`` of their bodies; over either budget ``on_full`` decides: ``spill``
    to the spool, ``drop_bodies_first`` (rows are kept), or ``block`` (the caller
    waits for room)."""

    batch_size: int = 1000
    flush_interval: float = 1.0
    max_records: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    on_full: OnFull = "spill"

    def __post_init__(self) -> None:
        _whole("batch_size", self.batch_size, 1)
        _whole("max_records", self.max_records, 1)
        _whole("max_bytes", self.max_bytes, MIN_QUEUE_BYTES)
        interval = self.flush_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise ConfigError(
                f"flush_interval must be a positive number of seconds, got {interval!r}"
            )
        if self.on_full not in ON_FULL_POLICIES:
            raise ConfigError(
                f"on_full must be one of {', '.join(ON_FULL_POLICIES)}, got {self.on_full!r}"
            )


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """How often a batch is retried while a store is unavailable, before it goes to
    the spool: ``max_retries`` more tries, ``backoff_base * 2**attempt`` seconds apart at
    most (capped at ``backoff_cap``), with full jitter so that writers that failed
    together do not retry together."""

    max_retries: int = 5
    backoff_base: float = 0.1
    backoff_cap: float = 5.0

    def __post_init__(self) -> None:
        _whole("max_retries", self.max_retries, 0)
        for name in ("backoff_base", "backoff_cap"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"{name} must be a number of seconds, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (0 first): full jitter."""
        return random.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """The child process of ``writer="process"`` (``delivery/process.py``).

    ``start_method``: ``"fork"`` (the default where ``os.fork`` exists: the child
    inherits the stores, which it reopens, and the redact hooks) or ``"spawn"`` (a fresh
    interpreter: the stores must be SQLite, files or picklable, and the redact hooks
    and usage extractor picklable, i.e. module-level functions). A child that dies is
    restarted ``max_restarts`` times in a row at most (with backoff) before what it
    would have written is spooled in the application's process; ``start_timeout``
    bounds how long one start may take."""

    start_method: StartMethod | None = None
    max_restarts: int = 5
    start_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.start_method is not None and self.start_method not in START_METHODS:
            raise ConfigError(
                f"start_method must be one of {', '.join(START_METHODS)}, got {self.start_method!r}"
            )
        _whole("max_restarts", self.max_restarts, 0)
        timeout = self.start_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"start_timeout must be a positive number, got {timeout!r}")


def check_writer_mode(mode: object) -> WriterMode:
    """``LoggingLLM(writer=...)``: where records are priced, serialized and written."""
    for known in WRITER_MODES:
        if mode == known:
            return known
    raise ConfigError(f"writer must be one of {', '.join(WRITER_MODES)}, got {mode!r}")


def _whole(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be a whole number of at least {least}, got {value!r}")
