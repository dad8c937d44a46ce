"""Clients whose calls run in a cloud: which provider their rows name, and which of their
credentials stand for "the API key".

Provider: AWS bills the calls of botocore's and aiobotocore's ``bedrock-runtime`` clients
and of anthropic's ``AnthropicBedrock``, so their rows say ``bedrock`` and are priced at
Bedrock's rates (``record/call.py`` prices them by the requested model id, which names the
inference profile AWS bills); Google Cloud bills anthropic's ``AnthropicVertex``:
``vertex``.

Which client is which is ``capture/families.py``'s to say (a family each: botocore's
clients, AnthropicBedrock, AnthropicVertex), with this module's reader of its credentials.

Credentials: these clients have no ``api_key``. AWS signs every request with a secret
key (SigV4), possibly with a session token; a Bedrock API key is a bearer token; Vertex
sends a short-lived OAuth access token. The AWS access key id (or the bearer token) is
what spend is grouped by, hashed like an API key and never stored; every one of those
values, the key id included, is scrubbed from bodies and error messages like an API key.
An AWS error can name the key id ("The security token included in the request is
invalid", "... access key AKIA... does not exist").

botocore keeps its credentials on the client's request signer (``_request_signer``, not a
public name: read defensively, any surprise means "no key"). Their instance attributes are
read, not their properties: a refreshable credential's property refreshes it, which may
call STS, and that must not happen on the caller's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .resolve import top_package

# (the value whose hash groups spend, or None; every value to scrub from what is stored)
Credential = tuple[str | None, tuple[str, ...]]
CredentialReader = Callable[[Any], Credential]
# A client's raw credential values: the key whose hash groups spend first (None: no key),
# then every value to scrub.
CredentialValues = Callable[[Any], tuple[Any, ...]]

NO_CREDENTIAL: Credential = (None, ())
BOTOCORE_PACKAGES = frozenset({"botocore", "aiobotocore"})
_BEDROCK_SERVICES = frozenset({"bedrock-runtime", "bedrock-agent-runtime", "bedrock"})


def is_botocore_client(client: Any) -> bool:
    """A botocore client (boto3's, or aiobotocore's), by its base class: the client class
    itself is made at run time for each service."""
    return any(
        c.__name__ == "BaseClient" and top_package(c) == "botocore" for c in type(client).__mro__
    )


def cloud_provider(client: Any) -> str | None:
    """``bedrock`` or ``vertex`` for the clients of this module, else None."""
    if is_botocore_client(client):
        try:
            service = client.meta.service_model.service_name
        except Exception:  # a stub or a broken client: not ours to name
            return None
        return "bedrock" if service in _BEDROCK_SERVICES else None
    for cls in type(client).__mro__:
        if top_package(cls) == "anthropic":
            name = cls.__name__.lower()
            if "bedrock" in name:
                return "bedrock"
            if "vertex" in name:
                return "vertex"
    return None


class CachedCredentials:
    """Reads a client's credentials on each call through ``read`` (a family's
    ``credentials``: ``capture/families.py``), handing back its last credential while the
    raw values are the same objects (a few identity checks per call), so the wrapper can
    tell a rotation by identity. The values and the credential made of them are one
    attribute: threads calling at once never pair one key with another's hash. One per
    wrapper: a reader shared by two clients would take turns forgetting each's."""

    __slots__ = ("_last", "_read")

    def __init__(self, read: CredentialValues) -> None:
        self._read = read
        self._last: tuple[tuple[Any, ...], Credential] = ((), NO_CREDENTIAL)

    def __call__(self, client: Any) -> Credential:
        try:
            values = self._read(client)
        except Exception:  # a client we cannot read is a client with no key
            return NO_CREDENTIAL
        last_values, last = self._last
        if len(values) == len(last_values) and all(
            a is b for a, b in zip(values, last_values, strict=True)
        ):
            return last
        key = values[0] if isinstance(values[0], str) and values[0] else None
        secrets = tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v))
        credential: Credential = (key, secrets)
        self._last = (values, credential)
        return credential


# A client's credential values (``CredentialValues``), for its family.


def botocore_values(client: Any) -> tuple[Any, ...]:
    """The Bedrock API key (bearer token) or else the access key id; then the access key
    id, secret key and session token of a botocore client."""
    signer = client._request_signer
    fields = getattr(signer._credentials, "__dict__", None) or {}
    bearer = _bearer(signer._auth_token)
    key_id = fields.get("access_key", fields.get("_access_key"))
    return (
        bearer or key_id,
        key_id,
        fields.get("secret_key", fields.get("_secret_key")),
        fields.get("token", fields.get("_token")),
    )


def _bearer(token: Any) -> Any:
    """A Bedrock API key: botocore's frozen token (a named tuple), or the frozen token a
    refreshing one holds."""
    if token is None:
        return None
    if isinstance(token, tuple):
        return getattr(token, "token", None)
    frozen = (getattr(token, "__dict__", None) or {}).get("_frozen_token")
    return getattr(frozen, "token", None)


def anthropic_bedrock_values(client: Any) -> tuple[Any, ...]:
    """AnthropicBedrock's Bedrock API key or else access key id; then the access key id,
    secret key and session token. Without explicit keys it signs with boto3's default
    credentials, found per request: no key to read here."""
    fields = client.__dict__
    key_id = fields.get("aws_access_key")
    return (
        fields.get("api_key") or key_id,
        key_id,
        fields.get("aws_secret_key"),
        fields.get("aws_session_token"),
    )


def vertex_values(client: Any) -> tuple[Any, ...]:
    """AnthropicVertex's OAuth access token: an hour's bearer token is no key to group
    spend by (hashing it would make a new "key" every hour), so it is only scrubbed."""
    return (None, client.__dict__.get("access_token"))


def request_id_of(result: Any) -> str | None:
    """AWS's request id (``x-amzn-RequestId``) of a botocore result or of a
    ``ClientError``'s ``response``: what AWS support asks for."""
    try:
        value = result["ResponseMetadata"]["RequestId"]
    except Exception:
        return None
    return value if type(value) is str else None


def error_request_id(exc: BaseException) -> str | None:
    """The request id of a botocore ``ClientError`` (its ``response`` dict), or None."""
    try:
        response = exc.response  # type: ignore[attr-defined]
    except Exception:
        return None
    return request_id_of(response) if type(response) is dict else None
