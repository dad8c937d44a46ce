"""Property-based tests (hypothesis) over bad inputs: the usage normalizer, the body
serializer and the redactor never raise and keep their promises on any input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import string
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from majordomo_log.record.redact import redact_bytes, redact_text
from majordomo_log.record.rows import token_values
from majordomo_log.record.serialize import dumps_body, snapshot_request
from majordomo_log.record.usage import (
    MAX_SANE_TOKENS,
    Usage,
    normalize_anthropic,
    normalize_any,
    normalize_bedrock,
    normalize_gemini,
    normalize_openai,
)

SETTINGS = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
COUNT_FLAGS = {"non_numeric_count", "nan_count", "negative_count", "absurd_count"}

# -- usage normalizer ----------------------------------------------------------------

counts = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.integers(min_value=MAX_SANE_TOKENS - 2, max_value=MAX_SANE_TOKENS + 2),
    st.just(2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.builds(object),
)


def _bad(value: Any) -> bool:
    """What the normalizer must flag (as one of COUNT_FLAGS)."""
    if value is None:
        return False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return math.isnan(value) or value < 0 or value > MAX_SANE_TOKENS


# (normalizer, paths of the counts it always reads): nested paths are sub-objects.
SHAPES: list[tuple[Callable[[Any], Usage], list[tuple[str, ...]]]] = [
    (
        normalize_openai,
        [
            ("prompt_tokens",),
            ("completion_tokens",),
            ("prompt_tokens_details", "cached_tokens"),
            ("prompt_tokens_details", "cache_write_tokens"),
            ("completion_tokens_details", "reasoning_tokens"),
        ],
    ),
    (
        normalize_anthropic,
        [
            ("input_tokens",),
            ("output_tokens",),
            ("cache_read_input_tokens",),
            ("cache_creation", "ephemeral_5m_input_tokens"),
            ("cache_creation", "ephemeral_1h_input_tokens"),
        ],
    ),
    (
        normalize_gemini,
        [
            ("prompt_token_count",),
            ("candidates_token_count",),
            ("cached_content_token_count",),
            ("thoughts_token_count",),
            ("tool_use_prompt_token_count",),
        ],
    ),
    (
        normalize_bedrock,
        [
            ("inputTokens",),
            ("outputTokens",),
            ("cacheReadInputTokens",),
            ("cacheWriteInputTokens",),
        ],
    ),
]


def _payload(paths: list[tuple[str, ...]], values: list[Any], as_object: bool) -> Any:
    tree: dict[str, Any] = {}
    for path, value in zip(paths, values, strict=True):
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    if not as_object:
        return tree

    def objectify(node: Any) -> Any:
        if isinstance(node, dict):
            return SimpleNamespace(**{k: objectify(v) for k, v in node.items()})
        return node

    return objectify(tree)


@st.composite
def usage_cases(draw: st.DrawFn) -> tuple[Callable[[Any], Usage], list[Any], Any]:
    normalize, paths = draw(st.sampled_from(SHAPES))
    values = [draw(counts) for _ in paths]
    # the OpenAI chat shape is chosen by prompt_tokens being present
    if normalize is normalize_openai and values[0] is None:
        values[0] = 0
    return normalize, values, _payload(paths, values, draw(st.booleans()))


@SETTINGS
@given(usage_cases())
def test_usage_normalizer_never_raises_and_flags_bad_counts(
    case: tuple[Callable[[Any], Usage], list[Any], Any],
) -> None:
    normalize, values, payload = case
    usage = normalize(payload)
    buckets = list(token_values(usage).values())
    assert all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in buckets)
    assert buckets[-1] == sum(buckets[:-1])  # total_tokens is the sum of the buckets
    flagged = COUNT_FLAGS.intersection(usage.flags)
    assert bool(flagged) == any(_bad(v) for v in values), (values, usage.flags)
    # normalize_any on the same payload agrees or finds no counts, never raises
    assert normalize_any(payload) is None or isinstance(normalize_any(payload), Usage)


# -- body serializer -----------------------------------------------------------------

odd_text = st.one_of(
    st.text(), st.sampled_from(["\ud800", "a\udfffb", "\x00", "\ufeff", "\U0010ffff"])
)


@dataclasses.dataclass
class Point:
    x: Any
    y: Any


class NoRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
    st.binary(max_size=20),
    st.datetimes(),
    st.decimals(allow_nan=True),
    st.builds(object),
    st.builds(NoRepr),
)
json_ish = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.one_of(odd_text, st.integers(), st.booleans()), inner, max_size=4),
        st.builds(Point, inner, inner),
    ),
    max_leaves=20,
)


def _valid_json(data: bytes) -> Any:
    assert isinstance(data, bytes)
    data.decode("utf-8")  # strict: no lone surrogates, no invalid bytes
    return orjson.loads(data)


@SETTINGS
@given(json_ish)
def test_body_serializer_always_gives_utf8_json(value: Any) -> None:
    _valid_json(dumps_body(value))
    _valid_json(snapshot_request((value,), {"messages": value, "extra_headers": {"k": value}}))


def test_body_serializer_examples_that_need_a_fallback() -> None:
    deep: Any = []
    for _ in range(1000):
        deep = [deep]
    for value in (deep, {(1, 2): "tuple key"}, 2**80, decimal.Decimal("nan"), dt.date.today()):
        _valid_json(dumps_body(value))


# -- redactor ------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits


def _token(alphabet: str, size: int) -> st.SearchStrategy[str]:
    # a digit in every key: the surrounding text has none, so a key found in the output
    # can only be the key itself
    return st.text(alphabet=alphabet, min_size=size - 1, max_size=size - 1).map(
        lambda s: s[: len(s) // 2] + "7" + s[len(s) // 2 :]
    )


KEYS: dict[str, st.SearchStrategy[str]] = {
    "openai": _token(ALNUM, 48).map(lambda s: "sk-" + s),
    "openai_project": _token(ALNUM + "_-", 60).map(lambda s: "sk-proj-" + s),
    "anthropic": _token(ALNUM + "_-", 90).map(lambda s: "sk-ant-api03-" + s),
    "google": _token(ALNUM + "_-", 35).map(lambda s: "AIza" + s),
    "aws_id": _token(string.ascii_uppercase + string.digits, 16).map(lambda s: "AKIA" + s),
    "aws_temp": _token(string.ascii_uppercase + string.digits, 16).map(lambda s: "ASIA" + s),
    "github": _token(ALNUM, 36).map(lambda s: "ghp_" + s),
    "github_oauth": _token(ALNUM, 36).map(lambda s: "gho_" + s),
    "github_pat": _token(ALNUM + "_", 60).map(lambda s: "github_pat_" + s),
    "slack": _token(ALNUM + "-", 40).map(lambda s: "xoxb-" + s),
    "stripe": _token(ALNUM, 24).map(lambda s: "sk_live_" + s),
    "jwt": st.tuples(_token(ALNUM + "_-", 20), _token(ALNUM + "_-", 30), _token(ALNUM, 20)).map(
        lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"
    ),
}
# Secrets that are recognized by what stands before them: (context, the secret).
CONTEXTS: dict[str, Callable[[str], str]] = {
    "bearer": lambda v: f"Bearer {v}",
    "authorization": lambda v: f"Authorization: Basic {v}",
    "x-api-key": lambda v: f"x-api-key: {v}",
    "password_eq": lambda v: f"password={v}",
    "aws_secret": lambda v: f"aws_secret_access_key = {v}",
    "url": lambda v: f"postgresql://admin:{v}@db.internal:5432/app",
    "quoted": lambda v: f"'client_secret': '{v}'",
}
no_digits = st.text(
    alphabet=st.characters(exclude_characters="0123456789", exclude_categories=["Cs"]),
    max_size=40,
)
separators = st.sampled_from([" ", "\n", "\t", '"', "'", "(", ",", ": ", "=", "/"])


@st.composite
def secret_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(a text with one secret in it, the secret)."""
    if draw(st.booleans()):
        secret = draw(st.one_of(*KEYS.values()))
        embedded = secret
    else:
        secret = draw(_token(ALNUM + "+._~", 24))  # no "/": a URL password has none
        embedded = CONTEXTS[draw(st.sampled_from(sorted(CONTEXTS)))](secret)
    before = draw(no_digits) + draw(separators)
    after = draw(separators) + draw(no_digits)
    return before + embedded + after, secret


