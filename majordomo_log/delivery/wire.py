"""What crosses the pipe between the application and its writer process
(``delivery/process.py``, ``delivery/child.py``).

A batch is one pickle: ``(reset, defs, items)``. A record travels as the values of its
slots (one ``attrgetter`` call), with its ``CallContext`` replaced by a context id; the
SDK response objects and stream chunks pickle as they are. A context is defined once per
child (a ``defs`` entry) and again only when its ``secrets`` change (a new API key).
The objects a context refers to (price table, usage extractor, redact hooks) are defined
once per child too, by reference or by value:

* with the ``fork`` start method, by reference: ``pin()`` keeps them in a list that the
  child inherits, and the reference is the index (nothing is pickled, so lambdas work);
  an object pinned after the child started is unknown to it (``NeedsRestart``);
* with ``spawn``, by value: pickled once per child (module-level functions pickle by
  name; ``check_picklable`` tells the caller at construction).

Outcome updates travel as they are. Items are decoded as soon as the child receives
them, so a context table reset (``reset``) never strands an earlier batch.
"""

from __future__ import annotations

import operator
import pickle
from collections.abc import Sequence
from typing import Any

from .._exceptions import ConfigError
from ..record.call import CallContext, CallRecord
from .delivery import QueueItem

RECORD_FIELDS = tuple(s for s in CallRecord.__slots__ if s not in ("__weakref__", "ctx"))
_read_record = operator.attrgetter(*RECORD_FIELDS)
_MAX_CONTEXTS = 4096  # contexts remembered per child: with_options() per request makes many
PROTOCOL = pickle.HIGHEST_PROTOCOL

# Objects a forked child can find by index (see module doc). Held for the life of the
# process: a hook pinned here is referenced by contexts that may still be alive.
_pins: list[object] = []
_pin_index: dict[int, int] = {}


class NeedsRestart(Exception):
    """A context refers to an object that cannot be pickled and that the running
    (forked) child does not know: a new fork knows it."""


def encode_values(record: CallRecord) -> tuple[Any, ...]:
    """A record's slot values, as they cross (its context apart)."""
    values: tuple[Any, ...] = _read_record(record)
    return values


def pin(obj: object) -> int:
    index = _pin_index.get(id(obj))
    if index is None or _pins[index] is not obj:
        index = len(_pins)
        _pins.append(obj)
        _pin_index[id(obj)] = index
    return index


def pinned(index: int) -> object:
    return _pins[index]


def pin_count() -> int:
    return len(_pins)


def context_objects(ctx: CallContext) -> list[object]:
    objects: list[object] = [ctx.prices, *ctx.redact_hooks]
    if ctx.extractor is not None:
        objects.append(ctx.extractor)
    return objects


def check_picklable(ctx: CallContext) -> None:
    """For ``spawn``: the child gets these objects by value."""
    for obj in context_objects(ctx):
        try:
            pickle.dumps(obj, PROTOCOL)
        except Exception as exc:
            raise ConfigError(
                f"writer='process' with start_method='spawn' needs picklable redact hooks "
                f"and usage extractor (module-level functions), and {type(obj).__name__} "
                f"is not ({type(exc).__name__}): use start_method='fork' or writer='thread'"
            ) from None


