"""Exceptions raised by majordomo-log.

Nothing here is ever raised into a wrapped LLM call: the logging path swallows,
counts and logs its own failures. These reach code that talks to majordomo-log
directly (opening stores, the CLI, configuration).

    MajordomoLogError
    ├── ConfigError            bad price file, bad URL, bad option value
    ├── StoreError             a metadata or body store failed
    │   ├── StoreUnavailable   transient: connection refused/reset, timeout
    │   └── MigrationError     the schema could not be brought up to date
    └── BodyNotFound           storage.get() found no body for the reference
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
