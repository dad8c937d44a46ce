"""What a stored body goes through before it is written: user hooks, built-in secret
rules and the size cap.

The rules, what they find and why each attempt of theirs is bounded (time linear in
the text), are in ``record/redact_rules.py``; this module runs them.

Speed: CPython's regex engine tries an alternation whose branches start with different
characters at every position (about 10 ms for 4 KB with these rules), but finds a
literal first character with a fast scan. So the rules are grouped by the literal
they start at (``:``, ``=``, ``-``, ``_``, ``A``, ``B``, ``J``), one alternation per
group, and a group whose literal is absent (a memchr-speed ``in``) is skipped.

Pieces: the engine holds the GIL for a whole ``sub``, and 16 MB (the default cap)
takes tens of milliseconds of it. Text longer than ``_WINDOW`` is searched a window at
a time with ``LoopTurns`` between windows. A match starting in a window is the one a
search of the whole text finds: the search sees as far past the window as the bounded
part of an attempt can read (the widest ``reach`` of the pass's rules), and a match
whose run is cut off there is continued with its run's pattern (``(?:step)*``: its
steps do not depend on where they started), a window at a time too. Look-behinds see the text
before a window: ``search(text, pos, endpos)`` keeps it. The overlap costs 13% more
search on a long text for the JWT pass, 2% for the ``:`` pass (URLs), under 0.5% for
the others; a text of one window is one ``sub``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any, AnyStr, Generic

import orjson

from .._loop_turns import LoopTurns
from .redact_rules import LONGEST_STEP, Rule, group_by_anchor, source
from .serialize import REDACTED, json_default

RedactHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]

# What a truncated part keeps of itself, as text: enough to see what the call was.
TRUNCATED_HEAD_BYTES = 64 * 1024

# Text searched between two turns of the event loop: a tenth of a millisecond of prose,
# 6 ms at most of the densest hostile text (every rule, '"password": ' repeated).
_WINDOW = 64 * 1024


class _Pass(Generic[AnyStr]):
    """The rules of one anchor: one alternation, one pass over the text."""

    __slots__ = ("anchor", "pattern", "reach", "redacted", "runs")

    def __init__(self, anchor: AnyStr, rules: list[Rule], redacted: AnyStr) -> None:
        self.anchor: AnyStr = anchor
        self.redacted: AnyStr = redacted
        self.reach = max(rule.reach for rule in rules)
        pattern = re.escape(rules[0].anchor) + "(?:" + "|".join(map(source, rules)) + ")"
        steps = [secret.step for rule in rules for secret in rule.secrets]
        # A secret's run, to go on with when a window cut it off: by its group's number.
        self.runs: dict[int, re.Pattern[AnyStr]] = {}
        if isinstance(anchor, str):
            self.pattern: re.Pattern[AnyStr] = re.compile(pattern, re.ASCII)
        else:
            self.pattern = re.compile(pattern.encode("ascii"))
        for group, step in enumerate(steps, start=1):
            if step is not None:
                run = f"(?:{step})*"
                self.runs[group] = re.compile(
                    run if isinstance(anchor, str) else run.encode("ascii"),
                    re.ASCII if isinstance(anchor, str) else 0,
                )

    def _replace(self, match: re.Match[AnyStr]) -> AnyStr:
        # A secret ends its rule (the look-ahead of a URL password has no width): what
        # the match holds before the secret stays, the secret goes.
        group = match.lastindex or 0
        data: AnyStr = match.string
        return data[match.start() : match.start(group)] + self.redacted

    def apply(self, data: AnyStr) -> AnyStr:
        if self.anchor not in data:  # one memchr-speed probe skips most passes
            return data
        if len(data) <= _WINDOW:
            return self.pattern.sub(self._replace, data)
        return self._in_windows(data, LoopTurns())

    def _in_windows(self, data: AnyStr, turns: LoopTurns) -> AnyStr:
        """What ``pattern.sub`` returns, searched a window at a time (module docstring)."""
        size = len(data)
        pieces: list[AnyStr] = []
        copied = pos = 0
        while pos < size:
            window_end = min(pos + _WINDOW, size)
            limit = min(window_end + self.reach, size)
            for match in self.pattern.finditer(data, pos, limit):
                if match.start() >= window_end:
                    break  # found again from the next window, where all it reads is seen
                group = match.lastindex or 0
                pieces += (data[copied : match.start(group)], self.redacted)
                copied = match.end()
                if copied > limit - LONGEST_STEP and limit < size and group in self.runs:
                    copied = _run_end(self.runs[group], data, copied, turns)
                    break  # the search goes on after the whole run
            pos = max(window_end, copied)
            turns.maybe_yield()
        if not pieces:
            return data
        pieces.append(data[copied:])
        return data[:0].join(pieces)


def _run_end(run: re.Pattern[AnyStr], data: AnyStr, pos: int, turns: LoopTurns) -> int:
    """Where the run that goes on at ``pos`` ends, read a window at a time."""
    size = len(data)
    while True:
        limit = min(pos + _WINDOW, size)
        match = run.match(data, pos, limit)
        end = pos if match is None else match.end()  # never None: a run may be empty
        if limit == size or end <= limit - LONGEST_STEP:
            return end
        pos = end
        turns.maybe_yield()


_TEXT_PASSES = [_Pass(a, rules, REDACTED) for a, rules in group_by_anchor(text=True).items()]
_REDACTED_BYTES = REDACTED.encode("ascii")
_BYTES_PASSES = [
    _Pass(a.encode("ascii"), rules, _REDACTED_BYTES)
    for a, rules in group_by_anchor(text=False).items()
]


def _replace_all(data: AnyStr, secret: AnyStr, redacted: AnyStr) -> AnyStr:
    """``data.replace(secret, redacted)``, searched a window at a time when long."""
    size = len(data)
    if size <= _WINDOW:
        return data.replace(secret, redacted)
    turns = LoopTurns()
    pieces: list[AnyStr] = []
    copied = pos = 0
    while pos < size:
        window_end = min(pos + _WINDOW, size)
        found = data.find(secret, pos, window_end + len(secret) - 1)
        if found < 0:
            pos = window_end
        else:
            pieces += (data[copied:found], redacted)
            copied = pos = found + len(secret)
        turns.maybe_yield()
    if not pieces:
        return data
    pieces.append(data[copied:])
    return data[:0].join(pieces)


def redact_bytes(data: bytes) -> bytes:
    """``data`` with the built-in rules applied (the same object when nothing matched)."""
    for rules in _BYTES_PASSES:
        data = rules.apply(data)
    return data


def redact_text(text: str) -> str:
    """``text`` with the built-in rules applied."""
    for rules in _TEXT_PASSES:
        text = rules.apply(text)
    return text


def scrub(data: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """The exact secrets this wrapper has seen (its API keys), then the built-in rules."""
    for secret in secrets:
        if secret:
            data = _replace_all(data, secret, _REDACTED_BYTES)
    return redact_bytes(data)


def scrub_text(text: str, secrets: tuple[bytes, ...]) -> str:
    for secret in secrets:
        value = secret.decode("utf-8", "replace")
        if value:
            text = _replace_all(text, value, REDACTED)
    return redact_text(text)


def apply_hooks(envelope: bytes, hooks: Sequence[RedactHook]) -> bytes:
    """Run the user's hooks over the envelope as a dict, in order. A hook returns the
    dict to keep (or None: it changed the one it was given). Exceptions propagate: the
    caller stores a marker instead of a body the hook could not clean."""
    body: dict[str, Any] = orjson.loads(envelope)
    for hook in hooks:
        result = hook(body)
        if result is not None:
            if not isinstance(result, dict):
                raise TypeError(f"a redact hook must return a dict or None, not {type(result)}")
            body = result
    return orjson.dumps(body, default=json_default, option=orjson.OPT_NON_STR_KEYS)


def failed_marker(exc: BaseException) -> bytes:
    """What stands for the request and the response when a hook raised: the type of
    the exception only (its message may quote the very data the hook was to remove)."""
    return orjson.dumps({"$redaction_failed": type(exc).__name__})


def truncated_marker(part: bytes, head_bytes: int) -> bytes:
    """What stands for a request or response over the size cap: its size, its SHA-256
    (of the serialized part, before redaction) and its first ``head_bytes`` as text.
    The head is redacted by the caller with the rest of the envelope; hashing and
    slicing make no copy of the part (hashlib releases the GIL on large inputs)."""
    head = part[:head_bytes].decode("utf-8", "ignore")  # a cut mid-character drops it
    return orjson.dumps(
        {
            "$truncated": True,
            "original_bytes": len(part),
            "sha256": hashlib.sha256(part).hexdigest(),
            "head": head,
        }
    )
