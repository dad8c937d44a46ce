"""One call's page: its row, and its stored body shown readably.

The body is shown as it was stored (the writer redacted it before storing: nothing is
redacted again or un-redacted here), twice: as a conversation where its shape is a
known one (OpenAI chat, Responses and embeddings, Anthropic messages, Gemini contents:
each message's role and text, tool calls as JSON), and whole, as indented JSON.

A prompt is whatever the application's users typed, so every piece of it is escaped
(``html.esc``), none is parsed as markup, and the work is linear in the body's size: the
walk over a conversation looks at fixed depths only (a message, its parts), the JSON is
indented by orjson, and both stop at a cap (:data:`MAX_SHOWN_CHARS`) with a note that
``majordomo-log show`` prints the rest. A body nested too deep for orjson (over 255
levels) is shown compact, or not at all, with a note.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson

from .html import Html, esc, join, tag
from .queries import CallBody

MAX_SHOWN_CHARS = 1_000_000  # of indented JSON, and of conversation text, per page
MAX_MESSAGES = 500
_LONG_ROW_VALUES = frozenset({"tags", "error_message", "usage_flags"})
# Request members shown as the conversation, not as parameters.
_CONVERSATION_KEYS = frozenset(
    {"messages", "system", "input", "instructions", "contents", "prompt", "tools", "config"}
)


class Allowance:
    """Characters still to be shown on this page: every text goes through :meth:`take`."""

    def __init__(self, chars: int = MAX_SHOWN_CHARS) -> None:
        self.left = chars
        self.cut = False

    def take(self, text: str) -> str:
        if len(text) <= self.left:
            self.left -= len(text)
            return text
        shown, self.left, self.cut = text[: self.left], 0, True
        return shown + " …"


def pretty_json(value: Any, allowance: Allowance) -> str:
    """``value`` as indented JSON (compact when nested deeper than orjson goes), within
    the page's allowance."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (RecursionError, ValueError, TypeError):
            text = "(nested too deeply to show here: majordomo-log show prints it)"
    return allowance.take(text)


# -- the row -------------------------------------------------------------------------------


def row_value(name: str, value: Any) -> Html:
    if value is None:
        return tag("span", "NULL", class_="none")
    if isinstance(value, Decimal):
        return esc(f"{value:f}")
    if isinstance(value, dt.datetime):
        return esc(value.isoformat())
    if name == "tags" and isinstance(value, str):
        try:
            return tag("pre", json.dumps(json.loads(value), indent=2, ensure_ascii=False))
        except (ValueError, RecursionError):
            return tag("pre", value)
    if name in _LONG_ROW_VALUES:
        return tag("pre", value)
    return esc(value)


def row_table(row: dict[str, Any]) -> Html:
    lines = join(
        tag("tr", join([tag("th", name, scope="row"), tag("td", row_value(name, value))]))
        for name, value in row.items()
    )
    return tag(
        "table",
        join([tag("caption", "The row in llm_requests"), tag("tbody", lines)]),
        class_="row",
        id="call-row",
    )


# -- the conversation ----------------------------------------------------------------------


def _text(part: Any, allowance: Allowance) -> Html:
    """One piece of a message: text as text, anything else as JSON."""
    if isinstance(part, str):
        return tag("pre", allowance.take(part), class_="text")
    if isinstance(part, dict):
        text = part.get("text")
        if isinstance(text, str) and part.get("type") in (
            None,
            "text",
            "input_text",
            "output_text",
        ):
            return tag("pre", allowance.take(text), class_="text")
        kind = part.get("type")
        label = tag("span", str(kind), class_="part-kind") if isinstance(kind, str) else ""
        return join([label, tag("pre", pretty_json(part, allowance), class_="json")])
    return tag("pre", pretty_json(part, allowance), class_="json")


def _pieces(content: Any, allowance: Allowance) -> Iterator[Html]:
    if isinstance(content, list):
        for part in content[:MAX_MESSAGES]:
            yield _text(part, allowance)
        if len(content) > MAX_MESSAGES:
            yield tag("p", f"… {len(content) - MAX_MESSAGES} more parts", class_="note")
    elif content is not None:
        yield _text(content, allowance)


def message(role: Any, content: Any, allowance: Allowance, extra: Any = None) -> Html:
    """One message: its role, its content's pieces, and ``extra`` (tool calls) as JSON."""
    role_text = role if isinstance(role, str) else "message"
    parts = list(_pieces(content, allowance))
    if extra:
        parts.append(tag("pre", pretty_json(extra, allowance), class_="json"))
    return tag(
        "article",
        join([tag("h4", role_text), *parts]),
        class_="message",
        data_role=role_text[:40],
    )


def request_messages(request: dict[str, Any], allowance: Allowance) -> list[Html]:
    out: list[Html] = []
    for key in ("system", "instructions"):
        if request.get(key):
            out.append(message("system", request[key], allowance))
    config = request.get("config")
    if isinstance(config, dict) and config.get("system_instruction"):
        out.append(message("system", config["system_instruction"], allowance))
    for key in ("messages", "input", "contents", "prompt"):
        items = request.get(key)
        if isinstance(items, str):
            out.append(message("user" if key != "input" else "input", items, allowance))
        elif isinstance(items, list):
            out += _items(items, allowance)
    return out


