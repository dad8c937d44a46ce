"""Spend per scope value: what the calls of each value of some tags cost (or how many
tokens or requests they took) over a window. Budgets read it at run time (a process
learns what the others sharing the store have spent) and ``majordomo-log budgets
status`` shows it.

One query per call (per ``VALUES_PER_QUERY`` values asked for), the same SQL in every
dialect but for reading a tag out of the JSON ``tags`` column:

* ``started_at`` comes first in the WHERE, so each dialect reads the ``started_at``
  index for the window;
* refused attempts (``status = 'blocked'``) never count: they cost nothing and used no
  tokens, and counting them as requests would let a refused caller lock itself out;
* a tag with a column of its own (``schema.PROMOTED_TAGS``, and ``api_key_alias``) is read
  from that column, any other from ``tags``; a row without a value for every scope tag
  (NULL, no such key, or empty text, as ``Budget.scope_value`` sees it) is not counted
  for that scope;
* tag names are put into the SQL text, so only names of letters, digits, ``_``, ``.`` and
  ``-`` pass (``ConfigError`` otherwise); values are always parameters.

A value is read as text, the same in every dialect for text, numbers and booleans
(``"u-1"``, ``"42"``, ``"true"``), which is how a promoted column holds them; a tag
holding a JSON object or array reads as each database prints JSON (not comparable across
dialects, and no budget's scope value looks like one).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from ..._exceptions import ConfigError
from ...schema import PROMOTED_TAGS
from ..base import MetadataStore

ScopeKey = tuple[str, ...]
Amount = Decimal | int
UNITS = ("usd", "tokens", "requests")
# Scope names read from a column of the row rather than from the JSON tags.
COLUMN_TAGS = frozenset((*PROMOTED_TAGS, "api_key_alias"))
TAG_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Values asked for per query: each is a parameter (two or more for a scope of several
# tags), far below every dialect's limit, and a plan the database reuses.
VALUES_PER_QUERY = 200
_TOTALS = {"usd": "SUM(total_cost)", "tokens": "SUM(total_tokens)", "requests": "COUNT(*)"}
_LARGEST = {"usd": "MAX(total_cost)", "tokens": "MAX(total_tokens)"}
_COST_QUANTUM = Decimal("1e-10")  # the scale of the cost columns on PostgreSQL and MySQL


def check_tag_name(name: str) -> str:
    """A scope tag name, which goes into SQL text: letters, digits, ``_ . -`` only."""
    if not isinstance(name, str) or not TAG_NAME.fullmatch(name):
        raise ConfigError(
            f"a scope tag name is 1 to 64 letters, digits, '_', '.' or '-', got {name!r:.80}"
        )
    return name


def scope_expression(dialect: str, tag: str) -> str:
    """SQL for the value of one scope tag of a row, as text (NULL when it has none)."""
    check_tag_name(tag)
    path = f"'$.\"{tag}\"'"  # quoted: a name may hold '.' or '-'
    if dialect == "mysql":
        # Compared and grouped as bytes: MySQL's collations pad, so 'u-1 ' would be 'u-1'.
        if tag in COLUMN_TAGS:
            return f"CAST({tag} AS BINARY)"
        # JSON_UNQUOTE reads a JSON null as the text 'null': NULL it is.
        extract = f"JSON_EXTRACT(tags, {path})"
        return (
            f"CAST(CASE JSON_TYPE({extract}) WHEN 'NULL' THEN NULL"
            f" ELSE JSON_UNQUOTE({extract}) END AS BINARY)"
        )
    if tag in COLUMN_TAGS:
        return tag
    if dialect == "postgresql":
        return f"(tags ->> '{tag}')"  # tags is jsonb; JSON null reads as NULL
    if dialect == "sqlite":
        # json_extract reads true as 1 and numbers as numbers: text as the others print it.
        return (
            f"(CASE json_type(tags, {path}) WHEN 'null' THEN NULL WHEN 'true' THEN 'true'"
            f" WHEN 'false' THEN 'false' ELSE CAST(json_extract(tags, {path}) AS TEXT) END)"
        )
    raise ConfigError(f"no SQL for scope tags in the {dialect!r} dialect")


async def spend_by_scope(
    store: MetadataStore,
    scope: tuple[str, ...],
    unit: str,
    since: dt.datetime | None,
    until: dt.datetime | None = None,
    values: Sequence[tuple[str, ...]] | None = None,
) -> dict[tuple[str, ...], Decimal | int]:
    """What each scope value's calls in ``since <= started_at < until`` (aware UTC; None:
    unbounded) added up to, blocked attempts left out: dollars (``unit="usd"``: the sum
    of ``total_cost`` as a Decimal, a call of unknown cost adding nothing; exact on
    PostgreSQL and MySQL, and to 10 places on SQLite, whose sums are floats), tokens
    (``"tokens"``: the sum of ``total_tokens``) or calls (``"requests"``), as ints.

    ``scope=()``: one entry, keyed ``()``, for the whole log (zero when there are no
    calls). Otherwise one entry per scope value that has calls in the window, keyed by
    its tags' values as text in scope order; ``values`` restricts the answer to those
    values (asked for ``VALUES_PER_QUERY`` at a time)."""
    if unit not in _TOTALS:
        raise ConfigError(f"a spend unit is one of {', '.join(UNITS)}, got {unit!r}")
    figures = await _by_scope(store, scope, _TOTALS[unit], since, until, values)
    out = {key: _amount(unit, value) for key, value in figures.items()}
    if not scope:
        out.setdefault((), _amount(unit, None))
    return out


async def largest_call_by_scope(
    store: MetadataStore,
    scope: tuple[str, ...],
    unit: str,
    since: dt.datetime | None,
    until: dt.datetime | None = None,
    values: Sequence[tuple[str, ...]] | None = None,
) -> dict[tuple[str, ...], Decimal | int]:
    """The largest single call of each scope value in the window (``total_cost`` for
    ``"usd"``, ``total_tokens`` for ``"tokens"``), as ``spend_by_scope`` reads scopes and
    windows: what a per-call cap is measured against. Scope values whose calls all have
    an unknown amount are left out."""
    if unit not in _LARGEST:
        raise ConfigError(f"the largest call is measured in usd or tokens, got {unit!r}")
    figures = await _by_scope(store, scope, _LARGEST[unit], since, until, values)
    return {key: _amount(unit, value) for key, value in figures.items() if value is not None}


async def _by_scope(
    store: MetadataStore,
    scope: tuple[str, ...],
    aggregate: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    values: Sequence[tuple[str, ...]] | None,
) -> dict[ScopeKey, Any]:
    """The aggregate per scope value, as the database returned it."""
    scope = tuple(scope)
    if len(set(scope)) != len(scope):
        raise ConfigError(f"a scope names a tag twice: {scope!r}")
    expressions = [scope_expression(store.dialect, tag) for tag in scope]
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:  # first: the started_at index
        clauses.append("started_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("started_at < ?")
        params.append(until)
    clauses.append("status <> 'blocked'")
    clauses += [f"{expression} <> ''" for expression in expressions]  # NULL or '': no value
    selected = [f"{expression} AS scope_{i}" for i, expression in enumerate(expressions)]
    sql = f"SELECT {', '.join([*selected, f'{aggregate} AS amount'])} FROM llm_requests"
    group = f" GROUP BY {', '.join(expressions)}" if expressions else ""
    if not expressions or values is None:
        rows = await store.fetch(f"{sql} WHERE {' AND '.join(clauses)}{group}", params)
        return {_key(row, len(scope)): row["amount"] for row in rows}
    out: dict[ScopeKey, Any] = {}
    wanted = _wanted(values, len(scope))
    for start in range(0, len(wanted), VALUES_PER_QUERY):
        chunk = wanted[start : start + VALUES_PER_QUERY]
        match, matched = _match(expressions, chunk)
        rows = await store.fetch(
            f"{sql} WHERE {' AND '.join([*clauses, match])}{group}", [*params, *matched]
        )
        out.update((_key(row, len(scope)), row["amount"]) for row in rows)
    return out


def _wanted(values: Iterable[tuple[str, ...]], width: int) -> list[ScopeKey]:
    """The values asked for, as text, each once, in order."""
    wanted: dict[ScopeKey, None] = {}
    for value in values:
        key = tuple(str(part) for part in value)
        if len(key) != width:
            raise ConfigError(f"a scope value of {width} tags has {width} parts, got {value!r:.80}")
        wanted[key] = None
    return list(wanted)


def _match(expressions: Sequence[str], chunk: Sequence[ScopeKey]) -> tuple[str, list[str]]:
    """The clause selecting these values, and its parameters."""
    if len(expressions) == 1:
        marks = ", ".join("?" * len(chunk))
        return f"{expressions[0]} IN ({marks})", [key[0] for key in chunk]
    one = "(" + " AND ".join(f"{e} = ?" for e in expressions) + ")"
    return "(" + " OR ".join([one] * len(chunk)) + ")", [part for key in chunk for part in key]


def _key(row: dict[str, Any], width: int) -> ScopeKey:
    return tuple(_text(row[f"scope_{i}"]) for i in range(width))


def _text(value: Any) -> str:
    """A scope value as read: text, or MySQL's bytes (see ``scope_expression``)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _amount(unit: str, value: Any) -> Amount:
    """A sum as read from any dialect: SQLite's are floats (or ints), the servers' Decimals."""
    if unit != "usd":
        return int(value or 0)
    if value is None:
        return Decimal(0)
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(_COST_QUANTUM)
    return value if isinstance(value, Decimal) else Decimal(value)
