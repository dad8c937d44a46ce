"""Real ``openai`` / ``anthropic`` clients, async and sync, wired to a :class:`FakeProvider`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2

from .keys import remember_key
from .provider import FakeProvider

if TYPE_CHECKING:
    from anthropic import Anthropic, AsyncAnthropic
    from openai import AsyncOpenAI, OpenAI

OPENAI_BASE_URL = "http://openai.fake/v1"
AZURE_ENDPOINT = "http://azure-openai.fake"
AZURE_API_VERSION = "2024-10-21"
ANTHROPIC_BASE_URL = "http://anthropic.fake"
DEFAULT_OPENAI_KEY = "sk-fake-openai-key"
DEFAULT_ANTHROPIC_KEY = "sk-ant-fake-key"


def _openai(
    sync: bool, provider: FakeProvider | None, api_key: str, azure: bool, kwargs: dict[str, Any]
) -> Any:
    """The openai client class for ``sync`` and ``azure``, wired to ``provider``."""
    import openai

    remember_key(api_key)
    provider = provider or FakeProvider()
    kind: Any
    if sync:
        kwargs["http_client"] = httpx2.Client(transport=provider.sync_transport)
        kind = openai.AzureOpenAI if azure else openai.OpenAI
    else:
        kwargs["http_client"] = httpx2.AsyncClient(transport=provider.transport)
        kind = openai.AsyncAzureOpenAI if azure else openai.AsyncOpenAI
    if azure:
        kwargs.setdefault("azure_endpoint", AZURE_ENDPOINT)
        kwargs.setdefault("api_version", AZURE_API_VERSION)
    else:
        kwargs.setdefault("base_url", OPENAI_BASE_URL)
    return kind(api_key=api_key, **kwargs)


def _anthropic(
    sync: bool, provider: FakeProvider | None, api_key: str, kwargs: dict[str, Any]
) -> Any:
    import anthropic

    remember_key(api_key)
    provider = provider or FakeProvider()
    kwargs.setdefault("base_url", ANTHROPIC_BASE_URL)
    if sync:
        http: Any = httpx2.Client(transport=provider.sync_transport)
        return anthropic.Anthropic(api_key=api_key, http_client=http, **kwargs)
    http = httpx2.AsyncClient(transport=provider.transport)
    return anthropic.AsyncAnthropic(api_key=api_key, http_client=http, **kwargs)


def fake_openai_client(
    provider: FakeProvider | None = None,
    *,
    api_key: str = DEFAULT_OPENAI_KEY,
    max_retries: int = 0,
    azure: bool = False,
    **kwargs: Any,
) -> AsyncOpenAI:
    """A real ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``) wired to `provider`."""
    client: AsyncOpenAI = _openai(
        False, provider, api_key, azure, {"max_retries": max_retries, **kwargs}
    )
    return client


def fake_anthropic_client(
    provider: FakeProvider | None = None,
    *,
    api_key: str = DEFAULT_ANTHROPIC_KEY,
    max_retries: int = 0,
    **kwargs: Any,
) -> AsyncAnthropic:
    """A real ``anthropic.AsyncAnthropic`` wired to `provider`."""
    client: AsyncAnthropic = _anthropic(
        False, provider, api_key, {"max_retries": max_retries, **kwargs}
    )
    return client


def fake_sync_openai_client(
    provider: FakeProvider | None = None,
    *,
    api_key: str = DEFAULT_OPENAI_KEY,
    max_retries: int = 0,
    azure: bool = False,
    **kwargs: Any,
) -> OpenAI:
    """A real sync ``openai.OpenAI`` (or ``AzureOpenAI``) wired to `provider`."""
    client: OpenAI = _openai(True, provider, api_key, azure, {"max_retries": max_retries, **kwargs})
    return client


def fake_sync_anthropic_client(
    provider: FakeProvider | None = None,
    *,
    api_key: str = DEFAULT_ANTHROPIC_KEY,
    max_retries: int = 0,
    **kwargs: Any,
) -> Anthropic:
    """A real sync ``anthropic.Anthropic`` wired to `provider`."""
    client: Anthropic = _anthropic(True, provider, api_key, {"max_retries": max_retries, **kwargs})
    return client
