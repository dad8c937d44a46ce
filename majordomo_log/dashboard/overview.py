"""The overview page: spend over time by a group (model, feature, user, key alias, ...),
per hour or day over a window, with the chart's figures as tables too (the spend per
group beside the chart, every point under it), the summary figures, tokens by kind and
cache savings, errors and latency percentiles.

Every figure drawn is also written as text, so a screen reader, a test or a copy-paste
gets the same numbers as the eye; exact amounts are in each cell's ``data-value`` and
the text shows them as dollars.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from .html import (
    Html,
    cell,
    count,
    esc,
    group_label,
    join,
    json_script,
    millis,
    money,
    percent,
    plain_decimal,
    select_field,
    table,
    tag,
    until_field,
)
from .params import GROUPS, STEPS, WINDOWS, OverviewParams
from .queries import LISTED, TOKEN_KINDS, Figures, Overview

TABLE_MAX = LISTED  # groups listed; the rest are one "other" line


def controls(params: OverviewParams) -> Html:
    fields = [
        select_field("by", "Spend by", [(g, label) for g, label in GROUPS.items()], params.by),
        select_field("step", "per", [(s, s) for s in STEPS], params.window.step),
        select_field("window", "over", [(w, w) for w in WINDOWS], params.window_name),
        until_field(params.until_text),
        tag("button", "Show", type="submit"),
    ]
    return tag("form", join(fields), method="get", action="/", class_="controls")


def add(a: Figures, b: Figures, key: str | None = None) -> Figures:
    return Figures(
        key=key,
        calls=a.calls + b.calls,
        errors=a.errors + b.errors,
        incomplete=a.incomplete + b.incomplete,
        blocked=a.blocked + b.blocked,
        unpriced=a.unpriced + b.unpriced,
        tokens={k: a.tokens[k] + b.tokens[k] for k in a.tokens},
        total_tokens=a.total_tokens + b.total_tokens,
        cost=None
        if a.cost is None and b.cost is None
        else (a.cost or Decimal(0)) + (b.cost or Decimal(0)),
        savings=None
        if a.savings is None and b.savings is None
        else (a.savings or Decimal(0)) + (b.savings or Decimal(0)),
    )


def listed(groups: list[Figures]) -> tuple[list[Figures], Figures | None, int]:
    """The groups a table lists, the rest added up (None when there is no rest), and how
    many that rest holds."""
    shown, rest = groups[:TABLE_MAX], groups[TABLE_MAX:]
    if not rest:
        return shown, None, 0
    other = rest[0]
    for figures in rest[1:]:
        other = add(other, figures)
    return shown, other, len(rest)


def _group_link(params: OverviewParams, key: str | None) -> Html:
    if key is None:
        return group_label(None)
    query = {params.by: key, "window": params.window_name}
    if params.until_text:
        query["until"] = params.until_text
    return tag("a", key, href=f"/calls?{urlencode(query)}")


def cards(total: Figures, latency: dict[int, float | None]) -> Html:
    items = [
        ("Spend", money(total.cost, short=True), plain_decimal(total.cost)),
        ("Calls", count(total.calls), str(total.calls)),
        (
            "Errors",
            f"{count(total.errors)} ({percent(total.errors, total.calls)})",
            str(total.errors),
        ),
        ("Blocked by budgets", count(total.blocked), str(total.blocked)),
        ("Calls of unknown cost", count(total.unpriced), str(total.unpriced)),
        ("Cache savings", money(total.savings, short=True), plain_decimal(total.savings)),
        (
            "Latency p50 / p95 / p99",
            " / ".join(millis(latency[p]) for p in (50, 95, 99)),
            None,
        ),
    ]
    body = join(
        tag("div", join([tag("dt", name), tag("dd", text, data_value=value)]))
        for name, text, value in items
    )
    return tag("dl", body, class_="cards", id="summary")


def spend_section(overview: Overview) -> Html:
    params = overview.params
    label = GROUPS[params.by]
    step = params.window.step
    shown, other, rest = listed(overview.groups)
    total = overview.total

    def line(figures: Figures, name: Html) -> list[Html]:
        return [
            cell(name, th=True),
            cell(count(figures.calls), value_attr=str(figures.calls), numeric=True),
            cell(money(figures.cost), value_attr=plain_decimal(figures.cost), numeric=True),
            cell(percent_of(figures.cost, total.cost), numeric=True),
            cell(count(figures.unpriced), value_attr=str(figures.unpriced), numeric=True),
        ]

    rows = [line(f, _group_link(params, f.key)) for f in shown]
    if other is not None:
        rows.append(line(other, esc(f"other ({rest} more)")))
    spend_table = table(
        [(label, False), ("calls", True), ("spend", True), ("share", True), ("unpriced", True)],
        rows,
        caption=f"Spend by {label}, {params.window.describe()}",
        id_="spend-table",
        foot=line(total, esc("total")),
    )
    data = {
        "x": [int(x.timestamp()) for x in overview.series.x],
        "series": [
            {"label": name, "values": [None if v is None else float(v) for v in values]}
            for name, values in overview.series.lines
        ],
        "step": step,
    }
    chart = tag(
        "figure",
        join(
            [
                tag(
                    "div",
                    "",
                    id="spend-chart",
                    class_="chart",
                    role="img",
                    aria_label=f"Chart of spend per {step} by {label}; the table beside it "
                    "has the totals and the table below it every figure drawn",
                ),
                json_script("spend-data", data),
                tag("figcaption", f"Spend per {step} by {label} (USD, UTC)"),
            ]
        ),
        class_="chart-box",
    )
    parts = [
        tag("h2", f"Spend by {label}"),
        tag("div", join([chart, spend_table]), class_="split"),
        series_table(overview),
    ]
    if not overview.groups:
        parts.insert(1, tag("p", "No calls in this window.", class_="note", id="no-calls"))
    return tag("section", join(parts), id="spend", aria_label="spend")


def percent_of(part: Decimal | None, whole: Decimal | None) -> str:
    return "-" if not whole or part is None else f"{part * 100 / whole:.1f}%"


def series_table(overview: Overview) -> Html:
    """Every point of the chart, as a table (buckets with no spend left out)."""
    series = overview.series
    step = overview.params.window.step
    stamp = "%Y-%m-%d %H:00" if step == "hour" else "%Y-%m-%d"
    rows = []
    for i, start in enumerate(series.x):
        values = [line[1][i] for line in series.lines]
        if not any(v is None or v for v in values):
            continue
        rows.append(
            [cell(start.strftime(stamp), th=True)]
            + [cell(money(v), value_attr=plain_decimal(v), numeric=True) for v in values]
        )
    columns = [(f"{step} (UTC)", False)] + [(name, True) for name, _ in series.lines]
    body = table(
        columns, rows, caption=f"Spend per {step}: the chart's figures", id_="series-table"
    )
    return tag("details", join([tag("summary", f"Spend per {step}, as a table"), body]))


def tokens_section(overview: Overview) -> Html:
    label = GROUPS[overview.params.by]
    shown, other, rest = listed(overview.groups)

    def line(figures: Figures, name: Html) -> list[Html]:
        cells = [cell(name, th=True)]
        for _, column in TOKEN_KINDS:
            value = figures.tokens[column]
            cells.append(cell(count(value), value_attr=str(value), numeric=True))
        cells.append(
            cell(count(figures.total_tokens), value_attr=str(figures.total_tokens), numeric=True)
        )
        cells.append(
            cell(money(figures.savings), value_attr=plain_decimal(figures.savings), numeric=True)
        )
        return cells

    rows = [line(f, group_label(f.key)) for f in shown]
    if other is not None:
        rows.append(line(other, esc(f"other ({rest} more)")))
    columns = [
        (label, False),
        *[(kind, True) for kind, _ in TOKEN_KINDS],
        ("total", True),
        ("cache savings", True),
    ]
    body = table(
        columns,
        rows,
        caption=f"Tokens by kind and by {label}; cache savings: what cache reads saved "
        "against the input rate",
        id_="tokens-table",
        foot=line(overview.total, esc("total")),
    )
    return tag(
        "section", join([tag("h2", "Tokens by kind"), body]), id="tokens", aria_label="tokens"
    )


def latency_section(overview: Overview) -> Html:
    label = GROUPS[overview.params.by]
    shown = overview.groups[:TABLE_MAX]

    def line(
        figures: Figures, name: Html, lat: dict[int, float | None], ttft: dict[int, float | None]
    ) -> list[Html]:
        cells = [
            cell(name, th=True),
            cell(count(figures.calls), value_attr=str(figures.calls), numeric=True),
            cell(count(figures.errors), value_attr=str(figures.errors), numeric=True),
            cell(percent(figures.errors, figures.calls), numeric=True),
            cell(count(figures.incomplete), value_attr=str(figures.incomplete), numeric=True),
        ]
        for values in (lat, ttft):
            for p in (50, 95, 99):
                value = values.get(p)
                shown_value = None if value is None else repr(value)
                cells.append(cell(millis(value), value_attr=shown_value, numeric=True))
        return cells

    empty: dict[int, float | None] = {}
    rows = [
        line(
            f,
            group_label(f.key),
            overview.latency.get(f.key, empty),
            overview.ttft.get(f.key, empty),
        )
        for f in shown
    ]
    columns = [
        (label, False),
        ("calls", True),
        ("errors", True),
        ("error rate", True),
        ("incomplete", True),
        *[(f"latency p{p}", True) for p in (50, 95, 99)],
        *[(f"first token p{p}", True) for p in (50, 95, 99)],
    ]
    body = table(
        columns,
        rows,
        caption=f"Errors and latency by {label} (calls sent; first token: streams only)",
        id_="latency-table",
        foot=line(overview.total, esc("all calls"), overview.latency_all, overview.ttft_all),
    )
    notes = []
    if len(overview.groups) > TABLE_MAX:
        notes.append(
            tag("p", f"{len(overview.groups) - TABLE_MAX} more groups not listed.", class_="note")
        )
    return tag(
        "section",
        join([tag("h2", "Errors and latency"), body, *notes]),
        id="errors",
        aria_label="errors and latency",
    )


def overview_page(overview: Overview) -> Html:
    return join(
        [
            tag("h1", "Spend overview"),
            controls(overview.params),
            tag("p", overview.params.window.describe(), class_="window"),
            cards(overview.total, overview.latency_all),
            spend_section(overview),
            tokens_section(overview),
            latency_section(overview),
        ]
    )
