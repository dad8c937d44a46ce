"""Page building (majordomo_log/dashboard/html.py, bodies.py): every value escaped, the
chart's JSON unable to end its script element, bodies shown readably within a cap."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest

from majordomo_log.dashboard.bodies import MAX_SHOWN_CHARS, call_body
from majordomo_log.dashboard.html import (
    Html,
    cell,
    esc,
    json_script,
    money,
    page,
    plain_decimal,
    table,
    tag,
)
from majordomo_log.dashboard.queries import CallBody

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> \" ' & {{7*7}} </pre>"


class Elements(HTMLParser):
    """The start tags of a document, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(markup: str) -> Elements:
    parser = Elements()
    parser.feed(markup)
    parser.close()
    return parser


def test_text_is_escaped_and_markup_is_not() -> None:
    assert esc(HOSTILE) == (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &quot; &#x27; "
        "&amp; {{7*7}} &lt;/pre&gt;"
    )
    assert esc(Html("<b>ours</b>")) == "<b>ours</b>"
    link = tag("a", HOSTILE, href='/calls?x="><script>', title=HOSTILE)
    elements = parse(link)
    assert [t for t, _ in elements.tags] == ["a"]  # one element, whatever the text
    assert elements.tags[0][1]["title"] == HOSTILE and "".join(elements.text) == HOSTILE


def test_a_table_escapes_its_cells() -> None:
    markup = table([(HOSTILE, False)], [[cell(HOSTILE, th=True)]], caption=HOSTILE)
    assert [t for t, _ in parse(markup).tags] == [
        "table",
        "caption",
        "thead",
        "tr",
        "th",
        "tbody",
        "tr",
        "th",
    ]


def test_the_charts_json_cannot_end_its_script() -> None:
    data = {"label": "</script><script>alert(1)</script>\u2028\u2029&<!--", "n": [1.5]}
    markup = json_script("d", data)
    assert markup.count("</script") == 1 and markup.endswith("</script>")
    assert "<!--" not in markup and "\u2028" not in markup
    inner = re.fullmatch(r'<script type="application/json" id="d">(.*)</script>', markup, re.S)
    assert inner is not None and json.loads(inner[1]) == data
    with pytest.raises(ValueError):
        json_script("d", {"x": float("nan")})  # JSON.parse would refuse it


@pytest.mark.parametrize(
    ("value", "text", "short"),
    [
        (None, "n/a", "n/a"),
        (Decimal("0.00000375"), "$0.00000375", "$0.00000375"),
        (Decimal("0"), "$0.00", "$0.00"),
        (Decimal("1234.5"), "$1,234.50", "$1,234.50"),
        (Decimal("2.1431552512"), "$2.1431552512", "$2.14"),
        (Decimal("0.0123456789"), "$0.0123456789", "$0.01235"),
        (Decimal("-3.5"), "-$3.50", "-$3.50"),
    ],
)
def test_money(value: Decimal | None, text: str, short: str) -> None:
    assert money(value) == text and money(value, short=True) == short


def test_plain_decimal_is_exact() -> None:
    assert plain_decimal(Decimal("1E-10")) == "0.0000000001"
    assert plain_decimal(Decimal("12.3400")) == "12.34" and plain_decimal(Decimal("0E-10")) == "0"


def test_the_frame_names_no_outside_address_and_runs_no_inline_script() -> None:
    markup = page(HOSTILE, Html("<p>x</p>"), active="/", source=HOSTILE, charts=True).decode()
    assert not re.search(r"https?://", markup)
    elements = parse(markup)
    scripts = [a for t, a in elements.tags if t == "script"]
    assert scripts and all(a.get("src", "").startswith("/static/") for a in scripts)
    assert not [t for t, a in elements.tags if t == "style" or "style" in a]
    assert HOSTILE in "".join(elements.text)  # the source and the title, as text


