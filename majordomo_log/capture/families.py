"""The SDKs beyond OpenAI's and Anthropic's whose calls are known: Google's
``google-genai`` (Gemini), Mistral's ``mistralai``, LiteLLM (the ``litellm`` module
itself is the client), botocore's and aiobotocore's clients (AWS Bedrock Runtime), and
anthropic's clients for the clouds (``AnthropicBedrock``, ``AnthropicVertex``).

A ``Family`` says which of an SDK's methods are LLM calls (logged even when they fail,
and their ``operation``), which of them always return a stream, which provider a call
is for, where the client keeps its API key (or, for a cloud's clients, the credentials
that stand for it: ``capture/cloud.py``) and how a call names its model. The methods are
looked up by the end of their path, so ``client.models.generate_content`` and
``client.aio.models.generate_content`` are one method (a botocore client's methods are
its own: the wrapper never walks into its ``meta`` or ``exceptions``). Everything here
runs on the caller's path (a few dict lookups and attribute reads, each guarded: an SDK
that changes its internals costs the log a detail, never the caller's call).

``operation`` for these SDKs is the method's name, the way REFERENCE §5 names other
clients' calls, with its sync/async/stream variants folded into one (the ``stream``
column tells them apart) and, where the bare name says too little, the resource in
front (Mistral's ``chat.complete`` and ``fim.complete``; its ``embeddings.create`` is
``embeddings``, as OpenAI's is). Bedrock's keep botocore's method names
(``converse``, ``converse_stream``, ``invoke_model``,
``invoke_model_with_response_stream``): its two streaming methods are other API calls
than the plain ones, not variants of them.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..record.serialize import REDACTED
from .cloud import (
    CredentialValues,
    anthropic_bedrock_values,
    botocore_values,
    cloud_provider,
    error_request_id,
    is_botocore_client,
    vertex_values,
)
from .resolve import top_package

if TYPE_CHECKING:
    from ..record.call import CallRecord


class Method(NamedTuple):
    """A known method: its ``operation``, and whether it returns a stream whatever its
    arguments (Gemini's ``generate_content_stream``, Mistral's ``chat.stream``)."""

    operation: str
    streams: bool = False


class Family:
    """What the wrapper needs to know about one SDK (see the module docstring)."""

    __slots__ = (
        "api_key",
        "asks_stream_usage",
        "botocore",
        "credentials",
        "error_provider",
        "error_request_id",
        "keys_per_call",
        "methods",
        "model_name",
        "name",
        "on_result",
        "provider",
        "sizes",
    )

    def __init__(
        self,
        name: str,
        methods: Mapping[tuple[str, ...], Method],
        *,
        provider: Callable[[Any], str],
        api_key: Callable[[Any], Any] = lambda client: None,  # no key of its own
        credentials: CredentialValues | None = None,
        botocore: bool = False,
        model_name: Callable[[Any], Any] | None = None,
        keys_per_call: bool = False,
        asks_stream_usage: frozenset[str] = frozenset(),
        on_result: Callable[[CallRecord, Any], None] | None = None,
        error_provider: Callable[[BaseException], str | None] | None = None,
        error_request_id: Callable[[BaseException], str | None] | None = None,
    ) -> None:
        self.name = name
        self.methods = dict(methods)
        self.sizes = tuple(sorted({len(path) for path in methods}, reverse=True))
        self.provider = provider  # the `provider` column, from the client
        self.api_key = api_key  # the client's API key, or None
        # A cloud's client: its credentials stand for the key (capture/cloud.py)
        self.credentials = credentials
        # botocore's clients: their known methods return plain dicts and are logged by
        # capture/bedrock.py; their other methods and attributes are handed back untouched
        self.botocore = botocore
        self.model_name = model_name  # the `model` column from the `model=` argument
        self.keys_per_call = keys_per_call  # an `api_key=` argument may come with a call
        self.asks_stream_usage = asks_stream_usage  # operations whose streams ask for usage
        self.on_result = on_result  # reads what only the live result has (caller's path)
        self.error_provider = error_provider  # the provider a failed call was for
        # the provider's request id of a failure whose exception has no `request_id`
        self.error_request_id = error_request_id

    def method(self, path: tuple[str, ...]) -> Method | None:
        for size in self.sizes:
            method = self.methods.get(path[-size:])
            if method is not None:
                return method
        return None

    def __repr__(self) -> str:
        return f"<Family {self.name}>"


def _attr_path(obj: Any, *names: str) -> Any:
    """``obj.a.b`` or None, whatever goes wrong on the way (SDK internals move)."""
    try:
        for name in names:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
    except Exception:
        return None
    return obj


# -- Google: google-genai (Gemini API and Vertex AI) -----------------------------------------

_GENAI_METHODS: dict[tuple[str, ...], Method] = {
    ("models", "generate_content"): Method("generate_content"),
    ("models", "generate_content_stream"): Method("generate_content", streams=True),
    ("models", "embed_content"): Method("embed_content"),
}


def _genai_provider(client: Any) -> str:
    # Google Cloud bills Vertex AI: `vertex`, as AnthropicVertex's rows say
    return "vertex" if _attr_path(client, "_api_client", "vertexai") is True else "google"


def _genai_key(client: Any) -> Any:
    # The client keeps it on its private API client only (Vertex AI authenticates with
    # Google credentials instead: no key).
    return _attr_path(client, "_api_client", "api_key")


def gemini_model_name(model: Any) -> Any:
    """The model id of a google-genai ``model=``: ``models/gemini-2.5-flash`` and Vertex AI's
    ``projects/p/locations/l/publishers/google/models/gemini-2.5-flash`` are
    ``gemini-2.5-flash``; anything else (``tunedModels/123``, ``google/gemini-...``) as is."""
    if type(model) is str and "models/" in model:
        head, _, tail = model.rpartition("models/")
        if tail and (not head or head.endswith("/")):
            return tail
    return model


GOOGLE_GENAI = Family(
    "google-genai",
    _GENAI_METHODS,
    provider=_genai_provider,
    api_key=_genai_key,
    model_name=gemini_model_name,
)


# -- Mistral: mistralai --------------------------------------------------------------------


def _mistral_methods() -> dict[tuple[str, ...], Method]:
    methods: dict[tuple[str, ...], Method] = {}
    for resource, operation in (("chat", "chat.complete"), ("fim", "fim.complete")):
        for name in ("complete", "complete_async"):
            methods[(resource, name)] = Method(operation)
        for name in ("stream", "stream_async"):
            methods[(resource, name)] = Method(operation, streams=True)
    for name in ("complete", "complete_async"):
        methods[("agents", name)] = Method("agents.complete")
    for name in ("stream", "stream_async"):
        methods[("agents", name)] = Method("agents.complete", streams=True)
    # Structured output: the SDK's own helpers around complete() and stream().
    for name in ("parse", "parse_async"):
        methods[("chat", name)] = Method("chat.complete")
    for name in ("parse_stream", "parse_stream_async"):
        methods[("chat", name)] = Method("chat.complete", streams=True)
    for name in ("create", "create_async"):
        methods[("embeddings", name)] = Method("embeddings")
    return methods


def _mistral_provider(client: Any) -> str:
    module = type(client).__module__
    if module.startswith("mistralai.azure"):
        return "azure"
    if module.startswith("mistralai.gcp"):
        return "vertex"
    return "mistral"


def _mistral_key(client: Any) -> Any:
    security = _attr_path(client, "sdk_configuration", "security")
    if security is None or callable(security):  # a key provider: not called from here
        return None
    return _attr_path(security, "api_key")


MISTRAL = Family("mistral", _mistral_methods(), provider=_mistral_provider, api_key=_mistral_key)


# -- LiteLLM: the module is the client ------------------------------------------------------

_LITELLM_METHODS: dict[tuple[str, ...], Method] = {
    ("completion",): Method("completion"),
    ("acompletion",): Method("completion"),
    ("text_completion",): Method("text_completion"),
    ("atext_completion",): Method("text_completion"),
    ("embedding",): Method("embedding"),
    ("aembedding",): Method("embedding"),
    ("responses",): Method("responses"),
    ("aresponses",): Method("responses"),
}


def _litellm_result(record: CallRecord, result: Any) -> None:
    """The provider LiteLLM routed the call to, and the provider's request id: only the
    live response has them (``_hidden_params`` does not survive its JSON), so they are
    read here, on the caller's path (two dict lookups)."""
    hidden = _attr_path(result, "_hidden_params")
    if not isinstance(hidden, dict):
        hidden = {}
    provider = hidden.get("custom_llm_provider")
    if provider is None:  # a stream: CustomStreamWrapper knows it
        provider = _attr_path(result, "custom_llm_provider")
    if provider is None:  # some providers' responses only name LiteLLM's "provider/model"
        name = hidden.get("litellm_model_name")
        provider = name.partition("/")[0] if isinstance(name, str) and "/" in name else None
    if isinstance(provider, str) and provider:
        record.provider = provider
    headers = hidden.get("additional_headers")
    if isinstance(headers, dict) and record.provider_request_id is None:
        # the provider's headers, prefixed: OpenAI's x-request-id, Anthropic's request-id
        request_id = headers.get("llm_provider-x-request-id") or headers.get(
            "llm_provider-request-id"
        )
        if type(request_id) is str:
            record.provider_request_id = request_id


