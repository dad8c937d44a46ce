"""What a stored body goes through before it is written: user hooks, built-in secret
rules and the size cap.

Built-in rules replace, with ``[REDACTED]``, wherever they appear in a body envelope
(request, response, error) or in a row's ``error_message``:

* provider keys by their shape: OpenAI ``sk-…`` / ``sk-proj-…``, Anthropic ``sk-ant-…``,
  Google ``AIza…``, AWS access key ids ``AKIA…`` / ``ASIA…``, GitHub ``ghp_…`` /
  ``gho_…`` / ``github_pat_…``, Slack ``xox?-…``, Stripe ``sk_live_…`` / ``rk_live_…``,
  JSON Web Tokens ``eyJ….eyJ…`` (with the rest of the payload and the signature)
  and the body of a PEM private key (from its ``BEGIN`` line to its ``END``
  line, or to the end of the base64 when the ``END`` line is missing);
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

Time linear in the size of the text, by construction. The engine backtracks: a rule
such as ``eyJ[A-Za-z0-9_-]{5,}\\.`` tried at each ``eyJ`` of a long run of them reads to
the end of the run from every one and fails there, time quadratic in the run (150 KB
of ``eyJ`` held the writer's thread, and with it the GIL, for 7 s). So each rule is
written as an anchor, a context, then the secret: a head, then a run of steps.

* The context and the head have a bounded width: no ``*`` or ``+``, every count has a
  maximum (``_PAD`` spaces after a key or a scheme, ``_LABEL`` characters of a PEM
  label, ``_URL_USER`` and ``_URL_PASSWORD`` for a URL, ``_JWT_HEADER`` for a JWT's
  header), all within the rule's ``reach``. No count is nested in another (an optional scheme
  holds one: it is tried once, then skipped), and a count that can vary is followed by
  a character it cannot match (a PEM label by a 16-character literal), so backtracking
  tries each of its values once: an attempt that fails has cost a bounded number of
  steps.
* The run, ``(?:step)*``, ends the rule: nothing after it can fail. Once the head has
  matched the attempt succeeds, and the characters the run reads are the match, which
  ``sub`` never reads again. A token longer than any bound is redacted whole: its run
  is unbounded.
* The two rules whose bound is large are tried at few places. A JWT starts only where
  a run of base64url characters begins (or after a JSON escape such as ``\\n``, or a
  ``%XX``): no header starts inside another, so one failed attempt at most reads each
  run. A URL's user and password stop at the next ``/``, the next ``://`` starts with
  one: the attempts read disjoint text.

Adding up, a pass costs a constant per anchor character, plus the text JWT and URL
attempts read (each character once at most), plus its matches: time linear in the
text. The secrets this wrapper holds are found by ``find`` (linear in the text, times
the secret's length at worst).

Pieces: the engine holds the GIL for a whole ``sub``, and 16 MB (the default cap)
takes tens of milliseconds of it. Text longer than ``_WINDOW`` is searched a window at
a time with ``LoopTurns`` between windows. A match starting in a window is the one a
search of the whole text finds: the search sees as far past the window as the bounded
part of an attempt can read (the widest ``reach`` of the pass's rules), and a match
whose run is cut off there is continued with its run's pattern (``(?:step)*``: its
steps do not depend on where they started), a window at a time too. Look-behinds see the text
before a window: ``search(text, pos, endpos)`` keeps it. The overlap costs 13% more
search on a long text for the JWT pass, 2% for the ``:`` pass (URLs), under 0.5% for
the others; a text of one window is one ``sub``.

A replacement only ever rewrites characters inside a JSON string (never a quote that
ends one, never half of an escape), so a JSON envelope stays valid JSON; applying the
rules twice changes nothing more. The kind of a key stays
visible (``sk-[REDACTED]``, ``AKIA[REDACTED]``, ``Bearer [REDACTED]``).

They are a safety net for the common formats, not a guarantee: a secret in a shape
they do not know (a bare random password in prose, ``bearer`` in lower case outside an
``Authorization`` header) passes. User hooks (``LoggingLLM(redact=[...])``) handle PII
and anything specific to an application.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any, AnyStr, Generic, NamedTuple

import orjson

from .._loop_turns import LoopTurns
from .serialize import REDACTED, json_default

RedactHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]

# What a truncated part keeps of itself, as text: enough to see what the call was.
TRUNCATED_HEAD_BYTES = 64 * 1024

# The bounds of the rules (see the module docstring). Generous: real keys are far
# shorter, and a longer token is still redacted by its unbounded run.
_PAD = 64  # spaces or tabs after a secret key's ':' or '=', or after "Bearer"
_LABEL = 64  # "RSA ", "ENCRYPTED ", "OPENSSH " between BEGIN and PRIVATE KEY
_URL_USER = 256
_URL_PASSWORD = 1024  # a URL password is only known as one by the '@' after it
_JWT_HEADER = 8192  # a header carrying an x5c certificate chain runs to a few KB
# How far past its anchor the bounded part of a rule's attempt can read, with room to
# spare for the character a count or a look-ahead peeks at after it: most rules, a
# URL password (user and password), a JWT (header, ".eyJ" and five payload characters).
_SHORT_REACH = 256
_URL_REACH = _URL_USER + _URL_PASSWORD + 64
_JWT_REACH = _JWT_HEADER + 64
# Text searched between two turns of the event loop: a tenth of a millisecond of prose,
# 6 ms at most of the densest hostile text (every rule, '"password": ' repeated).
_WINDOW = 64 * 1024
# The most characters a step of a run reads (a JSON escape such as \n, a JWT's dot and
# the character after it): a run cut off at a window's end stopped this close to it.
_LONGEST_STEP = 2

# Keys whose value is a secret, when a key ends with one (``db_password``,
# ``client_secret``, ``X-Api-Key``, ``aws_secret_access_key``), any case. ``token``
# alone is not one: logprobs have a ``"token"`` member on every entry.
_SECRET_KEYS = ["password", "passwd", "passphrase", "secret", "authorization"]
for _stem in ("api", "secret", "private", "access", "auth"):
    _SECRET_KEYS += [f"{_stem}_key", f"{_stem}-key", f"{_stem}key"]
for _stem in ("access", "refresh", "auth", "session", "security", "id"):
    _SECRET_KEYS += [f"{_stem}_token", f"{_stem}-token", f"{_stem}token"]
_KEY_ENDS = "|".join(sorted({k[-2:] for k in _SECRET_KEYS}))  # a cheap first check
_SCHEME = rf"(?:(?:[Bb]earer|[Bb]asic|[Tt]oken|[Dd]igest)[ \t]{{1,{_PAD}}})?"
_PADDING = rf"[ \t]{{0,{_PAD}}}"
# No letter or digit right before a key shape (it would be the tail of a longer
# word), unless that letter ends a JSON escape such as \n.
_START = r"(?:(?<![A-Za-z0-9]{w})|(?<=\\[nrtbf]{w}))"
_BASE64URL = "[A-Za-z0-9_-]"
# A JWT's header starts where a run of base64url characters starts: after any other
# character, a JSON escape (\n) or a URL escape (%20). Tried inside a run, it would
# read the rest of the run again from every "eyJ" in it.
_JWT_START = r"(?:(?<![A-Za-z0-9_-]eyJ)|(?<=\\[nrtbf]eyJ)|(?<=%[0-9A-Fa-f]{2}eyJ))"
# One character of a JSON string, or one escape: a run of them ends before a closing
# quote and never splits an escape.
_JSON_CHAR = r'[^"\\]|\\.'


class _Secret(NamedTuple):
    """What a rule replaces: after ``lead`` (kept), ``head`` then any number of ``step``."""

    lead: str  # bounded: an opening quote, or nothing
    head: str  # bounded: what makes it this kind of secret
    step: str | None  # one step of the unbounded rest; None: the head is all of it


class _Rule(NamedTuple):
    name: str
    anchor: str  # the literal the rule starts with
    context: str  # bounded: what stands before the secret, from the anchor on
    secrets: tuple[_Secret, ...]  # alternatives, tried in order
    reach: int = _SHORT_REACH  # the width of anchor, context, lead and head, at most


def _run(step: str, head_steps: int = 1) -> _Secret:
    """A secret that is a run of ``step``, at least ``head_steps`` of them."""
    return _Secret("", f"(?:{step}){{{head_steps}}}", step)


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


def _key_value(text: bool) -> list[_Rule]:
    """Rules for a secret key's value, after ':' or '='.

    After ':' every rule goes on with a literal (the engine skips an alternative on its
    first character, cheaply): JSON members are common, and each look-behind costs.
    """
    # A bare '"' opens a value only in plain text: in a JSON envelope it may be the
    # quote that closes the string the key is in, and the value would run past it.
    single, double, bare = r"[^'\"\\\n]", r"[^\"\\\n]", r"[^\s\"'\\&;,]"
    value = (
        _Secret(r"\\?'" if text else "'", single, single),
        _Secret(r"\\?\"" if text else r"\\\"", double, double),
        _Secret("", bare, bare),
    )
    before_value = _PADDING + _SCHEME
    rules = [
        # "…password":"value": the quote before ':' closes a key (no JSON string
        # value is followed by ':'), and the value is a whole JSON string.
        _Rule("json member", ":", '"' + _key_found('"', ':"'), (_run(_JSON_CHAR),)),
        # \"password\":\"value\": JSON inside a JSON string (tool call arguments).
        _Rule(
            "escaped json member",
            ":",
            r"\\" + '"' + _key_found('\\"', ':\\"'),
            (_run(r'[^"\\]'),),
        ),
        _Rule("quoted member", ":", "'" + _key_found("'", ":'"), (_run(r"[^'\"\\\n]"),)),
    ]
    for joiner in ("", "'", '\\"'):
        key = f"{joiner}key{joiner}"
        rules += [
            _Rule(f"{key}: value", ":", " " + _key_found(joiner, ": ") + before_value, value),
            _Rule(f"{key}=value", "=", _key_found(joiner, "=") + before_value, value),
            _Rule(
                f"{key} = value", "=", " " + _key_found(joiner + " ", "= ") + before_value, value
            ),
        ]
    # "password": "value" (JSON with spaces, in plain text such as an error message)
    rules.append(
        _Rule(
            "spaced json member",
            ":",
            " " + _key_found('"', ": ") + f'[ ]{{0,{_PAD}}}"',
            (_run(_JSON_CHAR),),
        )
    )
    return rules


def _rules(text: bool) -> list[_Rule]:
    """Every built-in rule, in the order they are tried (within an anchor's group)."""
    key_chars = "[A-Za-z0-9]"
    return [
        *_key_value(text),
        _Rule(
            "URL password",
            ":",
            rf"""//[^/\s:@"'\\]{{0,{_URL_USER}}}:""",
            (_Secret("", rf"""[^/\s@"'\\]{{1,{_URL_PASSWORD}}}(?=@)""", None),),
            _URL_REACH,
        ),
        # OpenAI (sk-proj-, sk-svcacct-), Anthropic (sk-ant-)
        _Rule("OpenAI key", "-", "(?<=sk-)" + _START.format(w="sk-"), (_run(_BASE64URL, 20),)),
        _Rule("Slack token", "-", "(?<=xox[abposre]-)", (_run("[A-Za-z0-9-]", 10),)),
        _Rule(
            "PEM private key",
            "-",
            rf"----BEGIN[A-Z ]{{0,{_LABEL}}}PRIVATE KEY-----",
            # base64, whitespace, and whitespace as a JSON escape
            (_run(r"[A-Za-z0-9+/=\s]|\\[nrt/]"),),
        ),
        _Rule(
            "Stripe key",
            "_",
            "(?<=[sr]k_)" + _START.format(w="[sr]k_") + "(?:live|test)_",
            (_run(key_chars, 10),),
        ),
        _Rule(
            "GitHub token",
            "_",
            "(?<=gh[pousr]_)" + _START.format(w="gh[pousr]_"),
            (_run(key_chars, 36),),
        ),
        _Rule("GitHub fine-grained token", "_", "(?<=github_)pat_", (_run("[A-Za-z0-9_]", 22),)),
        _Rule(
            "Google or AWS key",
            "A",
            _START.format(w="A"),
            (
                _Secret("Iza", "[0-9A-Za-z_-]{35}", None),
                _Secret("(?:KIA|SIA)", "[0-9A-Z]{16}", None),
            ),
        ),
        _Rule(
            "Bearer token",
            "B",
            rf"(?:earer|EARER)[ \t]{{1,{_PAD}}}",
            (_run("[A-Za-z0-9._~+/=-]", 8),),
        ),
        _Rule(
            "JWT",
            "J",
            "(?<=eyJ)" + _JWT_START,
            (
                _Secret(
                    "",
                    # the header, then the payload's start; the rest of the payload
                    # and the signature (a dot between two base64url characters) are the
                    # run: a dot that ends a sentence stays
                    rf"{_BASE64URL}{{5,{_JWT_HEADER}}}\.eyJ{_BASE64URL}{{5}}",
                    rf"{_BASE64URL}|\.(?={_BASE64URL})",
                ),
            ),
            _JWT_REACH,
        ),
    ]


def _source(rule: _Rule) -> str:
    """A rule as a pattern, after its anchor: one capturing group per secret."""
    alternatives = "|".join(
        secret.lead
        + "("
        + secret.head
        + ("" if secret.step is None else f"(?:{secret.step})*")
        + ")"
        for secret in rule.secrets
    )
    return f"{rule.context}(?:{alternatives})"


class _Pass(Generic[AnyStr]):
    """The rules of one anchor: one alternation, one pass over the text."""

    __slots__ = ("anchor", "pattern", "reach", "redacted", "runs")

    def __init__(self, anchor: AnyStr, rules: list[_Rule], redacted: AnyStr) -> None:
        self.anchor: AnyStr = anchor
        self.redacted: AnyStr = redacted
        self.reach = max(rule.reach for rule in rules)
        source = re.escape(rules[0].anchor) + "(?:" + "|".join(map(_source, rules)) + ")"
        steps = [secret.step for rule in rules for secret in rule.secrets]
        # A secret's run, to go on with when a window cut it off: by its group's number.
        self.runs: dict[int, re.Pattern[AnyStr]] = {}
        if isinstance(anchor, str):
            self.pattern: re.Pattern[AnyStr] = re.compile(source, re.ASCII)
        else:
            self.pattern = re.compile(source.encode("ascii"))
        for group, step in enumerate(steps, start=1):
            if step is not None:
                run = f"(?:{step})*"
                self.runs[group] = re.compile(
                    run if isinstance(anchor, str) else run.encode("ascii"),
                    re.ASCII if isinstance(anchor, str) else 0,
                )

    def _replace(self, match: re.Match[AnyStr]) -> AnyStr:
        # A secret ends its rule (the look-ahead of a URL password has no width): what
        # the match holds before the secret stays, the secret goes.
        group = match.lastindex or 0
        data: AnyStr = match.string
        return data[match.start() : match.start(group)] + self.redacted

    def apply(self, data: AnyStr) -> AnyStr:
        if self.anchor not in data:  # one memchr-speed probe skips most passes
            return data
        if len(data) <= _WINDOW:
            return self.pattern.sub(self._replace, data)
        return self._in_windows(data, LoopTurns())

    def _in_windows(self, data: AnyStr, turns: LoopTurns) -> AnyStr:
        """What ``pattern.sub`` returns, searched a window at a time (module docstring)."""
        size = len(data)
        pieces: list[AnyStr] = []
        copied = pos = 0
        while pos < size:
            window_end = min(pos + _WINDOW, size)
            limit = min(window_end + self.reach, size)
            for match in self.pattern.finditer(data, pos, limit):
                if match.start() >= window_end:
                    break  # found again from the next window, where all it reads is seen
                group = match.lastindex or 0
                pieces += (data[copied : match.start(group)], self.redacted)
                copied = match.end()
                if copied > limit - _LONGEST_STEP and limit < size and group in self.runs:
                    copied = _run_end(self.runs[group], data, copied, turns)
                    break  # the search goes on after the whole run
            pos = max(window_end, copied)
            turns.maybe_yield()
        if not pieces:
            return data
        pieces.append(data[copied:])
        return data[:0].join(pieces)


def _run_end(run: re.Pattern[AnyStr], data: AnyStr, pos: int, turns: LoopTurns) -> int:
    """Where the run that goes on at ``pos`` ends, read a window at a time."""
    size = len(data)
    while True:
        limit = min(pos + _WINDOW, size)
        match = run.match(data, pos, limit)
        end = pos if match is None else match.end()  # never None: a run may be empty
        if limit == size or end <= limit - _LONGEST_STEP:
            return end
        pos = end
        turns.maybe_yield()


def _group_by_anchor(text: bool) -> dict[str, list[_Rule]]:
    grouped: dict[str, list[_Rule]] = {}
    for rule in _rules(text):
        grouped.setdefault(rule.anchor, []).append(rule)
    return grouped


_TEXT_PASSES = [_Pass(a, rules, REDACTED) for a, rules in _group_by_anchor(text=True).items()]
_REDACTED_BYTES = REDACTED.encode("ascii")
_BYTES_PASSES = [
    _Pass(a.encode("ascii"), rules, _REDACTED_BYTES)
    for a, rules in _group_by_anchor(text=False).items()
]


def _replace_all(data: AnyStr, secret: AnyStr, redacted: AnyStr) -> AnyStr:
    """``data.replace(secret, redacted)``, searched a window at a time when long."""
    size = len(data)
    if size <= _WINDOW:
        return data.replace(secret, redacted)
    turns = LoopTurns()
    pieces: list[AnyStr] = []
    copied = pos = 0
    while pos < size:
        window_end = min(pos + _WINDOW, size)
        found = data.find(secret, pos, window_end + len(secret) - 1)
        if found < 0:
            pos = window_end
        else:
            pieces += (data[copied:found], redacted)
            copied = pos = found + len(secret)
        turns.maybe_yield()
    if not pieces:
        return data
    pieces.append(data[copied:])
    return data[:0].join(pieces)


def redact_bytes(data: bytes) -> bytes:
    """``data`` with the built-in rules applied (the same object when nothing matched)."""
    for rules in _BYTES_PASSES:
        data = rules.apply(data)
    return data


def redact_text(text: str) -> str:
    """``text`` with the built-in rules applied."""
    for rules in _TEXT_PASSES:
        text = rules.apply(text)
    return text


def scrub(data: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """The exact secrets this wrapper has seen (its API keys), then the built-in rules."""
    for secret in secrets:
        if secret:
            data = _replace_all(data, secret, _REDACTED_BYTES)
    return redact_bytes(data)


def scrub_text(text: str, secrets: tuple[bytes, ...]) -> str:
    for secret in secrets:
        value = secret.decode("utf-8", "replace")
        if value:
            text = _replace_all(text, value, REDACTED)
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
