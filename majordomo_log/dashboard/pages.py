"""The budgets page and the most expensive calls (a call's own page is ``bodies.py``'s,
the overview ``overview.py``'s). Each takes what was read (``budgets/status.py``,
``queries.py``) and returns the page's main content; ``html.page`` frames it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ..budgets.status import NO_BUDGETS, BudgetStatus, status_rows
from .html import (
    Html,
    cell,
    count,
    group_label,
    join,
    millis,
    money,
    plain_decimal,
    select_field,
    table,
    tag,
    until_field,
    void,
    when,
)
from .params import GROUPS, WINDOWS, CallsParams

# -- budgets -------------------------------------------------------------------------------


def budgets_page(status: BudgetStatus, now: dt.datetime, source: str) -> Html:
    parts = [
        tag("h1", "Budgets"),
        tag("p", f"As of {when(now)}: spend in each budget's current period.", class_="window"),
    ]
    for problem in status.unreadable:
        parts.append(tag("p", problem, class_="problem"))
    if not status.recorded:
        parts.append(tag("p", NO_BUDGETS.format(url=source), class_="note", id="no-budgets"))
        return join(parts)
    readable = status_rows(status.lines, now, "table")
    rows = []
    for line, shown in zip(status.lines, readable, strict=True):
        used = min(max(line.used_pct, 0.0), 100.0)
        meter = tag(
            "meter",
            shown["used"],
            min="0",
            max="100",
            low="50",
            high="80",
            optimum="0",
            value=f"{used:.1f}",
        )
        rows.append(
            [
                cell(shown["budget"], th=True),
                cell(shown["scope"]),
                cell(shown["kind"]),
                cell(shown["spent"], value_attr=str(line.spent), numeric=True),
                cell(shown["limit"], value_attr=str(line.budget.limit), numeric=True),
                cell(
                    join([meter, " ", shown["used"]]), value_attr=f"{line.used_pct}", numeric=True
                ),
                cell(shown["period"]),
                cell(shown["ends"]),
            ]
        )
    columns = [
        ("budget", False),
        ("scope", False),
        ("kind", False),
        ("spent", True),
        ("limit", True),
        ("used", True),
        ("period", False),
        ("ends", False),
    ]
    parts.append(
        table(
            columns,
            rows,
            caption="Each budget and scope value in its current period, highest use first",
            id_="budgets-table",
        )
    )
    parts.append(
        tag(
            "p",
            "Figures are the log's: every process writing to it, not the calls still "
            "queued in a running wrapper.",
            class_="note",
        )
    )
    return join(parts)


# -- expensive calls -----------------------------------------------------------------------


def calls_page(rows: list[dict[str, object]], params: CallsParams) -> Html:
    hidden = []
    if params.filter is not None:
        hidden.append(void("input", type="hidden", name=params.filter[0], value=params.filter[1]))
    form = tag(
        "form",
        join(
            [
                select_field(
                    "window",
                    "Most expensive calls over",
                    [(w, w) for w in WINDOWS],
                    params.window_name,
                ),
                until_field(params.until_text),
                tag(
                    "label",
                    join(
                        [
                            "show ",
                            void(
                                "input",
                                name="limit",
                                id="ctl-limit",
                                value=str(params.limit),
                                size="4",
                            ),
                        ]
                    ),
                ),
                *hidden,
                tag("button", "Show", type="submit"),
            ]
        ),
        method="get",
        action="/calls",
        class_="controls",
    )
    parts = [
        tag("h1", "Most expensive calls"),
        form,
        tag("p", params.window.describe(), class_="window"),
    ]
    if params.filter is not None:
        column, value = params.filter
        parts.append(
            tag(
                "p",
                join(
                    [
                        f"Only calls whose {GROUPS[column]} is ",
                        tag("code", value),
                        ". ",
                        tag("a", "All calls", href=f"/calls?window={params.window_name}"),
                    ]
                ),
                class_="note",
            )
        )
    lines = []
    for row in rows:
        request_id = str(row["request_id"])
        cost = row["total_cost"]
        lines.append(
            [
                cell(
                    money(cost if isinstance(cost, Decimal) else None),
                    value_attr=plain_decimal(cost if isinstance(cost, Decimal) else None),
                    numeric=True,
                ),
                cell(str(row["started_at"])[:19].replace("T", " ")),
                cell(row["model"] if row["model"] is not None else group_label(None)),
                cell(group_label(_text(row["feature"]))),
                cell(group_label(_text(row["user_id"]))),
                cell(group_label(_text(row["api_key_alias"]))),
                cell(row["status"]),
                cell(count(_int(row["total_tokens"])), numeric=True),
                cell(millis(_float(row["latency_ms"])), numeric=True),
                cell(tag("a", request_id, href=f"/call/{request_id}")),
            ]
        )
    columns = [
        ("cost", True),
        ("started (UTC)", False),
        ("model", False),
        ("feature", False),
        ("user", False),
        ("key alias", False),
        ("status", False),
        ("tokens", True),
        ("latency", True),
        ("call", False),
    ]
    parts.append(table(columns, lines, caption="Calls by cost, highest first", id_="calls-table"))
    if not rows:
        parts.append(tag("p", "No priced calls in this window.", class_="note"))
    return join(parts)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _float(value: object) -> float | None:
    return None if value is None else float(str(value))
