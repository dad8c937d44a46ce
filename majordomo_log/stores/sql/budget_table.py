"""``llm_budgets`` (migration 0005): the budgets the wrappers enforce, kept so that
``majordomo-log budgets status`` can show them from the log alone (``base.BudgetRegistry``).

A definition is what ``Budget.definition()`` returns, stored as JSON text under its name.
Reading them back is the same SQL in every dialect; each store writes its own upsert, in
one transaction, from what ``encode_definitions`` made of them: every value checked here,
before anything is sent, so that a definition one database would refuse (a NUL, a lone
surrogate, a name too long for MySQL's key) is refused by all three alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..._exceptions import ConfigError

BUDGETS_TABLE = "llm_budgets"
SELECT_DEFINITIONS = "SELECT name, definition FROM llm_budgets"
MAX_NAME_CHARS = 255  # the key is VARCHAR(255) on MySQL


def encode_definitions(definitions: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(name, definition as JSON text) for each definition, in order, the last one of a
    name kept (one statement may not upsert a key twice on PostgreSQL). Raises
    ``ConfigError`` for a definition without a usable name or that JSON cannot hold."""
    encoded: dict[str, str] = {}
    for definition in definitions:
        name = definition.get("name") if isinstance(definition, Mapping) else None
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise ConfigError(
                f"a budget definition needs a name of 1 to {MAX_NAME_CHARS} characters, "
                f"got {name!r:.80}"
            )
        try:
            text = json.dumps(dict(definition), ensure_ascii=False, allow_nan=False)
            text.encode("utf-8")  # a lone surrogate has no UTF-8: no store can hold it
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"budget {name!r:.80}: its definition is not JSON: {exc}") from None
        if any("\x00" in piece for piece in _texts(definition)):
            raise ConfigError(f"budget {name!r:.80}: its definition holds a NUL character")
        encoded.pop(name, None)  # re-inserted: the order is that of each name's last entry
        encoded[name] = text
    return list(encoded.items())


def decode_definitions(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stored definitions as dicts, by name (in code point order, whatever the
    database's collation). A definition that is not a JSON object (written by hand) is
    left out: ``budgets status`` shows the others."""
    out: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        value = row["definition"]
        try:
            definition = json.loads(value) if isinstance(value, (str, bytes)) else value
        except ValueError:
            continue
        if isinstance(definition, dict):
            out.append((str(row["name"]), definition))
    out.sort(key=lambda pair: pair[0])
    return [definition for _, definition in out]


def _texts(value: Any) -> Iterator[str]:
    """Every string in a JSON-able value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
