"""Real cloud-hosted clients pointed at a :class:`~majordomo_log.testing.cloud.FakeCloud`:
boto3 and aioboto3 ``bedrock-runtime``, ``anthropic.(Async)AnthropicBedrock`` and
``anthropic.(Async)AnthropicVertex``, with test credentials that are counted among
``used_api_keys()`` so that a suite can scan its stores and logs for them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .keys import remember_key

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from .cloud import FakeCloud

# Shaped like real ones (AKIA + 16, 40 characters): the scrubbers must not rely on a
# format a real key would not have.
TEST_AWS_ACCESS_KEY_ID = "AKIAMAJORDOMOTEST001"
TEST_AWS_SECRET_ACCESS_KEY = "mdlTestSecretAccessKey/0123456789+abcdef"
TEST_AWS_REGION = "us-east-1"
TEST_VERTEX_ACCESS_TOKEN = "ya29.majordomo-fake-vertex-access-token"
TEST_VERTEX_PROJECT = "majordomo-test-project"


def _remember_aws() -> None:
    remember_key(TEST_AWS_ACCESS_KEY_ID)
    remember_key(TEST_AWS_SECRET_ACCESS_KEY)


def _boto_config(max_attempts: int) -> Any:
    from botocore.config import Config

    return Config(retries={"total_max_attempts": max_attempts, "mode": "standard"})


def bedrock_client(cloud: FakeCloud, *, max_attempts: int = 1, **kwargs: Any) -> Any:
    """A boto3 ``bedrock-runtime`` client (sync) sending to ``cloud``."""
    import boto3

    _remember_aws()
    kwargs.setdefault("config", _boto_config(max_attempts))
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=cloud.url,
        region_name=TEST_AWS_REGION,
        aws_access_key_id=TEST_AWS_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_AWS_SECRET_ACCESS_KEY,
        **kwargs,
    )


def async_bedrock_client(
    cloud: FakeCloud, *, max_attempts: int = 1, **kwargs: Any
) -> AbstractAsyncContextManager[Any]:
    """An aioboto3 ``bedrock-runtime`` client: ``async with async_bedrock_client(cloud) as c``."""
    import aioboto3

    _remember_aws()
    kwargs.setdefault("config", _boto_config(max_attempts))
    client: AbstractAsyncContextManager[Any] = aioboto3.Session().client(
        "bedrock-runtime",
        endpoint_url=cloud.url,
        region_name=TEST_AWS_REGION,
        aws_access_key_id=TEST_AWS_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_AWS_SECRET_ACCESS_KEY,
        **kwargs,
    )
    return client


def anthropic_bedrock_client(cloud: FakeCloud, *, sync: bool = False, **kwargs: Any) -> Any:
    """``anthropic.AsyncAnthropicBedrock`` (``AnthropicBedrock`` with ``sync=True``)."""
    import anthropic

    _remember_aws()
    cls = anthropic.AnthropicBedrock if sync else anthropic.AsyncAnthropicBedrock
    kwargs.setdefault("max_retries", 0)
    return cls(
        aws_access_key=TEST_AWS_ACCESS_KEY_ID,
        aws_secret_key=TEST_AWS_SECRET_ACCESS_KEY,
        aws_region=TEST_AWS_REGION,
        base_url=cloud.url,
        **kwargs,
    )


def anthropic_vertex_client(cloud: FakeCloud, *, sync: bool = False, **kwargs: Any) -> Any:
    """``anthropic.AsyncAnthropicVertex`` (``AnthropicVertex`` with ``sync=True``), given an
    access token so that google-auth is never asked for credentials."""
    import anthropic

    remember_key(TEST_VERTEX_ACCESS_TOKEN)
    cls = anthropic.AnthropicVertex if sync else anthropic.AsyncAnthropicVertex
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("region", "us-east5")
    return cls(
        project_id=TEST_VERTEX_PROJECT,
        access_token=TEST_VERTEX_ACCESS_TOKEN,
        base_url=cloud.url + "/v1",
        **kwargs,
    )
