"""Values every store holds: what a caller-given value (an attribution tag, a model
name, an error message) becomes before it reaches a row, an envelope or the spool.

A tag may be any Python object, and one that a store or a JSON encoder refuses must
cost nothing: not its record, and certainly not the rest of its batch. So every value
is turned, in the background, into plain JSON data that SQLite, PostgreSQL and MySQL
all hold and read back the same:

=============================================  ==========================================
given                                          stored
=============================================  ==========================================
``None``, ``bool``, finite ``float``           as is
``int`` within signed 64 bits                  as is
``int`` beyond 64 bits                         its decimal text, up to 1,024 bits; beyond
                                               that ``"<int of N bits>"``
NaN, infinities                                ``"nan"``, ``"inf"``, ``"-inf"``
``str`` and its subclasses (``str`` enums)     the plain string value (``"chat"``, never
                                               ``"Feat.CHAT"``); NUL and lone surrogates
                                               become U+FFFD, which every store holds
other enums                                    their ``value``, coerced
``Decimal``, ``UUID``                          their text
``datetime``, ``date``, ``time``               ISO 8601 text
``bytes``                                      decoded as UTF-8, invalid bytes as U+FFFD
mappings                                       objects with text keys (``1`` -> ``"1"``,
                                               ``(1, 2)`` -> ``"[1,2]"``; the later of two
                                               keys with one text wins)
lists, tuples, sets                            arrays
anything else                                  ``str(value)``
a value whose ``str()`` raises                 ``"<unprintable TypeName>"``
a container inside itself                      ``"<cycle>"``
nesting deeper than 16 levels                  ``"<too deep>"``
more than 10,000 values in one tag             one ``"<truncated>"`` in place of the rest
more than 65,536 characters of text in a tag   cut, ending in ``…``
an object that claims a type it cannot act as  ``str(value)`` (a mock with ``spec=str``)
=============================================  ==========================================

Every step is linear in the size of the value: each node is visited at most once
(the node budget also bounds a structure that shares one list many times over, which
would otherwise be walked once per path to it), and each tag value has its own
budgets, so one large tag does not cut the others.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import uuid
from collections.abc import Callable, Mapping, Set
from decimal import Decimal
from typing import Any

import orjson

MAX_DEPTH = 16  # MariaDB refuses JSON nested deeper than 32 levels
MAX_NODES = 10_000
MAX_CHARS = 65_536  # of text in one tag value: attribution, not content
MAX_KEY_CHARS = 1024
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT_TEXT_BITS = 1024  # about 310 digits: int-to-decimal conversion is quadratic

JSONValue = Any  # None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]


def clean_text(text: str) -> str:
    """``text`` as a plain ``str`` every store holds, the same in each: NUL (PostgreSQL
    refuses it) and lone surrogates (no UTF-8 encoding exists) become U+FFFD, and a
    ``str`` subclass becomes its plain value. Never raises."""
    if type(text) is not str:
        text = _plain_str(text)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _plain_str(value: Any) -> str:
    """The plain ``str`` of a ``str`` subclass, or of an object that only claims to be
    one (a mock or a proxy whose ``__class__`` says ``str``)."""
    try:
        return str.__str__(value)
    except Exception:
        pass
    try:
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:
        return f"<unprintable {type_name(value)}>"


def type_name(value: Any) -> str:
    try:
        name = type(value).__qualname__
    except Exception:  # a metaclass may do anything
        return "object"
    return clean_text(name) if type(name) is str else "object"


def safe_text(value: Any) -> str:
    """``str(value)``, cleaned; never raises."""
    if isinstance(value, str):
        return clean_text(value)
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {type_name(value)}>"
    return clean_text(text)


def storable(value: Any) -> JSONValue:
    """``value`` as plain JSON data every store holds (see the module's table)."""
    return _Coercion().convert(value, 0)


def storable_mapping(values: Mapping[Any, Any]) -> dict[str, JSONValue]:
    """A mapping of tags as a dict of text keys to storable values, each value within
    its own budget; never raises."""
    try:
        items = list(values.items())
    except Exception:
        return {}
    stored: dict[str, JSONValue] = {}
    for item in items:
        coercion = _Coercion()  # per tag: a large tag must not starve the others
        try:
            key, value = item
        except Exception:
            continue
        name = coercion.key(key)  # first: the value must not spend the key's budget
        stored[name] = coercion.convert(value, 0)
    return stored


def value_text(value: JSONValue) -> str | None:
    """A storable value as one column's text: strings as they are, other values as
    JSON (``true``, ``42``, ``["a"]``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def hash_value(value: Any, secret: bytes) -> str:
    """HMAC-SHA256 of a tag value's text (``value_text`` of its storable form), hex: the
    same value gives the same hash under the same secret, so rows still group by it and
    a known value can be looked up by hashing it."""
    text = value_text(storable(value)) or ""
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def storable_body(value: Any, default: Callable[[Any], Any]) -> JSONValue:
    """A request or response that JSON could not hold as it was (a cycle, an int past
    64 bits, a lone surrogate, nesting orjson refuses) as JSON data, by the same rules
    as tags but with a body's budgets: ``default`` turns other objects into data first
    (a pydantic model into its fields), and every string stays whole (the body's size
    cap applies later)."""
    coercion = _Coercion(
        max_depth=_BODY_MAX_DEPTH, max_nodes=_BODY_MAX_NODES, max_chars=None, default=default
    )
    return coercion.convert(value, 0)


_BODY_MAX_DEPTH = 200  # orjson refuses more than 254 levels
_BODY_MAX_NODES = 1_000_000


class _Coercion:
    """One value's conversion, with its budgets (depth, nodes, characters)."""

    __slots__ = ("chars", "default", "max_chars", "max_depth", "max_nodes", "nodes", "path")

    def __init__(
        self,
        *,
        max_depth: int = MAX_DEPTH,
        max_nodes: int = MAX_NODES,
        max_chars: int | None = MAX_CHARS,
        default: Callable[[Any], Any] | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_chars = max_chars
        self.default = default  # other objects to data, converted in turn (bodies)
        self.nodes = 0
        self.chars = 0
        self.path: set[int] = set()  # ids of the containers being converted

    def key(self, key: Any) -> str:
        if type(key) is not str:
            key = value_text(_Coercion().convert(key, 0)) or "null"
        text = self.text(key)
        return text if len(text) <= MAX_KEY_CHARS else text[: MAX_KEY_CHARS - 1] + "…"

    def text(self, value: Any) -> str:
        text = clean_text(value)
        if self.max_chars is None:
            return text
        left = self.max_chars - self.chars
        if len(text) > left:
            text = text[: max(left - 1, 0)] + "…"
        self.chars += len(text)
        return text

    def convert(self, value: Any, depth: int) -> JSONValue:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            return "<truncated>"
        kind = type(value)
        if value is None or kind is bool:
            return value
        if kind is str:
            return self.text(value)
        if kind is int:
            return _int(value)
        if kind is float:
            return _float(value)
        try:
            return self._convert_other(value, depth)
        except Exception:  # an object that claims a type it cannot act as
            return self.text(safe_text(value))

    def _convert_other(self, value: Any, depth: int) -> JSONValue:
        if isinstance(value, str):  # subclasses, str enums: the plain string value
            return self.text(str.__str__(value))
        if isinstance(value, enum.Enum):
            inner = value.value
            if inner is None or type(inner) in (bool, int, float, str):
                return self.convert(inner, depth)  # a scalar, as a plain one: no nesting
            if depth >= self.max_depth:  # an enum of containers (or of enums) nests
                return "<too deep>"
            return self.convert(inner, depth + 1)
        if isinstance(value, int):  # IntEnum, other subclasses: the plain value
            return _int(int.__int__(value))
        if isinstance(value, float):
            return _float(float.__float__(value))
        if isinstance(value, (Decimal, uuid.UUID)):
            return self.text(safe_text(value))
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return self.text(value.isoformat())
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, (Mapping, list, tuple, Set)):
            return self._container(value, depth)
        if self.default is not None and depth < self.max_depth:
            return self.convert(self.default(value), depth + 1)
        return self.text(safe_text(value))

    def _container(self, value: Any, depth: int) -> JSONValue:
        if depth >= self.max_depth:
            return "<too deep>"
        marker = id(value)
        if marker in self.path:
            return "<cycle>"
        self.path.add(marker)
        try:
            if isinstance(value, Mapping):
                mapping: dict[str, JSONValue] = {}
                for k, v in list(value.items()):
                    if self.nodes >= self.max_nodes:
                        mapping["<truncated>"] = True
                        break
                    name = self.key(k)
                    mapping[name] = self.convert(v, depth + 1)
                return mapping
            items: list[JSONValue] = []
            for item in list(value):
                if self.nodes >= self.max_nodes:
                    items.append("<truncated>")  # one marker for the rest, not one each
                    break
                items.append(self.convert(item, depth + 1))
            return items
        except Exception:  # a container whose iteration raises, or that changed meanwhile
            return f"<unprintable {type_name(value)}>"
        finally:
            self.path.discard(marker)


def _int(number: int) -> int | str:
    if _INT64_MIN <= number <= _INT64_MAX:
        return number
    bits = number.bit_length()
    if bits > _MAX_INT_TEXT_BITS:
        return f"<int of {bits} bits>"
    return str(number)


def _float(number: float) -> float | str:
    if number != number or number in (float("inf"), float("-inf")):
        return str(number)
    return number
