"""What a stored body goes through before it is written: user hooks, built-in secret
rules and the size cap.

Built-in rules replace, with ``[REDACTED]``, wherever they appear in a body envelope
(request, response, error) or in a row's ``error_message``:

* provider keys by their shape: OpenAI ``sk-…`` / ``sk-proj-…``, Anthropic ``sk-ant-…``,
  Google ``AIza…``, AWS access key ids ``AKIA…`` / ``ASIA…``, GitHub ``ghp_…`` /
  ``gho_…`` / ``github_pat_…``, Slack ``xox?-…``, Stripe ``sk_live_…`` / ``rk_live_…``,
  JSON Web Tokens ``eyJ….eyJ….…`` and PEM private key blocks;
* the token after ``Bearer``;
* the value of a secret-looking key, as a JSON member (``"password": "…"``) or as text
  (``password=…``, ``Authorization: Basic …``, ``'api_key': '…'``): keys ending in
  ``password``, ``passwd``, ``passphrase``, ``secret``, ``authorization``, ``api_key``,
  ``secret_key``, ``private_key``, ``access_key``, ``auth_key``, ``access_token``,
  ``refresh_token``, ``auth_token``, ``session_token``, ``security_token`` or
  ``id_token`` (any case, with ``_``, ``-`` or nothing between the words);
* the password of a URL (``scheme://user:PASSWORD@host``).

Speed: CPython's regex engine tries an alternation whose branches start with different
characters at every position (about 10 ms for 4 KB with these rules), but finds a
literal first character with a fast scan. So the rules are grouped by the literal
they start at (``:``, ``=``, ``-``, ``_``, ``A``, ``B``, ``J``), one alternation per
group, and a group whose literal is absent (a memchr-speed ``in``) is skipped.

A replacement only ever rewrites characters inside a JSON string (never a quote, a
backslash or a structural character), so a JSON envelope stays valid JSON; applying
the rules twice changes nothing more. The kind of a key stays visible
(``sk-[REDACTED]``, ``Bearer [REDACTED]``).

They are a safety net for the common formats, not a guarantee: a secret in a shape
they do not know (a bare random password in prose, ``bearer`` in lower case outside an
``Authorization`` header) passes. User hooks (``LoggingLLM(redact=[...])``) handle PII
and anything specific to an application.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ._serialize import REDACTED, json_default

RedactHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]

DEFAULT_MAX_BODY_BYTES = 16 * 2**20
MIN_MAX_BODY_BYTES = 1024
# What a truncated part keeps of itself, as text: enough to see what the call was.
TRUNCATED_HEAD_BYTES = 64 * 1024

# Keys whose value is a secret, when a key ends with one (``db_password``,
# ``client_secret``, ``X-Api-Key``, ``aws_secret_access_key``), any case. ``token``
# alone is not one: logprobs have a ``"token"`` member on every entry.
_SECRET_KEYS = ["password", "passwd", "passphrase", "secret", "authorization"]
for _stem in ("api", "secret", "private", "access", "auth"):
    _SECRET_KEYS += [f"{_stem}_key", f"{_stem}-key", f"{_stem}key"]
for _stem in ("access", "refresh", "auth", "session", "security", "id"):
    _SECRET_KEYS += [f"{_stem}_token", f"{_stem}-token", f"{_stem}token"]
_KEY_ENDS = "|".join(sorted({k[-2:] for k in _SECRET_KEYS}))  # a cheap first check
_SCHEME = r"(?:[Bb]earer|[Bb]asic|[Tt]oken|[Dd]igest)[ \t]+"
# No letter or digit right before a key shape (it would be the tail of a longer
# word), unless that letter ends a JSON escape such as \n.
_START = r"(?:(?<![A-Za-z0-9]{w})|(?<=\\[nrtbf]{w}))"


def _lookbehind_any(words: list[str], after: str) -> str:
    """Any of ``words`` (any case) right before ``after``: one look-behind per word
    length, as a look-behind must have a fixed width."""
    by_len: dict[int, list[str]] = {}
    for word in words:
        by_len.setdefault(len(word), []).append(re.escape(word))
    return "|".join(f"(?<=(?i:{'|'.join(g)}){after})" for _, g in sorted(by_len.items()))


def _key_found(joiner: str, sep: str) -> str:
    """A secret key ends right before ``joiner + sep``, the text just matched. A cheap
    look at the last letter first: most keys end otherwise."""
    after = re.escape(joiner + sep)
    last = "".join(sorted({c for k in _SECRET_KEYS for c in (k[-1].lower(), k[-1].upper())}))
    return (
        rf"(?<=[{last}]{after})(?<=(?i:{_KEY_ENDS}){after})"
        rf"(?:{_lookbehind_any(_SECRET_KEYS, after)})"
    )


def _key_value(text: bool) -> list[tuple[str, str]]:
    """(anchor, branch) pairs for a secret key's value, after ':' or '='.

    After ':' every branch starts with a literal (the engine skips a branch on its
    first character, cheaply): JSON members are common, and each look-behind costs.
    """
    # A bare '"' opens a value only in plain text: in a JSON envelope it may be the
    # quote that closes the string the key is in, and the value would run past it.
    opening = r"(?:\\?[\"'])?" if text else r"(?:\\\"|')?"
    value = (
        rf"[ \t]*(?:{_SCHEME})?{opening}"
        r"((?<=')[^'\"\\\n]+|(?<=\")[^\"\\\n]+|[^\s\"'\\&;,]+)"
    )
    json_string = r'((?:[^"\\]|\\.)+)'
    branches = [
        # "…password":"value": the quote before ':' closes a key (no JSON string
        # value is followed by ':'), and the value is a whole JSON string.
        (":", '"' + _key_found('"', ':"') + json_string),
        # \"password\":\"value\": JSON inside a JSON string (tool call arguments).
        (":", r"\\" + '"' + _key_found('\\"', ':\\"') + r'([^"\\]+)'),
        (":", "'" + _key_found("'", ":'") + r"([^'\"\\\n]+)"),
    ]
    for joiner in ("", "'", '\\"'):
        branches.append((":", " " + _key_found(joiner, ": ") + value))
        branches.append(("=", _key_found(joiner, "=") + value))
        branches.append(("=", " " + _key_found(joiner + " ", "= ") + value))
    # "password": "value" (JSON with spaces, in plain text such as an error message)
    branches.append((":", " " + _key_found('"', ": ") + '[ ]*"' + json_string))
    return branches


_PEM = r"----BEGIN[A-Z ]*PRIVATE KEY-----[A-Za-z0-9+/=\\\s]*-----END[A-Z ]*PRIVATE KEY-----"


def _rules(text: bool) -> list[tuple[str, str]]:
    rules = _key_value(text)
    rules += [
        (":", r"""//[^/\s:@"'\\]*:([^/\s@"'\\]+)(?=@)"""),  # URL user:password@
        # OpenAI (sk-proj-, sk-svcacct-), Anthropic (sk-ant-)
        ("-", rf"(?<=sk-){_START.format(w='sk-')}([A-Za-z0-9_-]{{20,}})"),
        ("-", r"(?<=xox[abposre]-)([A-Za-z0-9-]{10,})"),  # Slack
        (
            "-",
            r"----BEGIN[A-Z ]*PRIVATE KEY-----[A-Za-z0-9+/=\\\s]*-----END[A-Z ]*PRIVATE KEY-----",
        ),
        (
            "_",
            rf"(?<=[sr]k_){_START.format(w='[sr]k_')}(?:live|test)_([A-Za-z0-9]{{10,}})",
        ),  # Stripe
        ("_", rf"(?<=gh[pousr]_){_START.format(w='gh[pousr]_')}([A-Za-z0-9]{{36,}})"),  # GitHub
        ("_", r"(?<=github_)pat_([A-Za-z0-9_]{22,})"),
        ("A", rf"{_START.format(w='A')}(?:Iza([0-9A-Za-z_-]{{35}})|(?:KIA|SIA)[0-9A-Z]{{16}})"),
        ("B", r"(?:earer|EARER)[ \t]+([A-Za-z0-9._~+/=-]{8,})"),  # Bearer <token>
        ("J", r"(?<=eyJ)([A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"),  # JWT
    ]
    return rules