def envelope(request: Any, response: Any, **head: Any) -> CallBody:
    return CallBody(
        {
            "format": "majordomo-log/body@1",
            "request_id": "r",
            **head,
            "request": request,
            "response": response,
        },
        None,
    )


ROW = {
    "request_id": "01a20000-0000-7000-8000-000000000001",
    "model": HOSTILE,
    "total_cost": Decimal("0.5"),
    "tags": '{"user_id": "<b>"}',
    "error_message": None,
}


def test_a_chat_call_is_shown_as_messages_and_as_json() -> None:
    body = envelope(
        {
            "model": "gpt-4o",
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": HOSTILE},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                    ],
                },
            ],
        },
        {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "Sure: " + HOSTILE,
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                    }
                }
            ]
        },
    )
    markup = call_body(ROW, body)
    elements = parse(markup)
    assert not [t for t, _ in elements.tags if t in ("script", "img", "b", "style")]
    roles = [a["data-role"] for t, a in elements.tags if t == "article"]
    assert roles == ["system", "user", "assistant"]
    text = "".join(elements.text)
    assert text.count(HOSTILE) == 3  # the model in the row, the prompt, the reply
    assert json.dumps(HOSTILE)[1:-1] in text  # and the JSON
    assert "temperature" in text and "image_url" in text and '"name": "f"' in text


@pytest.mark.parametrize(
    ("request_", "response", "roles"),
    [
        (  # Anthropic
            {
                "system": [{"type": "text", "text": "S"}],
                "messages": [{"role": "user", "content": "Q"}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "A"},
                    {"type": "tool_use", "name": "t", "input": {}},
                ],
            },
            ["system", "user", "assistant"],
        ),
        (  # Responses
            {
                "instructions": "S",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "Q"}]}],
            },
            {
                "output": [
                    {"type": "reasoning", "summary": []},
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "A"}],
                    },
                ]
            },
            ["system", "user", "reasoning", "assistant"],
        ),
        (  # Gemini
            {
                "contents": [{"role": "user", "parts": [{"text": "Q"}]}],
                "config": {"system_instruction": "S"},
            },
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "A"}]}}]},
            ["system", "user", "model"],
        ),
        ({"input": "Q"}, {"$text": "A"}, ["input", "text"]),  # embeddings; a plain text reply
    ],
)
def test_each_known_shape_reads_as_a_conversation(
    request_: Any, response: Any, roles: list[str]
) -> None:
    elements = parse(call_body(ROW, envelope(request_, response)))
    assert [a["data-role"] for t, a in elements.tags if t == "article"] == roles


def test_stored_markers_errors_and_missing_bodies() -> None:
    cut = {"$truncated": True, "original_bytes": 99_000_000, "sha256": "ab", "head": "{..."}
    failed = {"$redaction_failed": "KeyError"}
    text = "".join(
        parse(
            call_body(ROW, envelope(cut, failed, error={"type": "APIError", "message": HOSTILE}))
        ).text
    )
    assert "99000000 bytes as sent" in text and "a redaction hook failed (KeyError)" in text
    assert f"APIError: {HOSTILE}" in text
    text = "".join(parse(call_body(ROW, CallBody(None, "no body was stored"))).text)
    assert "no body was stored" in text


def test_deep_and_huge_bodies_are_shown_in_part_without_failing() -> None:
    deep: Any = "bottom"
    for _ in range(3000):
        deep = [deep]
    markup = call_body(ROW, envelope({"messages": [{"role": "user", "content": [deep]}]}, deep))
    assert "nested too deeply" in markup or "bottom" in markup
    huge = "<x>" * 2_000_000  # 6 MB of markup-looking text
    markup = call_body(
        ROW, envelope({"messages": [{"role": "user", "content": huge}]}, {"$text": huge})
    )
    assert "<x>" not in markup and "prints the whole body" in markup
    assert len(markup) < 4 * 4 * MAX_SHOWN_CHARS  # escaped, twice at most, never the 6 MB thrice
