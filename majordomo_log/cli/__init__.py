"""The ``majordomo-log`` command."""

from .main import main

__all__ = ["main"]