def _compile(text: bool) -> list[tuple[Any, Any]]:
    """One alternation per anchor: a pattern that starts with a literal is scanned for
    with a fast search, while CPython's engine tries an alternation of different first
    characters at every position (about 100x slower on 4 KB)."""
    grouped: dict[str, list[str]] = {}
    for anchor, branch in _rules(text):
        grouped.setdefault(anchor, []).append(branch)
    compiled: list[tuple[Any, Any]] = []
    for anchor, branches in grouped.items():
        source = re.escape(anchor) + "(?:" + "|".join(branches) + ")"
        if text:
            compiled.append((anchor, re.compile(source, re.ASCII)))
        else:
            compiled.append((anchor.encode(), re.compile(source.encode("ascii"))))
    return compiled


_TEXT_RULES: list[tuple[str, re.Pattern[str]]] = _compile(text=True)
_BYTES_RULES: list[tuple[bytes, re.Pattern[bytes]]] = _compile(text=False)
_REDACTED_BYTES = REDACTED.encode("ascii")


def _replace_bytes(match: re.Match[bytes]) -> bytes:
    group = match.lastindex
    if group is None:
        return _REDACTED_BYTES
    data = match.string
    return (
        data[match.start() : match.start(group)]
        + _REDACTED_BYTES
        + data[match.end(group) : match.end()]
    )


