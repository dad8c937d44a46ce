"""Exceptions raised by majordomo-log.

Nothing here is ever raised into a wrapped LLM call: the logging path swallows,
counts and logs its own failures. These reach code that talks to majordomo-log
directly (opening stores, the CLI, configuration).

    MajordomoLogError
    ├── ConfigError            bad price file, bad URL, bad option value
    ├── StoreError             a metadata or body store failed
    │   ├── StoreUnavailable   transient: connection refused/reset, timeout
    │   └── MigrationError     the schema could not be brought up to date
    ├── BodyNotFound           storage.get() found no body for the reference
    ├── SpoolFull              the spool is over its size cap, or its disk refused a batch
    └── SpoolCorrupt           a spool file cannot be read back (moved to rejected/)
"""

from __future__ import annotations


class MajordomoLogError(Exception):
    """Base class of every error majordomo-log raises."""


class ConfigError(MajordomoLogError, ValueError):
    """A configuration value (price file, URL, option) is invalid."""


class StoreError(MajordomoLogError):
    """A metadata or body store failed."""


class StoreUnavailable(StoreError):
    """The store could not be reached; retrying later may succeed."""


class MigrationError(StoreError):
    """A schema migration failed to apply."""


class BodyNotFound(MajordomoLogError, LookupError):
    """No stored body matches the reference."""


class SpoolFull(MajordomoLogError):
    """The spool could not take a batch: over its size cap, or the disk refused it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "spool_full" (cap or ENOSPC) or "spool_error"


class SpoolCorrupt(MajordomoLogError):
    """A spool file that cannot be read back."""