def _litellm_error_provider(exc: BaseException) -> str | None:
    provider = getattr(exc, "llm_provider", None)  # every litellm.exceptions class has it
    return provider if isinstance(provider, str) and provider else None


LITELLM = Family(
    "litellm",
    _LITELLM_METHODS,
    provider=lambda client: "litellm",  # until a call says which provider it went to
    api_key=lambda client: getattr(client, "api_key", None),
    keys_per_call=True,
    # LiteLLM passes stream_options on to every provider (or computes the usage itself).
    asks_stream_usage=frozenset({"completion"}),
    on_result=_litellm_result,
    error_provider=_litellm_error_provider,
)


# -- the clouds: AWS Bedrock Runtime (botocore, aiobotocore), AnthropicBedrock/Vertex -------

# Methods of the client itself (``llm.converse``): botocore makes a client's class per service
# at run time, with every operation a method of its own.
_BEDROCK_METHODS: dict[tuple[str, ...], Method] = {
    ("converse",): Method("converse"),
    ("converse_stream",): Method("converse_stream", streams=True),
    ("invoke_model",): Method("invoke_model"),
    ("invoke_model_with_response_stream",): Method(
        "invoke_model_with_response_stream", streams=True
    ),
}

BOTOCORE = Family(
    "botocore",
    _BEDROCK_METHODS,
    # bedrock for Bedrock's services; another service's client logs nothing of its own
    provider=lambda client: cloud_provider(client) or top_package(type(client)),
    credentials=botocore_values,
    botocore=True,
    error_request_id=error_request_id,  # a ClientError's response: AWS's request id
)
# anthropic's clients for the clouds: Anthropic's methods (capture/methods.py's tables), the
# cloud's provider and credentials.
ANTHROPIC_BEDROCK = Family(
    "anthropic-bedrock",
    {},
    provider=lambda client: "bedrock",
    credentials=anthropic_bedrock_values,
)
ANTHROPIC_VERTEX = Family(
    "anthropic-vertex", {}, provider=lambda client: "vertex", credentials=vertex_values
)


