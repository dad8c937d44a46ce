"""What each sink sends: the webhook body, the Slack message, the PagerDuty event and the
log line, built from an ``AlertEvent`` by pure functions.

Kept apart from the sinks (which do the HTTP) so a payload can be read and tested as data,
and so a budget's figures read the same wherever they land: one ``figures()`` feeds the
Slack fields, PagerDuty's custom details and the log line.

Every text a service caps is cut to its cap here (Slack: a header is 150 characters, a
field 2000, at most 10 fields; PagerDuty: a summary is 1024 characters, a dedup key 255),
since a payload over a cap is refused (400) and the alert lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from .events import AlertEvent

SOURCE = "majordomo-log"

SLACK_HEADER_MAX = 150
SLACK_FIELD_MAX = 2000
SLACK_FIELDS_MAX = 10
SLACK_TEXT_MAX = 3000
PAGERDUTY_SUMMARY_MAX = 1024
PAGERDUTY_DEDUP_KEY_MAX = 255
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")

_SLACK_EMOJI = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON: the exact bytes sent (and signed)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


# -- the figures, as a person reads them ----------------------------------------------------


def one_line(text: object, limit: int) -> str:
    """``text`` on one line (a name with a newline must not break a log line or a header),
    cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def amount(value: Decimal | int | float, unit: str | None) -> str:
    """``$4.12``, ``$0.00375`` (a cent would round a small cap to nothing), ``12,000 tokens``."""
    if unit == "usd":
        try:
            money = Decimal(str(value))
        except InvalidOperation:
            return f"${value}"
        if money == 0 or abs(money) >= Decimal("0.01"):
            return f"${money.quantize(Decimal('0.01')):,}"
        return f"${money.normalize():f}"
    if unit in ("tokens", "requests") and isinstance(value, int):
        return f"{value:,} {unit}"
    return f"{value} {unit}" if unit else str(value)


def percent(event: AlertEvent) -> float | None:
    """Spend as a percentage of the limit, to one decimal; None without both figures."""
    if event.spend is None or event.limit is None:
        return None
    try:
        limit = Decimal(str(event.limit))
        if limit == 0:
            return None
        return round(float(Decimal(str(event.spend)) / limit * 100), 1)
    except (InvalidOperation, ValueError):
        return None


def scope_text(event: AlertEvent) -> str:
    """``user_id=alice, team=ml``, or ``all calls`` for a budget over the whole wrapper."""
    if not event.scope:
        return "all calls"
    values = event.scope_value or ()
    return ", ".join(
        f"{name}={values[index] if index < len(values) else '?'}"
        for index, name in enumerate(event.scope)
    )


def when(value: dt.datetime) -> str:
    """``2024-05-02 00:00 UTC``, in the budget's own time zone."""
    zone = value.tzname() or ""
    return f"{value:%Y-%m-%d %H:%M} {zone}".strip()


def threshold_text(threshold: float) -> str:
    return f"{round(threshold * 100, 4):g}%"


def figures(event: AlertEvent) -> list[tuple[str, str]]:
    """(label, value) pairs a person reads, in order; only those the event has."""
    rows: list[tuple[str, str]] = []
    if event.budget is not None:
        rows.append(("Budget", event.budget))
    if event.budget is not None or event.scope_value is not None:
        rows.append(("Scope", scope_text(event)))
    if event.period is not None:
        start = f" from {when(event.period_start)}" if event.period_start else ""
        rows.append(("Period", f"{event.period}{start}"))
    if event.spend is not None or event.limit is not None:
        spend = "?" if event.spend is None else amount(event.spend, event.unit)
        limit = "?" if event.limit is None else amount(event.limit, event.unit)
        rows.append(("Spend / limit", f"{spend} / {limit}"))
    share = percent(event)
    if share is not None:
        rows.append(("Percent", f"{share:g}%"))
    if event.threshold is not None:
        rows.append(("Threshold", threshold_text(event.threshold)))
    if event.period is not None:
        ends = when(event.period_end) if event.period_end else "never (a total)"
        rows.append(("Period ends", ends))
    for key, value in event.to_dict()["details"].items():
        rows.append((str(key), "" if value is None else str(value)))
    return rows


