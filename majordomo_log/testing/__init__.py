"""In-process fake of the OpenAI and Anthropic HTTP APIs, for tests.

``FakeProvider`` is an httpx2 transport that answers like the real providers, so the
real ``openai`` / ``anthropic`` clients, async and sync (request building, retries, SSE parsing)
run end to end with no network and no key::

    provider = FakeProvider(openai_usage={"prompt_tokens": 100, "completion_tokens": 20})
    client = fake_openai_client(provider)
    await client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    assert provider.requests[-1].path == "/v1/chat/completions"

Served: ``POST /v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings`` (also under
Azure's ``/openai/...`` and ``/openai/deployments/{name}/...`` paths) and
``POST /v1/messages``. Anything else is a provider-shaped 404.

The pieces: ``testing/provider.py`` (the transport), ``testing/clients.py`` (the SDK
clients wired to it), ``testing/wire.py`` (response shapes, SSE events, errors) and
``testing/keys.py`` (the API keys the fakes have seen).

Not in a core install: ``pip install "majordomo-log[testing]"`` brings httpx2 and the
SDKs the fake clients build (openai 3+, anthropic 1+, both on httpx2).
"""

from __future__ import annotations

try:
    import httpx2  # noqa: F401  (the transport every fake here is)
except ImportError as exc:
    raise ImportError(
        "majordomo_log.testing needs httpx2 and the openai / anthropic SDKs, which a core "
        'install leaves out: pip install "majordomo-log[testing]"'
    ) from exc

from .clients import ANTHROPIC_BASE_URL as ANTHROPIC_BASE_URL
from .clients import AZURE_API_VERSION as AZURE_API_VERSION
from .clients import AZURE_ENDPOINT as AZURE_ENDPOINT
from .clients import DEFAULT_ANTHROPIC_KEY as DEFAULT_ANTHROPIC_KEY
from .clients import DEFAULT_OPENAI_KEY as DEFAULT_OPENAI_KEY
from .clients import OPENAI_BASE_URL as OPENAI_BASE_URL
from .clients import (
    fake_anthropic_client,
    fake_openai_client,
    fake_sync_anthropic_client,
    fake_sync_openai_client,
)
from .keys import used_api_keys
from .provider import DEFAULT_REPLY as DEFAULT_REPLY
from .provider import FakeProvider
from .wire import JSON as JSON
from .wire import AnthropicUsage, OpenAIUsage, ReceivedRequest, ResponsesUsage

__all__ = [
    "AnthropicUsage",
    "FakeProvider",
    "OpenAIUsage",
    "ReceivedRequest",
    "ResponsesUsage",
    "fake_anthropic_client",
    "fake_openai_client",
    "fake_sync_anthropic_client",
    "fake_sync_openai_client",
    "used_api_keys",
]