# -- which family a client is --------------------------------------------------------------


def _client_api_key(client: Any) -> Any:
    return getattr(client, "api_key", None) or getattr(client, "auth_token", None)


# Everything else: OpenAI's and Anthropic's SDKs (capture/methods.py's tables), any other
# client. Its key is where those SDKs keep it; it knows no method of its own.
OTHER = Family("other", {}, provider=lambda client: "", api_key=_client_api_key)

_BY_PACKAGE = {"google.genai": GOOGLE_GENAI, "mistralai": MISTRAL}


def family_of(client: Any) -> Family:
    """The family of a client (or of a subclass of an SDK's client); ``OTHER`` if none."""
    if isinstance(client, types.ModuleType):
        return LITELLM if client.__name__ == "litellm" else OTHER
    if is_botocore_client(client):
        return BOTOCORE
    cloud = cloud_provider(client)  # anthropic's Bedrock and Vertex clients
    if cloud is not None:
        return ANTHROPIC_BEDROCK if cloud == "bedrock" else ANTHROPIC_VERTEX
    for cls in type(client).__mro__:
        module = cls.__module__
        for package, family in _BY_PACKAGE.items():
            if module == package or module.startswith(package + "."):
                return family
    return OTHER


class CallKeys:
    """Hashes of the API keys passed with calls (LiteLLM's ``api_key=``), remembered by the
    key's fingerprint, never the key: a few keys used in turn are each hashed once."""

    __slots__ = ("_hash_key", "_hashes")

    def __init__(self, hash_key: Callable[[object], str | None]) -> None:
        self._hash_key = hash_key
        self._hashes: dict[int, tuple[str | None]] = {}

    def hash(self, key: object) -> str | None:
        seen = hash(key) if isinstance(key, str) else id(key)
        cached = self._hashes.get(seen)
        if cached is None:
            if len(self._hashes) >= 64:  # keys made per request must not grow it
                self._hashes.clear()
            cached = self._hashes[seen] = (self._hash_key(key),)
        return cached[0]


def hide_call_keys(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The arguments as stored: an ``api_key=`` passed with the call is not kept, not even
    in the queued snapshot (the row has its hash)."""
    if "api_key" not in kwargs:
        return kwargs
    return {**kwargs, "api_key": REDACTED}