def _replace_text(match: re.Match[str]) -> str:
    group = match.lastindex
    if group is None:
        return REDACTED
    text = match.string
    return (
        text[match.start() : match.start(group)] + REDACTED + text[match.end(group) : match.end()]
    )


def redact_bytes(data: bytes) -> bytes:
    """``data`` with the built-in rules applied (the same object when nothing matched)."""
    for anchor, rules in _BYTES_RULES:
        if anchor in data:  # one memchr-speed probe skips most passes
            data = rules.sub(_replace_bytes, data)
    return data


def redact_text(text: str) -> str:
    """``text`` with the built-in rules applied."""
    for anchor, rules in _TEXT_RULES:
        if anchor in text:
            text = rules.sub(_replace_text, text)
    return text


def scrub(data: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """The exact secrets this wrapper has seen (its API keys), then the built-in rules."""
    for secret in secrets:
        if secret and secret in data:
            data = data.replace(secret, _REDACTED_BYTES)
    return redact_bytes(data)


def scrub_text(text: str, secrets: tuple[bytes, ...]) -> str:
    for secret in secrets:
        value = secret.decode("utf-8", "replace")
        if value and value in text:
            text = text.replace(value, REDACTED)
    return redact_text(text)


def apply_hooks(envelope: bytes, hooks: Sequence[RedactHook]) -> bytes:
    """Run the user's hooks over the envelope as a dict, in order. A hook returns the
    dict to keep (or None: it changed the one it was given). Exceptions propagate: the
    caller stores a marker instead of a body the hook could not clean."""
    body: dict[str, Any] = orjson.loads(envelope)
    for hook in hooks:
        result = hook(body)
        if result is not None:
            if not isinstance(result, dict):
                raise TypeError(f"a redact hook must return a dict or None, not {type(result)}")
            body = result
    return orjson.dumps(body, default=json_default, option=orjson.OPT_NON_STR_KEYS)


def failed_marker(exc: BaseException) -> bytes:
    """What stands for the request and the response when a hook raised: the type of
    the exception only (its message may quote the very data the hook was to remove)."""
    return orjson.dumps({"$redaction_failed": type(exc).__name__})


def truncated_marker(part: bytes, head_bytes: int) -> bytes:
    """What stands for a request or response over the size cap: its size, its SHA-256
    (of the serialized part, before redaction) and its first ``head_bytes`` as text.
    The head is redacted by the caller with the rest of the envelope; hashing and
    slicing make no copy of the part (hashlib releases the GIL on large inputs)."""
    head = part[:head_bytes].decode("utf-8", "ignore")  # a cut mid-character drops it
    return orjson.dumps(
        {
            "$truncated": True,
            "original_bytes": len(part),
            "sha256": hashlib.sha256(part).hexdigest(),
            "head": head,
        }
    )