@SETTINGS
@given(secret_texts())
def test_redactor_removes_every_kind_of_key_from_text(case: tuple[str, str]) -> None:
    text, secret = case
    out = redact_text(text)
    assert secret not in out
    assert redact_text(out) == out  # idempotent


@SETTINGS
@given(secret_texts(), json_ish)
def test_redactor_removes_keys_from_json_and_keeps_it_json(
    case: tuple[str, str], noise: Any
) -> None:
    text, secret = case
    envelope = orjson.dumps(
        {
            "request": {
                "messages": [{"role": "user", "content": text}],
                "n": orjson.loads(dumps_body(noise)),
            },
            "headers": {"Authorization": f"Bearer {secret}", "password": secret},
            "tool": {"arguments": orjson.dumps({"api_key": secret, "note": text}).decode()},
        },
        default=lambda _: "<object>",
        option=orjson.OPT_NON_STR_KEYS,
    )
    out = redact_bytes(envelope)
    assert secret.encode() not in out
    parsed = _valid_json(out)
    assert isinstance(parsed["request"]["messages"][0]["content"], str)
    assert redact_bytes(out) == out  # idempotent


@SETTINGS
@given(json_ish)
def test_redactor_keeps_any_json_valid(value: Any) -> None:
    data = dumps_body(value)
    out = redact_bytes(data)
    _valid_json(out)
    assert redact_bytes(out) == out
