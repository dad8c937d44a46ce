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
mappings                                       objects with text keys (``1`` -> ``"1"``)
lists, tuples, sets                            arrays
anything else                                  ``str(value)``
a value whose ``str()`` raises                 ``"<unprintable TypeName>"``
a container inside itself                      ``"<cycle>"``
nesting deeper than 32 levels                  ``"<too deep>"``
more than 10,000 values in one tag             ``"<truncated>"`` for the rest
=============================================  ==========================================

Every step is linear in the size of the value: each node is visited at most once
(the node budget also bounds a structure that shares one list many times over, which
would otherwise be walked once per path to it).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Set
from decimal import Decimal
from typing import Any

import orjson

MAX_DEPTH = 32
MAX_NODES = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT_TEXT_BITS = 1024  # about 310 digits: int-to-decimal conversion is quadratic

JSONValue = Any  # None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]


def clean_text(text: str) -> str:
    """``text`` as a plain ``str`` every store holds, the same in each: NUL (PostgreSQL
    refuses it) and lone surrogates (no UTF-8 encoding exists) become U+FFFD, and a
    ``str`` subclass becomes its plain value."""
    if type(text) is not str:
        text = str.__str__(text)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def type_name(value: Any) -> str:
    try:
        name = type(value).__qualname__
    except Exception:  # a metaclass may do anything
        return "object"
    return clean_text(name) if isinstance(name, str) else "object"


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
    """A mapping of tags as a dict of text keys to storable values; never raises."""
    coercion = _Coercion()
    try:
        items = list(values.items())
    except Exception:
        return {}
    return {coercion.key(k): coercion.convert(v, 0) for k, v in items}


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


class _Coercion:
    __slots__ = ("nodes", "path")

    def __init__(self) -> None:
        self.nodes = 0
        self.path: set[int] = set()  # ids of the containers being converted

    def key(self, key: Any) -> str:
        if isinstance(key, str):
            return clean_text(key)
        if isinstance(key, (tuple, frozenset)):  # hashable containers: their text
            return safe_text(key)
        return value_text(self.convert(key, MAX_DEPTH)) or "null"

    def convert(self, value: Any, depth: int) -> JSONValue:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            return "<truncated>"
        if value is None or value is True or value is False:
            return value
        if isinstance(value, str):
            return clean_text(value)
        if isinstance(value, int):
            return _int(value)
        if isinstance(value, float):
            number = float.__float__(value)
            if number != number or number in (float("inf"), float("-inf")):
                return str(number)
            return number
        if isinstance(value, enum.Enum):
            try:
                inner = value.value
            except Exception:
                return f"<unprintable {type_name(value)}>"
            return self.convert(inner, depth)
        if isinstance(value, (Decimal, uuid.UUID)):
            return safe_text(value)
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            try:
                return clean_text(value.isoformat())
            except Exception:
                return f"<unprintable {type_name(value)}>"
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                return clean_text(bytes(value).decode("utf-8", "replace"))
            except Exception:
                return f"<unprintable {type_name(value)}>"
        if isinstance(value, (Mapping, list, tuple, Set)):
            return self._container(value, depth)
        return safe_text(value)

    def _container(self, value: Any, depth: int) -> JSONValue:
        if depth >= MAX_DEPTH:
            return "<too deep>"
        marker = id(value)
        if marker in self.path:
            return "<cycle>"
        self.path.add(marker)
        try:
            if isinstance(value, Mapping):
                return {self.key(k): self.convert(v, depth + 1) for k, v in list(value.items())}
            return [self.convert(item, depth + 1) for item in list(value)]
        except Exception:  # a container whose iteration raises, or that changed meanwhile
            return f"<unprintable {type_name(value)}>"
        finally:
            self.path.discard(marker)


def _int(value: int) -> int | str:
    number = int.__int__(value)  # an IntEnum or other subclass: its plain value
    if _INT64_MIN <= number <= _INT64_MAX:
        return number
    bits = number.bit_length()
    if bits > _MAX_INT_TEXT_BITS:
        return f"<int of {bits} bits>"
    return str(number)
