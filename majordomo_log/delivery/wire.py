"""What crosses the pipe between the application and its writer process
(``delivery/process.py``, ``delivery/child.py``).

A batch is one pickle: ``(reset, defs, items)``. A record travels as the values of its
slots (one ``attrgetter`` call; ``request_id`` and whatever else ``CallRecord`` keeps in
its slots cross as they are), with its ``CallContext`` replaced by a context id. A
pydantic response (an SDK's) does not pickle (12 µs for a chat completion, more with its
usage): it crosses as its class and ``model_dump_json(warnings=False)`` (2.6 µs), which
is byte for byte the response part of the body envelope (``record/serialize.py``
``dumps_body``); in the child a ``Shipped`` stands in for it, returning that text, and
validates it into the SDK object only when something else is read off it (usage, model).
A usage that is the response's own (``response.usage``) is taken from there in the
child; the provider's request id (``_request_id``) is read in the parent, where the
object has it. Pydantic stream chunks cross as (class, JSON) and are validated again in
the child, where the stream is assembled. Anything else (dicts, custom objects, a class
that does not pickle by name, a dump that raises) pickles as it is. A context is defined once per
child (a ``defs`` entry) and again only when its ``secrets`` change (a new API key).
The objects a context refers to (price table, usage extractor, redact hooks) are defined
once per child too, by reference or by value:

* with the ``fork`` start method, by reference: ``pin()`` keeps them in a list that the
  child inherits, and the reference is the index (nothing is pickled, so lambdas work);
  an object pinned after the child started is unknown to it (``NeedsRestart``);
* with ``spawn``, by value: pickled once per child (module-level functions pickle by
  name; ``check_picklable`` tells the caller at construction).

A request snapshot (``request_json``, 4 KB in the benchmark) is not copied into the
pickle (1.7 µs a record, most of it the pickle's growing buffer): a batch is a list of
parts, the pickle first (its length ahead of it) and then the snapshots, written to the
pipe with one gathering write (``write_parts``) and found again in the child by their
lengths.

Outcome updates travel as they are. Items are decoded as soon as the child receives
them, so a context table reset (``reset``) never strands an earlier batch.
"""

from __future__ import annotations

import operator
import os
import pickle
from collections.abc import Sequence
from typing import Any

import orjson

from .._exceptions import ConfigError
from .._log import logger
from ..record.call import CallContext, CallRecord
from .delivery import QueueItem
from .prepare import read_request_id

