"""HTML building for the dashboard: escaping, the page frame, tables and number formats.

Every value from the log is attacker-controlled text (a prompt, a model name, a tag):
nothing here evaluates it, and nothing reaches the page unescaped. The rule is a type:
:class:`Html` is markup this package wrote; anything else given to :func:`cell`,
:func:`table` or :func:`join` is escaped first. There is no template engine (so no
template syntax in data can mean anything), and pages are built by joining lists, in time
linear in what they show.

The frame carries no inline script or style: the Content-Security-Policy the server sends
(``server.py``) allows scripts and styles from the dashboard's own ``/static/`` only, and
the chart's figures travel as JSON inside a ``<script type="application/json">`` element,
which the browser never runs.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

NAV = (("/", "Overview"), ("/budgets", "Budgets"), ("/calls", "Expensive calls"))
STYLESHEETS = ("uPlot.min.css", "dashboard.css")
SCRIPTS = ("uPlot.iife.min.js", "dashboard.js")
NONE_TEXT = "(none)"  # a NULL group value, shown apart from any text a tag could hold


class Html(str):
    """Markup written by this package: safe to put in a page as it is."""

    __slots__ = ()


def esc(value: Any) -> Html:
    """Text (anything, through ``str``) as HTML: ``& < > " '`` escaped."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    """Markup and text joined, text escaped."""
    return Html(sep.join(esc(p) for p in parts))


def tag(element: str, content: Any = "", /, **attrs: Any) -> Html:
    """``<element attrs>content</element>``; attribute names are ours (``class_`` for class,
    ``_`` for ``-``), values are escaped; a None or False attribute is left out, True is
    written bare."""
    return Html(f"<{element}{attributes(attrs)}>{esc(content)}</{element}>")


def void(element: str, /, **attrs: Any) -> Html:
    """An element without content (``input``, ``meta``): ``<element attrs>``."""
    return Html(f"<{element}{attributes(attrs)}>")


def attributes(attrs: dict[str, Any]) -> str:
    out = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        out.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(out)


# -- numbers ----------------------------------------------------------------------------


def money(value: Decimal | None, *, short: bool = False) -> str:
    """Dollars to every place the cost columns hold, at least cents: ``$0.0123456``,
    ``$12.50``, ``$1,234.00``; None (unknown) is ``n/a``, never ``$0``. ``short``: cents
    from a dollar up, four significant figures below (``$12.35``, ``$0.001235``)."""
    if value is None:
        return "n/a"
    if short and value:
        value = value.quantize(Decimal("0.01")) if abs(value) >= 1 else round_figures(value, 4)
    text = f"{value:,.10f}".rstrip("0")
    whole, _, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}${whole.lstrip('-')}.{cents.ljust(2, '0')}"


def round_figures(value: Decimal, figures: int) -> Decimal:
    """``value`` to ``figures`` significant figures (not past the 10th decimal place)."""
    exponent = value.adjusted() - figures + 1
    return value.quantize(Decimal(1).scaleb(max(exponent, -10)))


def plain_decimal(value: Decimal | None) -> str:
    """A Decimal as plain text without an exponent or trailing zeros (``data-value``)."""
    if value is None:
        return ""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percent with one decimal (``-`` when whole is 0)."""
    return "-" if whole == 0 else f"{part * 100 / whole:.1f}%"


def millis(value: float | None) -> str:
    """Milliseconds, three significant figures at most: ``840 ms``, ``1.25 s``."""
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:,.3g} s" if value < 100_000 else f"{value / 1000:,.0f} s"
    return f"{value:.3g} ms"


def when(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def group_label(value: str | None) -> Html:
    """A group's value, or ``(none)`` set apart for a call without one."""
    return tag("span", NONE_TEXT, class_="none") if value is None else esc(value)


# -- tables -----------------------------------------------------------------------------


def cell(
    value: Any, *, value_attr: str | None = None, numeric: bool = False, th: bool = False
) -> Html:
    """One ``<td>`` (``<th scope="row">`` with ``th``); ``value_attr`` goes in
    ``data-value`` (the exact figure behind a formatted one, for tests and scripts)."""
    name = "th" if th else "td"
    return tag(
        name,
        value,
        scope="row" if th else None,
        class_="num" if numeric else None,
        data_value=value_attr,
    )


def table(
    columns: Sequence[tuple[str, bool]],
    rows: Iterable[Sequence[Html]],
    *,
    caption: str,
    id_: str | None = None,
    foot: Sequence[Html] | None = None,
) -> Html:
    """A table: ``columns`` as (heading, numeric); ``rows`` of cells made by :func:`cell`."""
    head = join(
        tag("th", name, scope="col", class_="num" if numeric else None) for name, numeric in columns
    )
    body = join(tag("tr", join(row)) for row in rows)
    parts = [
        tag("caption", caption),
        tag("thead", tag("tr", head)),
        tag("tbody", body),
    ]
    if foot is not None:
        parts.append(tag("tfoot", tag("tr", join(foot))))
    return tag("table", join(parts), id=id_)


# -- forms -------------------------------------------------------------------------------


def select_field(name: str, label: str, choices: Sequence[tuple[str, str]], current: str) -> Html:
    options = join(
        tag("option", text, value=value, selected=value == current) for value, text in choices
    )
    return tag("label", join([label, " ", tag("select", options, name=name, id=f"ctl-{name}")]))


def until_field(value: str) -> Html:
    box = void(
        "input",
        name="until",
        id="ctl-until",
        value=value,
        placeholder="now",
        size="16",
        title="an ISO date or date and time, UTC: 2026-11-01 or 2026-11-01T12:00",
    )
    return tag("label", join(["until ", box]))


# -- the page -----------------------------------------------------------------------------


def json_script(element_id: str, data: Any) -> Html:
    """Data for the page's script, as JSON the HTML parser cannot end early: ``<``, ``>``,
    ``&`` and the two JavaScript line separators are written as ``\\u`` escapes."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return Html(f'<script type="application/json" id="{esc(element_id)}">{text}</script>')


def page(title: str, body: Html, *, active: str, source: str, charts: bool = False) -> bytes:
    """A whole page as UTF-8. ``active``: the nav path shown as current; ``source``: the
    log's URL as shown (already without a password); ``charts``: load the chart scripts."""
    nav = join(
        tag("a", label, href=path, aria_current="page" if path == active else None)
        for path, label in NAV
    )
    links = join(Html(f'<link rel="stylesheet" href="/static/{name}">') for name in STYLESHEETS)
    scripts = (
        join(Html(f'<script src="/static/{name}"></script>') for name in SCRIPTS) if charts else ""
    )
    header = tag(
        "header",
        join(
            [
                tag("span", "majordomo-log", class_="brand"),
                tag("nav", nav, aria_label="pages"),
                tag("span", f"{source} · read-only", class_="source"),
            ]
        ),
    )
    document = join(
        [
            Html('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'),
            Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
            Html('<meta name="referrer" content="no-referrer">'),
            tag("title", f"{title} · majordomo-log"),
            Html('<link rel="icon" href="data:,">'),
            links,
            Html("</head><body>"),
            header,
            tag("main", body, id="main"),
            scripts,
            Html("</body></html>\n"),
        ]
    )
    return document.encode("utf-8")


def error_page(status: int, reason: str, message: str, *, source: str) -> bytes:
    body = join([tag("h1", f"{status} {reason}"), tag("p", message, class_="problem")])
    return page(f"{status} {reason}", body, active="", source=source)
