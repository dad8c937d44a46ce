"""The API keys the fakes have seen in this process, so that a test suite can check
none of them reached its stores or logs."""

from __future__ import annotations

from collections.abc import Mapping

# The headers the SDKs put a key in: OpenAI and Anthropic 2.x send a bearer token,
# Azure ``api-key``, older Anthropic SDKs ``x-api-key``, google-genai ``x-goog-api-key``.
KEY_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")

# Every key a fake client was made with or a FakeProvider was sent, in this process.
_used_keys: set[str] = set()


def used_api_keys() -> frozenset[str]:
    """Every API key given to :func:`fake_openai_client` / :func:`fake_anthropic_client`
    or sent to a :class:`FakeProvider` (also keys set later, e.g. by ``with_options``) in
    this process, so that a test suite can scan its stores and logs for them."""
    return frozenset(_used_keys)


def remember_key(key: str) -> None:
    """Count ``key`` among :func:`used_api_keys`."""
    _used_keys.add(key)


def remember_sent_keys(headers: Mapping[str, str]) -> None:
    """Count every key a request's headers carry among :func:`used_api_keys`."""
    for header in KEY_HEADERS:
        value = headers.get(header, "")
        key = value[7:] if value[:7].lower() == "bearer " else value
        if key.strip():
            _used_keys.add(key.strip())