# A record's span (a live OpenTelemetry object) stays in the parent, which ends it.
RECORD_FIELDS = tuple(s for s in CallRecord.__slots__ if s not in ("__weakref__", "ctx", "span"))
_read_record = operator.attrgetter(*RECORD_FIELDS)
_RESPONSE = RECORD_FIELDS.index("response")
_USAGE = RECORD_FIELDS.index("usage")
_CHUNKS = RECORD_FIELDS.index("stream_chunks")
_REQUEST_ID = RECORD_FIELDS.index("provider_request_id")
_REQUEST_JSON = RECORD_FIELDS.index("request_json")
_APART = 512  # bytes: a request snapshot this long crosses after the pickle, not in it
_IOV_MAX = 512  # buffers per writev(2): Linux takes 1024
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

    def encode(self, items: Sequence[QueueItem]) -> list[bytes]:
        """One batch as parts to send one after the other (``write_parts``): the
        pickle's length, the pickle, the request snapshots kept apart. Raises
        ``NeedsRestart`` (fork) or the pickling error of an item that cannot be pickled."""
        if len(self._contexts) >= _MAX_CONTEXTS:
            self._forget()
        defs: list[tuple[Any, ...]] = []
        out: list[tuple[Any, ...]] = []
        apart: list[bytes] = []
        try:
            for item in items:
                if isinstance(item, CallRecord):
                    out.append(self._record(item, self._context_id(item.ctx, defs), apart))
                else:
                    out.append((None, item, None, None, None))
            data = pickle.dumps((self._reset, defs, out), PROTOCOL)
        except BaseException:
            self._forget()  # what this batch defined never reached the child
            raise
        self._reset = False
        return [len(data).to_bytes(8, "big"), data, *apart]

    def _record(self, record: CallRecord, cid: int, apart: list[bytes]) -> tuple[Any, ...]:
        """``(cid, values, response, chunks, request)``: ``response`` is ``(class, JSON,
        usage is the response's)`` when the response crosses as JSON (then None in
        ``values``), ``chunks`` a list of ``(class, JSON)`` when the stream chunks do,
        ``request`` the length of the request snapshot when it crosses apart."""
        values: Any = _read_record(record)  # a tuple; a list once a value is replaced
        response, chunks = values[_RESPONSE], values[_CHUNKS]
        request = values[_REQUEST_JSON]
        size = None
        if type(request) is bytes and len(request) >= _APART:
            size = len(request)
            apart.append(request)
            values = list(values)
            values[_REQUEST_JSON] = None
        shipped: tuple[type, str, bool] | None = None
        listed: list[tuple[type, str]] | None = None
        if response is not None:
            dumped = self._json(response)
            if dumped is not None:
                fields = getattr(response, "__dict__", None) or {}
                own = values[_USAGE] is not None and values[_USAGE] is fields.get("usage")
                if size is None:
                    values = list(values)
                values[_RESPONSE] = None
                if own:
                    values[_USAGE] = None
                if values[_REQUEST_ID] is None:
                    values[_REQUEST_ID] = _request_id(record, response, fields)
                shipped = (dumped[0], dumped[1], own)
                if type(response) is not Shipped:
                    # The parent's copy too: the SDK object (a tree of dicts and
                    # models) is the application's to keep or free; held here until
                    # the child acknowledges, each of its containers would be
                    # scanned by the cyclic GC over and over.
                    record.response = Shipped(dumped[0], dumped[1])
            elif values[_REQUEST_ID] is None:
                read_request_id(record)  # as prepare() would, while the parent has it
                values = list(values)  # a copy of a list is as good
                values[_REQUEST_ID] = record.provider_request_id
        if chunks:
            listed = []
            for chunk in chunks:
                one = self._json(chunk)
                if one is None:
                    listed = None
                    break
                listed.append(one)
            if listed is not None:
                values = list(values)
                values[_CHUNKS] = None
        return (cid, values, shipped, listed, size)

    def _json(self, value: Any) -> tuple[type, str] | None:
        """``(class, model_dump_json(warnings=False))`` for a pydantic model whose class
        pickles by name; None for anything else (it pickles as it is)."""
        cls = type(value)
        if cls is Shipped:  # detached on the caller's path, or sent to a child that died
            return (value.model_class, value.text)
        ok = _json_classes.get(cls)
        if ok is None:
            ok = _json_classes[cls] = _ships_as_json(cls)
        if not ok:
            return None
        try:
            text = value.model_dump_json(warnings=False)
        except Exception:  # dumps_body falls back to the general path: so does the child
            return None
        return (cls, text) if type(text) is str else None

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

    def decode(self, data: bytes | memoryview) -> list[QueueItem]:
        """A batch from the parts ``encode`` made, as they arrived, joined."""
        view = memoryview(data)
        end = 8 + int.from_bytes(view[:8], "big")
        reset, defs, items = pickle.loads(view[8:end])
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
        for cid, values, response, chunks, size in items:
            if cid is None:
                out.append(values)
                continue
            record = CallRecord.__new__(CallRecord)
            for name, value in zip(RECORD_FIELDS, values, strict=True):
                setattr(record, name, value)
            record.span = None
            record.ctx = self._contexts[cid]
            if size is not None:
                record.request_json = view[end : end + size].tobytes()
                end += size
            if response is not None:
                cls, text, own_usage = response
                record.response = stand_in = Shipped(cls, text)
                if own_usage:
                    record.usage = stand_in.usage
            if chunks is not None:
                record.stream_chunks = [_validated(cls, text) for cls, text in chunks]
            out.append(record)
        return out

    def _object(self, ref: int) -> object:
        return pinned(ref) if ref >= 0 else self._objects[ref]


_json_classes: dict[type, bool] = {}  # class -> crosses as JSON (_ships_as_json)


