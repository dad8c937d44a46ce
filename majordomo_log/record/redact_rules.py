"""The built-in secret rules: what they find, and why finding it takes time linear in
the text (``record/redact.py`` runs them).

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

A replacement only ever rewrites characters inside a JSON string (never a quote that
ends one, never half of an escape), so a JSON envelope stays valid JSON; applying the
rules twice changes nothing more. The kind of a key stays
visible (``sk-[REDACTED]``, ``AKIA[REDACTED]``, ``Bearer [REDACTED]``).

They are a safety net for the common formats, not a guarantee: a secret in a shape
they do not know (a bare random password in prose, ``bearer`` in lower case outside an
``Authorization`` header) passes. User hooks (``LoggingLLM(redact=[...])``) handle PII
and anything specific to an application.

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
"""

from __future__ import annotations

import re
from typing import NamedTuple

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
# The most characters a step of a run reads (a JSON escape such as \n, a JWT's dot and
# the character after it): a run cut off at a window's end stopped this close to it.
LONGEST_STEP = 2

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


class Secret(NamedTuple):
    """What a rule replaces: after ``lead`` (kept), ``head`` then any number of ``step``."""

    lead: str  # bounded: an opening quote, or nothing
    head: str  # bounded: what makes it this kind of secret
    step: str | None  # one step of the unbounded rest; None: the head is all of it


class Rule(NamedTuple):
    name: str
    anchor: str  # the literal the rule starts with
    context: str  # bounded: what stands before the secret, from the anchor on
    secrets: tuple[Secret, ...]  # alternatives, tried in order
    reach: int = _SHORT_REACH  # the width of anchor, context, lead and head, at most


def _run(step: str, head_steps: int = 1) -> Secret:
    """A secret that is a run of ``step``, at least ``head_steps`` of them."""
    return Secret("", f"(?:{step}){{{head_steps}}}", step)


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


def _key_value(text: bool) -> list[Rule]:
    """Rules for a secret key's value, after ':' or '='.

    After ':' every rule goes on with a literal (the engine skips an alternative on its
    first character, cheaply): JSON members are common, and each look-behind costs.
    """
    # A bare '"' opens a value only in plain text: in a JSON envelope it may be the
    # quote that closes the string the key is in, and the value would run past it.
    single, double, bare = r"[^'\"\\\n]", r"[^\"\\\n]", r"[^\s\"'\\&;,]"
    value = (
        Secret(r"\\?'" if text else "'", single, single),
        Secret(r"\\?\"" if text else r"\\\"", double, double),
        Secret("", bare, bare),
    )
    before_value = _PADDING + _SCHEME
    rules = [
        # "…password":"value": the quote before ':' closes a key (no JSON string
        # value is followed by ':'), and the value is a whole JSON string.
        Rule(
            "json member",
            ":",
            '"' + _key_found('"', ':"'),
            (_run(_JSON_CHAR),),
        ),
        # \"password\":\"value\": JSON inside a JSON string (tool call arguments).
        Rule(
            "escaped json member",
            ":",
            r"\\" + '"' + _key_found('\\"', ':\\"'),
            (_run(r'[^"\\]'),),
        ),
        Rule(
            "quoted member",
            ":",
            "'" + _key_found("'", ":'"),
            (_run(r"[^'\"\\\n]"),),
        ),
    ]
    for joiner in ("", "'", '\\"'):
        key = f"{joiner}key{joiner}"
        rules += [
            Rule(
                f"{key}: value",
                ":",
                " " + _key_found(joiner, ": ") + before_value,
                value,
            ),
            Rule(
                f"{key}=value",
                "=",
                _key_found(joiner, "=") + before_value,
                value,
            ),
            Rule(
                f"{key} = value",
                "=",
                " " + _key_found(joiner + " ", "= ") + before_value,
                value,
            ),
        ]
    # "password": "value" (JSON with spaces, in plain text such as an error message)
    rules.append(
        Rule(
            "spaced json member",
            ":",
            " " + _key_found('"', ": ") + f'[ ]{{0,{_PAD}}}"',
            (_run(_JSON_CHAR),),
        )
    )
    return rules


def rules(text: bool) -> list[Rule]:
    """Every built-in rule, in the order they are tried (within an anchor's group)."""
    key_chars = "[A-Za-z0-9]"
    return [
        *_key_value(text),
        Rule(
            "URL password",
            ":",
            rf"""//[^/\s:@"'\\]{{0,{_URL_USER}}}:""",
            (Secret("", rf"""[^/\s@"'\\]{{1,{_URL_PASSWORD}}}(?=@)""", None),),
            _URL_REACH,
        ),
        # OpenAI (sk-proj-, sk-svcacct-), Anthropic (sk-ant-)
        Rule(
            "OpenAI key",
            "-",
            "(?<=sk-)" + _START.format(w="sk-"),
            (_run(_BASE64URL, 20),),
        ),
        Rule(
            "Slack token",
            "-",
            "(?<=xox[abposre]-)",
            (_run("[A-Za-z0-9-]", 10),),
        ),
        Rule(
            "PEM private key",
            "-",
            rf"----BEGIN[A-Z ]{{0,{_LABEL}}}PRIVATE KEY-----",
            # base64, whitespace, and whitespace as a JSON escape
            (_run(r"[A-Za-z0-9+/=\s]|\\[nrt/]"),),
        ),
        Rule(
            "Stripe key",
            "_",
            "(?<=[sr]k_)" + _START.format(w="[sr]k_") + "(?:live|test)_",
            (_run(key_chars, 10),),
        ),
        Rule(
            "GitHub token",
            "_",
            "(?<=gh[pousr]_)" + _START.format(w="gh[pousr]_"),
            (_run(key_chars, 36),),
        ),
        Rule(
            "GitHub fine-grained token",
            "_",
            "(?<=github_)pat_",
            (_run("[A-Za-z0-9_]", 22),),
        ),
        Rule(
            "Google or AWS key",
            "A",
            _START.format(w="A"),
            (
                Secret("Iza", "[0-9A-Za-z_-]{35}", None),
                Secret("(?:KIA|SIA)", "[0-9A-Z]{16}", None),
            ),
        ),
        Rule(
            "Bearer token",
            "B",
            rf"(?:earer|EARER)[ \t]{{1,{_PAD}}}",
            (_run("[A-Za-z0-9._~+/=-]", 8),),
        ),
        Rule(
            "JWT",
            "J",
            "(?<=eyJ)" + _JWT_START,
            (
                Secret(
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


def source(rule: Rule) -> str:
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


def group_by_anchor(text: bool) -> dict[str, list[Rule]]:
    """The rules by the literal they start at, in the order they are tried."""
    grouped: dict[str, list[Rule]] = {}
    for rule in rules(text):
        grouped.setdefault(rule.anchor, []).append(rule)
    return grouped
