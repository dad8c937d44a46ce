"""API-key hashing: group spend by key without ever storing the key.

The hash is HMAC-SHA256(secret, key), hex. It depends on the key and the secret
only, so one key gives one hash across processes and machines that share the
secret. Set ``MAJORDOMO_LOG_KEY_SECRET`` (or pass ``key_hash_secret=``) so that
someone holding a candidate key and the public default cannot confirm it
against your log; without it the documented default secret is used.
"""

from __future__ import annotations

import hashlib
import hmac
import os

KEY_SECRET_ENV_VAR = "MAJORDOMO_LOG_KEY_SECRET"
DEFAULT_KEY_SECRET = "majordomo-log-default-key-secret-v1"


def resolve_key_secret(explicit: str | bytes | None = None) -> bytes:
    secret = explicit if explicit is not None else os.environ.get(KEY_SECRET_ENV_VAR)
    if not secret:
        secret = DEFAULT_KEY_SECRET
    return secret.encode() if isinstance(secret, str) else secret


def hash_api_key(api_key: str, secret: bytes) -> str:
    return hmac.new(secret, api_key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
