"""Provider-shaped HTTP pieces for ``majordomo_log.testing``: the usage knobs' types,
recorded requests, SSE events, and the providers' error bodies and headers."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx2

JSON = dict[str, Any]


class OpenAIUsage(TypedDict, total=False):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    audio_tokens: int  # prompt_tokens_details.audio_tokens (part of prompt_tokens)
    completion_audio_tokens: int  # completion_tokens_details.audio_tokens


class ResponsesUsage(TypedDict, total=False):
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int


class AnthropicUsage(TypedDict, total=False):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int
    service_tier: str  # "standard" when not given
    speed: str  # "fast" for fast mode; left out when not given
    web_search_requests: int  # usage.server_tool_use; left out when not given


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None if the body was empty / not JSON
    query: dict[str, str]


@dataclass(frozen=True)
class Failure:
    """An error answer queued by ``FakeProvider.fail_next()``."""

    status: int
    message: str | None
    retry_after_ms: int | None


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event of a streamed reply."""

    name: str | None  # the SSE `event:` field; OpenAI chat streams have none
    data: JSON | str
    is_content: bool = False  # content events are the ones paced by the delay knobs


def typed_event(name: str, is_content: bool = False, **data: Any) -> SseEvent:
    """A Responses / Anthropic SSE event, whose payload repeats its name as `type`."""
    return SseEvent(name, {"type": name, **data}, is_content)


# status -> (OpenAI error type, OpenAI error code, Anthropic error type, message)
_ERRORS: dict[int, tuple[str, str | None, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "Invalid API key."),
    403: ("permission_error", None, "permission_error", "Permission denied."),
    404: ("invalid_request_error", None, "not_found_error", "Not found."),
    413: ("invalid_request_error", None, "request_too_large", "Request too large."),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "Rate limit reached."),
    500: ("server_error", None, "api_error", "The server had an error processing your request."),
    503: ("server_error", None, "api_error", "The service is temporarily unavailable."),
    529: ("server_error", None, "overloaded_error", "Overloaded"),
}

# /v1/x, /openai/x, /openai/v1/x and /openai/deployments/{name}/x all serve endpoint /x.
ENDPOINT_PATH = re.compile(r"^(?:/v1|/openai(?:/v1)?|/openai/deployments/[^/]+)(/[a-z/]+)$")


def random_id(prefix: str, nbytes: int = 12) -> str:
    return prefix + secrets.token_hex(nbytes)


def split_text(text: str, n: int) -> list[str]:
    """Split text into at most n non-empty, roughly equal pieces."""
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    pieces, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def openai_headers() -> dict[str, str]:
    return {
        "x-request-id": random_id("req_", 16),
        "openai-version": "2020-10-01",
        "openai-processing-ms": "42",
        "openai-organization": "fake-org",
    }


def anthropic_headers() -> dict[str, str]:
    return {"request-id": random_id("req_011C", 12), "anthropic-organization-id": "fake-org"}


def error_response(
    status: int, anthropic: bool, message: str | None = None, retry_after_ms: int | None = None
) -> httpx2.Response:
    openai_type, code, anthropic_type, default_message = _ERRORS.get(
        status, ("server_error", None, "api_error", "Error.")
    )
    text = message or default_message
    if anthropic:
        headers = anthropic_headers()
        payload: JSON = {
            "type": "error",
            "error": {"type": anthropic_type, "message": text},
            "request_id": headers["request-id"],
        }
    else:
        headers = openai_headers()
        payload = {"error": {"message": text, "type": openai_type, "param": None, "code": code}}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return httpx2.Response(status, json=payload, headers=headers)
