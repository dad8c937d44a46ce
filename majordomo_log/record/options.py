"""What is kept of a call's bodies: a small validated option object.

llm = ml.LoggingLLM(client, db, storage,
                    bodies=ml.BodyOptions(redact=[drop_emails], max_bytes=4 * 2**20))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .._exceptions import ConfigError
from .redact import RedactHook

DEFAULT_MAX_BODY_BYTES = 16 * 2**20
MIN_MAX_BODY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class BodyOptions:
    """``capture``: store request and response bodies at all (rows are kept either way).
    ``redact``: hooks over each body envelope (a dict), run before the built-in secret
    rules; a hook returns the envelope, changed in place or new. ``max_bytes``: a body
    larger than this is stored truncated, flagged ``body_truncated``."""

    capture: bool = True
    redact: Sequence[RedactHook] = field(default=())
    max_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        hooks = self.redact
        if callable(hooks):  # redact=fn: forgiven, it is one hook
            hooks = (hooks,)
        hooks = tuple(hooks)
        for hook in hooks:
            if not callable(hook):
                raise TypeError(f"redact hooks must be callables, got {type(hook).__name__}")
        object.__setattr__(self, "redact", hooks)
        value = self.max_bytes
        if isinstance(value, bool) or not isinstance(value, int) or value < MIN_MAX_BODY_BYTES:
            raise ConfigError(f"max_bytes must be a whole number of at least {MIN_MAX_BODY_BYTES}")
        if self.capture not in (True, False):  # 1 and 0 pass, as they always did
            raise ConfigError(f"capture must be True or False, got {self.capture!r}")
        object.__setattr__(self, "capture", bool(self.capture))
