"""Which key a call is billed to, as a mixin of ``ClientWrapper`` (``capture/wrapper.py``):
the ``api_key_hash`` a record is built with (``_new_record`` asks ``_api_key_hash()`` on
every call) and the secrets scrubbed from what is stored.

The key is read from the client on every call, since a client's key may change under
it (rotation, a refreshing key provider): where OpenAI's and Anthropic's SDKs keep it
(read inline, no function call), where the client's family says
(``capture/families.py``), or, for a cloud's clients, the credentials that stand for it
(``capture/cloud.py``). A key is hashed once (``capture/keys.py``) and remembered by its
fingerprint, never the key itself; the hashes of keys passed with a call (LiteLLM's
``api_key=``) are kept by ``families.CallKeys``.

A mixin of one object: it reads and sets the wrapper's own private key state, declared
below; ``ClientWrapper.__init__`` and ``_derive`` call ``_start_keys()`` to set it up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .cloud import CachedCredentials
from .families import OTHER, CallKeys, Family
from .keys import hash_api_key

if TYPE_CHECKING:
    from ..record.call import CallContext


class ClientKeys:
    """The key state of one wrapper, read and hashed on the caller's path."""

    # The wrapper's state this mixin reads (capture/wrapper.py sets it).
    _client: Any
    _family: Family
    _ctx: CallContext  # its secrets are what is scrubbed from every stored text
    _secret: bytes  # the HMAC secret
    # Set by _start_keys():
    # None: the key is where OpenAI's and Anthropic's SDKs keep it (read inline: hot path)
    _read_key: Callable[[Any], Any] | None
    _credentials: CachedCredentials | None  # a cloud's client: credentials, not an api_key
    # (fingerprint of the key last seen, its hash): one attribute, so that threads
    # calling at once never pair one key's fingerprint with another's hash.
    _key_state: tuple[int | None, str | None]
    _call_keys: CallKeys  # keys passed with calls (LiteLLM)

    def _start_keys(self) -> None:
        """Fresh key state for this wrapper's client (a reader caches the last key it
        saw, of its own client: a with_options() copy gets its own)."""
        family = self._family
        self._read_key = None if family is OTHER else family.api_key
        credentials = family.credentials
        self._credentials = None if credentials is None else CachedCredentials(credentials)
        self._key_state = (None, None)
        self._call_keys = CallKeys(self._hash_key)

    def _api_key_hash(self) -> str | None:
        client, read_key = self._client, self._read_key
        if read_key is None:
            key = getattr(client, "api_key", None) or getattr(client, "auth_token", None)
        elif self._credentials is not None:  # a cloud's client (no family is OTHER)
            return self._cloud_key_hash()
        else:
            key = read_key(client)
        # A fingerprint, not the key: this object holds no copy of the key to leak.
        # (str caches its hash, so this costs one attribute read per call.)
        seen = hash(key) if isinstance(key, str) else id(key)
        state = self._key_state
        if seen == state[0]:
            return state[1]
        key_hash = self._hash_key(key)
        self._key_state = (seen, key_hash)
        return key_hash

    def _hash_key(self, key: object) -> str | None:  # None: no key
        # SDKs put a placeholder such as "<missing API key>" where a token provider or
        # Azure AD authenticates instead: that is no key, and must not group spend.
        if isinstance(key, str) and key and not key.startswith("<"):
            secret = key.encode("utf-8", "surrogatepass")
            # Added, never replaced: records still queued may carry the previous key
            # (rotation, a refreshing key provider) in an error message or body.
            if secret not in self._ctx.secrets:
                self._ctx.secrets = (*self._ctx.secrets[-7:], secret)
            return hash_api_key(key, self._secret)
        return None

    def _cloud_key_hash(self) -> str | None:
        """``_api_key_hash`` for a cloud's credentials (capture/cloud.py): the reader hands
        back the same tuple until they change (a refresh, a rotation)."""
        assert self._credentials is not None
        credential = self._credentials(self._client)
        state = self._key_state
        if id(credential) == state[0]:  # the reader holds it: the id stays its own
            return state[1]
        key, secrets = credential
        key_hash = None if key is None else hash_api_key(key, self._secret)
        known = self._ctx.secrets
        added = [s.encode("utf-8", "surrogatepass") for s in secrets]
        added = [s for s in added if s not in known]
        if added:  # kept beside the previous ones: queued records may still hold those
            self._ctx.secrets = (*known, *added)[-12:]
        self._key_state = (id(credential), key_hash)
        return key_hash