class Encoder:
    """The parent's side, one per child: what that child already knows."""

    def __init__(self, forked: bool) -> None:
        self.forked = forked
        self.pins_known = pin_count() if forked else 0  # pins the child inherited
        self._objects: dict[int, tuple[object, int]] = {}  # id -> (obj, ref) shipped by value
        self._contexts: dict[int, tuple[CallContext, int, tuple[bytes, ...]]] = {}
        self._next = 0
        self._reset = False

    def encode(self, items: Sequence[QueueItem]) -> bytes:
        """One batch as bytes. Raises ``NeedsRestart`` (fork) or the pickling error of an
        item that cannot be pickled (see ``encode_each``)."""
        if len(self._contexts) >= _MAX_CONTEXTS:
            self._forget()
        defs: list[tuple[Any, ...]] = []
        out: list[tuple[Any, ...]] = []
        try:
            for item in items:
                if isinstance(item, CallRecord):
                    out.append((self._context_id(item.ctx, defs), _read_record(item)))
                else:
                    out.append((None, item))
            data = pickle.dumps((self._reset, defs, out), PROTOCOL)
        except BaseException:
            self._forget()  # what this batch defined never reached the child
            raise
        self._reset = False
        return data

    def _forget(self) -> None:
        self._contexts.clear()
        self._objects.clear()
        self._reset = True  # the child forgets too, before the next batch's definitions

    def _context_id(self, ctx: CallContext, defs: list[tuple[Any, ...]]) -> int:
        known = self._contexts.get(id(ctx))
        if known is not None and known[0] is ctx and known[2] is ctx.secrets:
            return known[1]
        refs = [self._object_ref(obj, defs) for obj in context_objects(ctx)]
        cid = self._new_id()
        hooks = tuple(refs[1 : 1 + len(ctx.redact_hooks)])
        extractor = refs[-1] if ctx.extractor is not None else None
        state = (
            ctx.api_key_alias,
            dict(ctx.tags),
            ctx.secrets,
            ctx.capture_bodies,
            ctx.max_body_bytes,
            ctx.hash_tags,
            ctx.tag_secret,
        )
        defs.append(("ctx", cid, refs[0], extractor, hooks, state))
        self._contexts[id(ctx)] = (ctx, cid, ctx.secrets)
        return cid

    def _object_ref(self, obj: object, defs: list[tuple[Any, ...]]) -> int:
        if self.forked:
            index = _pin_index.get(id(obj))
            if index is not None and index < self.pins_known and _pins[index] is obj:
                return index
        known = self._objects.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        try:
            value = pickle.dumps(obj, PROTOCOL)
        except Exception:
            if not self.forked:
                raise
            pin(obj)
            raise NeedsRestart() from None
        ref = -1 - self._new_id()  # negative: never a pin's index
        defs.append(("obj", ref, value))
        self._objects[id(obj)] = (obj, ref)
        return ref

    def _new_id(self) -> int:
        self._next += 1
        return self._next


class Decoder:
    """The child's side."""

    def __init__(self) -> None:
        self._objects: dict[int, object] = {}
        self._contexts: dict[int, CallContext] = {}

    def decode(self, data: bytes) -> list[QueueItem]:
        reset, defs, items = pickle.loads(data)
        if reset:
            self._objects.clear()
            self._contexts.clear()
        for entry in defs:
            if entry[0] == "obj":
                self._objects[entry[1]] = pickle.loads(entry[2])
            else:
                _, cid, prices, extractor, hooks, state = entry
                alias, tags, secrets, capture, max_bytes, hash_tags, tag_secret = state
                self._contexts[cid] = CallContext(
                    prices=self._object(prices),  # type: ignore[arg-type]
                    api_key_alias=alias,
                    tags=tags,
                    secrets=secrets,
                    extractor=None if extractor is None else self._object(extractor),  # type: ignore[arg-type]
                    capture_bodies=capture,
                    redact_hooks=tuple(self._object(h) for h in hooks),  # type: ignore[misc]
                    max_body_bytes=max_bytes,
                    hash_tags=hash_tags,
                    tag_secret=tag_secret,
                )
        out: list[QueueItem] = []
        for cid, values in items:
            if cid is None:
                out.append(values)
                continue
            record = CallRecord.__new__(CallRecord)
            for name, value in zip(RECORD_FIELDS, values, strict=True):
                setattr(record, name, value)
            record.ctx = self._contexts[cid]
            out.append(record)
        return out

    def _object(self, ref: int) -> object:
        return pinned(ref) if ref >= 0 else self._objects[ref]