# -- the payloads ---------------------------------------------------------------------------


def webhook_body(event: AlertEvent) -> dict[str, Any]:
    """The generic webhook's JSON: the event as data, and who sent it."""
    return {"source": SOURCE, **event.to_dict()}


def slack_escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup (``<!channel>`` pings a whole channel):
    a budget name or tag value is shown, never obeyed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: object, limit: int) -> str:
    """``text`` on one line, escaped, at most ``limit`` characters once escaped (escaping
    lengthens it, and Slack counts the escaped form)."""
    cut = limit
    while True:
        escaped = slack_escape(one_line(text, cut))
        if len(escaped) <= limit or cut <= 1:
            return escaped
        cut -= len(escaped) - limit


def slack_message(event: AlertEvent) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` is the notification's fallback line,
    ``blocks`` the message (a header, the figures as fields, a context line)."""
    title = slack_text(event.title, SLACK_TEXT_MAX - 40) or f"{event.kind} alert"
    emoji = _SLACK_EMOJI.get(event.severity, ":bell:")
    fields = [
        {
            "type": "mrkdwn",
            "text": f"*{slack_text(label, 200)}*\n{slack_text(value, SLACK_FIELD_MAX - 210)}",
        }
        for label, value in figures(event)[:SLACK_FIELDS_MAX]
    ]
    section: dict[str, Any] = (
        {"type": "section", "fields": fields}
        if fields
        else {"type": "section", "text": {"type": "mrkdwn", "text": title}}
    )
    context = (
        f"{SOURCE} · {slack_text(event.kind, 100)} · {slack_text(event.severity, 100)} · "
        f"dedup key `{slack_text(event.dedup_key, 300)}`"
    )
    return {
        "text": f"{emoji} {title}",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": one_line(event.title, SLACK_HEADER_MAX) or f"{event.kind} alert",
                    "emoji": True,
                },
            },
            section,
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def pagerduty_dedup_key(key: str) -> str:
    """PagerDuty caps a dedup key at 255 characters. A longer key keeps its start and ends
    with its SHA-256, so two long keys with the same start stay two incidents."""
    if len(key) <= PAGERDUTY_DEDUP_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key[: PAGERDUTY_DEDUP_KEY_MAX - len(digest) - 1] + "~" + digest


def pagerduty_severity(severity: str) -> str:
    return severity if severity in PAGERDUTY_SEVERITIES else "warning"


def pagerduty_event(event: AlertEvent, routing_key: str, source: str) -> dict[str, Any]:
    """An Events API v2 ``trigger``: PagerDuty opens one incident per dedup key, and a
    repeat of the key while the incident is open adds to it rather than paging again."""
    details: dict[str, Any] = dict(figures(event))
    details["kind"] = event.kind
    details["dedup_key"] = event.dedup_key
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": pagerduty_dedup_key(event.dedup_key),
        "client": SOURCE,
        "payload": {
            "summary": one_line(event.title, PAGERDUTY_SUMMARY_MAX) or f"{event.kind} alert",
            "source": source,
            "severity": pagerduty_severity(event.severity),
            "timestamp": event.at.isoformat(),
            "component": event.budget if event.budget is not None else event.kind,
            "group": SOURCE,
            "class": event.kind,
            "custom_details": details,
        },
    }


def log_line(event: AlertEvent) -> str:
    """One line: severity, title, figures, dedup key."""
    parts = "; ".join(f"{label}: {one_line(value, 200)}" for label, value in figures(event))
    text = f"Alert [{event.severity}] {one_line(event.title, 500)}"
    if parts:
        text += f" ({parts})"
    return f"{text} dedup_key={one_line(event.dedup_key, 300)}"