def _items(items: list[Any], allowance: Allowance) -> list[Html]:
    out = []
    for item in items[:MAX_MESSAGES]:
        if isinstance(item, dict) and ("role" in item or "parts" in item or "content" in item):
            content = item.get("content", item.get("parts"))
            extra = item.get("tool_calls")
            out.append(message(item.get("role"), content, allowance, extra))
        else:
            out.append(
                message("input" if isinstance(item, str) else item_kind(item), item, allowance)
            )
    if len(items) > MAX_MESSAGES:
        out.append(tag("p", f"… {len(items) - MAX_MESSAGES} more messages", class_="note"))
    return out


def item_kind(item: Any) -> str:
    kind = item.get("type") if isinstance(item, dict) else None
    return kind if isinstance(kind, str) else "item"


def response_messages(response: Any, allowance: Allowance) -> list[Html]:
    if not isinstance(response, dict):
        return []
    if isinstance(response.get("$text"), str):
        return [message("text", response["$text"], allowance)]
    out: list[Html] = []
    choices = response.get("choices")
    if isinstance(choices, list):  # OpenAI chat
        for choice in choices[:MAX_MESSAGES]:
            msg = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(msg, dict):
                out.append(
                    message(msg.get("role"), msg.get("content"), allowance, msg.get("tool_calls"))
                )
    content = response.get("content")
    if isinstance(content, list):  # Anthropic
        out.append(message(response.get("role") or "assistant", content, allowance))
    output = response.get("output")
    if isinstance(output, list):  # Responses
        out += _items(output, allowance)
    candidates = response.get("candidates")
    if isinstance(candidates, list):  # Gemini
        for candidate in candidates[:MAX_MESSAGES]:
            body = candidate.get("content") if isinstance(candidate, dict) else None
            if isinstance(body, dict):
                out.append(message(body.get("role") or "model", body.get("parts"), allowance))
    return out


def parameters(request: dict[str, Any]) -> Html:
    """The request's other members (model, max_tokens, temperature, ...)."""
    lines = [
        tag("tr", join([tag("th", key, scope="row"), tag("td", _short(value))]))
        for key, value in list(request.items())[:200]
        if key not in _CONVERSATION_KEYS
    ]
    if not lines:
        return Html("")
    return tag(
        "table", join([tag("caption", "Parameters"), tag("tbody", join(lines))]), class_="row"
    )


def _short(value: Any) -> Html:
    if isinstance(value, (dict, list)):
        return tag("pre", pretty_json(value, Allowance(20_000)), class_="json")
    return esc(value if isinstance(value, str) else json.dumps(value))


def markers(part: Any) -> Html:
    """A note for a request or response the writer replaced: cut to size, or dropped
    because a redaction hook failed."""
    if not isinstance(part, dict):
        return Html("")
    if part.get("$truncated"):
        return tag(
            "p",
            f"Stored cut to size: {part.get('original_bytes')} bytes as sent, the first part "
            "kept (see head below).",
            class_="note",
        )
    if "$redaction_failed" in part:
        return tag(
            "p",
            f"Not stored: a redaction hook failed ({part.get('$redaction_failed')}).",
            class_="note",
        )
    return Html("")


# -- the page ------------------------------------------------------------------------------


def call_body(row: dict[str, Any], body: CallBody) -> Html:
    """The call page's content: the row, then request and response, then the body whole."""
    allowance = Allowance()
    title = tag("h1", join(["Call ", tag("code", row.get("request_id"))]))
    parts = [title, row_table(row)]
    if body.envelope is None:
        parts.append(tag("h2", "Body"))
        parts.append(tag("p", body.problem or "no body", class_="problem", id="body-problem"))
        return join(parts)
    envelope = body.envelope
    request = envelope.get("request")
    response = envelope.get("response")
    error = envelope.get("error")
    section = [tag("h2", "Request"), markers(request)]
    if isinstance(request, dict):
        section.append(parameters(request))
        section += request_messages(request, allowance)
    parts.append(tag("section", join(section), id="request", aria_label="request"))
    section = [tag("h2", "Response"), markers(response)]
    if isinstance(error, dict):
        section.append(tag("p", f"{error.get('type')}: {error.get('message')}", class_="problem"))
    section += response_messages(response, allowance)
    if response is None and not error:
        section.append(tag("p", "No response was stored.", class_="note"))
    parts.append(tag("section", join(section), id="response", aria_label="response"))
    parts.append(tag("h2", "Stored body, as JSON"))
    whole = Allowance()
    parts.append(tag("pre", pretty_json(envelope, whole), class_="json", id="body-json"))
    if allowance.cut or whole.cut:
        parts.append(
            tag(
                "p",
                f"This page shows the first {MAX_SHOWN_CHARS:,} characters; "
                f"`majordomo-log show {row.get('request_id')}` prints the whole body.",
                class_="note",
            )
        )
    return join(parts)