def detach_response(record: CallRecord) -> None:
    """On the caller's path, as a record is queued: its pydantic response becomes the
    JSON it will cross as (2.6 µs for a chat completion), its provider request id read
    first. Held by the queue as the SDK object, its dozens of containers would live
    through the cyclic GC's young collections and be promoted, making full collections
    of the application's whole heap come sooner (25 µs a call in the benchmark); freed
    here with the caller's last reference, the GC never sees them. Anything else stays
    as it is (the sender pickles it)."""
    response = record.response
    if response is None:
        return
    cls = type(response)
    ok = _json_classes.get(cls)
    if ok is None:
        ok = _json_classes[cls] = _ships_as_json(cls)
    if not ok:
        return
    try:
        text = response.model_dump_json(warnings=False)
    except Exception:  # dumps_body takes its general path for it: so will the child
        return
    if type(text) is not str:
        return
    if record.provider_request_id is None:
        _request_id(record, response, getattr(response, "__dict__", None) or {})
    record.response = Shipped(cls, text)


class Shipped:
    """A pydantic response as its JSON: in the child, and on the parent's record once
    encoded. The body is built from the very text the parent dumped
    (``model_dump_json(warnings=False)``, what ``dumps_body`` calls); any other
    attribute is read off the model validated from it (once, on first use), so usage
    and model read as off the SDK object."""

    __slots__ = ("_model", "model_class", "text")

    def __init__(self, model_class: type, text: str) -> None:
        self.model_class = model_class
        self.text = text
        self._model: Any = None

    def model_dump_json(self, *, warnings: Any = True, **options: Any) -> str:
        if warnings is False and not options:
            return self.text
        text: str = self.validated().model_dump_json(warnings=warnings, **options)
        return text

    def validated(self) -> Any:
        """The model (not named ``model``: that is an SDK response's field)."""
        if self._model is None:
            self._model = _validated(self.model_class, self.text)
        return self._model

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # pickle and copy probe these: not the model's
            raise AttributeError(name)
        return getattr(self.validated(), name)

    def __getstate__(self) -> tuple[type, str]:
        return (self.model_class, self.text)

    def __setstate__(self, state: tuple[type, str]) -> None:
        self.model_class, self.text = state
        self._model = None

    def __repr__(self) -> str:
        return f"<Shipped {self.model_class.__name__} {len(self.text)} chars>"


def _validated(cls: Any, text: str) -> Any:
    """The model again; its JSON parsed as a dict if validation refuses it (logged):
    a bad payload costs its usage, never the record."""
    try:
        return cls.model_validate_json(text)
    except Exception as exc:
        logger.warning("a %s could not be validated again: %s", cls.__name__, type(exc).__name__)
        return orjson.loads(text)


def _ships_as_json(cls: type) -> bool:
    if not (
        callable(getattr(cls, "model_dump_json", None))
        and callable(getattr(cls, "model_validate_json", None))
        and isinstance(getattr(cls, "__pydantic_fields__", None), dict)
    ):
        return False
    try:
        return pickle.loads(pickle.dumps(cls, PROTOCOL)) is cls
    except Exception:
        return False


def _request_id(record: CallRecord, response: Any, fields: dict[str, Any]) -> str | None:
    """``read_request_id`` without pydantic's ``__getattr__`` (2 µs when missing): the
    openai SDK sets ``_request_id`` as a plain attribute, a declared private attribute
    lives in ``__pydantic_private__``."""
    found = fields.get("_request_id")
    if found is None:
        private = getattr(response, "__pydantic_private__", None)
        found = private.get("_request_id") if isinstance(private, dict) else None
    rid = found if type(found) is str else None
    record.provider_request_id = rid
    return rid


def write_parts(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Write ``parts`` to ``fd`` one after the other, as one ``Connection`` message (its
    length ahead), with gathering writes: nothing is joined or copied first."""
    total = sum(len(p) for p in parts)
    head = (
        total.to_bytes(4, "big")
        if total <= 0x7FFFFFFF
        else b"\xff\xff\xff\xff" + (total.to_bytes(8, "big"))
    )
    pending: list[bytes | memoryview] = [head, *parts]
    i = 0
    while i < len(pending):
        written = os.writev(fd, pending[i : i + _IOV_MAX])
        while written:
            if written >= len(pending[i]):
                written -= len(pending[i])
                i += 1
            else:  # a part written in part (a signal): the rest of it next
                pending[i] = memoryview(pending[i])[written:]
                written = 0
        while i < len(pending) and not len(pending[i]):
            i += 1
