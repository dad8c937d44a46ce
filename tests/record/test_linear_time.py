"""No step that reads user content costs more than linear time in its size.

Every redaction rule runs on text made to make it try and fail at every position
(its anchor and the start of its context, repeated), at size n and 4n. The one kind
of timing a test holds: the least disturbed of several interleaved runs of the same
code, at n and at 4n, compared with each other. Linear work takes 4x as long, quadratic
work 16x; the test fails above 8x. Runs are timed in the CPU time of their thread: on
a machine shared with other processes a longer run is more often preempted, and wall
time would count that as work.

The rules are also checked for the shape that makes them linear (the proof is in
``majordomo_log/record/redact_rules.py``): bounded context and head, a run that ends the rule.
"""

from __future__ import annotations

import re

import orjson
import pytest
from linear_time import GROWTH, MAX_RATIO, RULE_CHARS, growth, repeated

from majordomo_log.record import redact as _redact
from majordomo_log.record import redact_rules
from majordomo_log.record.redact import redact_bytes, redact_text

ENVELOPE_BYTES = 512 * 1024  # both sizes span several windows

# Text that makes each rule try at every repetition, and fail or match there.
WORST_CASES: dict[str, tuple[str, ...]] = {
    "json member": ('"password":"', '"password":""', '"password":"\\'),
    "escaped json member": ('\\"password\\":\\"', '\\"password\\":\\"\\'),
    "quoted member": ("'password':'", "'password':''"),
    "key: value": ("password: ", "password: ,", "password: Bearer \t,", "password:" + " " * 70),
    "'key': value": ("'password': ", "'password': '"),
    '\\"key\\": value': ('\\"password\\": ', '\\"password\\": \\"'),
    "key=value": ("password=", "password=,", "password=Token ", "password=" + "\t" * 70),
    "'key'=value": ("'password'=", "'password'=,"),
    '\\"key\\"=value': ('\\"password\\"=', '\\"password\\"=\\"'),
    "key = value": ("password = ", "password = ,"),
    "'key' = value": ("'password' = ", "'password' = ,"),
    '\\"key\\" = value': ('\\"password\\" = ', '\\"password\\" = ,'),
    "spaced json member": ('"password": "', '"password": ', '"password":' + " " * 70),
    "URL password": (
        "://u:",
        "://",
        "//a:",
        "://user:pass",
        "://u:" + "p" * 2000,  # longer than a password can be
        "://" + "u" * 300,  # longer than a user name can be
    ),
    "OpenAI key": ("sk-", "sk-ant-", "sk-proj-", "sk-" + "a" * 19 + " ", "xsk-" + "a" * 30),
    "Slack token": ("xoxb-", "xoxb-" + "a" * 9 + " "),
    "PEM private key": (
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----abc\\n",
        "-----BEGIN RSA ",
        "-----BEGIN " + "A" * 100,
        "-----END PRIVATE KEY-----",
    ),
    "Stripe key": ("sk_live_", "sk_test_a", "rk_live_" + "a" * 9 + " "),
    "GitHub token": ("ghp_", "ghp_" + "a" * 35 + " ", "gho_"),
    "GitHub fine-grained token": ("github_pat_", "github_pat_" + "a" * 21 + " "),
    "Google or AWS key": ("AKIA", "AIza", "AKIA" + "A" * 15 + " ", "ASIA"),
    "Bearer token": ("Bearer ", "Bearer \t", "Bearer a ", "BEARER" + " " * 70),
    "JWT": (
        "eyJ",  # how every JWT starts: 7.2 s for 150 KB before the rules were bounded
        "eyJa.",
        "eyJ" + "a" * 10,
        "eyJaaaaa.eyJ",
        "eyJaaaaa.eyJaaaaa.",
        "\\neyJ",
        "%20eyJ",
        " eyJ" + "a" * 50,
        "eyJaaaaa.eyJ" + "a" * 50,
    ),
}
# Text made of the characters every rule starts at, or reads through
GENERIC_CASES = ("\\n", '\\"', '"', ":", "=", "-", "_", "A", "B", "J", "a", " ", "a:b ")


def test_every_rule_has_worst_cases() -> None:
    names = {rule.name for rule in redact_rules.rules(text=False)}
    assert names == {rule.name for rule in redact_rules.rules(text=True)}
    assert names == set(WORST_CASES)


def test_the_sizes_time_what_they_mean_to() -> None:
    assert RULE_CHARS * GROWTH <= _redact._WINDOW  # one pattern.sub: the rules alone
    assert len(envelope(ENVELOPE_BYTES)) > 2 * _redact._WINDOW  # several windows


CASES = [(name, fragment) for name, fragments in WORST_CASES.items() for fragment in fragments]


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [*CASES, *(("-", fragment) for fragment in GENERIC_CASES)],
    ids=[f"{name}: {fragment[:24]!r}" for name, fragment in CASES]
    + [f"generic: {fragment!r}" for fragment in GENERIC_CASES],
)
async def test_each_rule_takes_linear_time(rule: str, fragment: str) -> None:
    """Timed on the event loop's thread, where no turn is taken: only the rules count.
    Both sizes fit in one window."""
    small = repeated(fragment, RULE_CHARS)
    large = small * GROWTH
    for run, small_input, large_input in (
        (redact_text, small, large),
        (redact_bytes, small.encode(), large.encode()),
    ):
        ratio = growth(run, small_input, large_input)
        assert ratio <= MAX_RATIO, (
            f"{run.__name__} on {fragment!r} repeated ({rule}): "
            f"{GROWTH}x the text took {ratio:.1f}x the time"
        )


def envelope(size: int) -> bytes:
    """A body envelope whose messages are every worst case, each about as long."""
    fragments = [f for fs in WORST_CASES.values() for f in fs] + list(GENERIC_CASES)
    share = size // len(fragments)
    messages = [{"role": "user", "content": repeated(f, share)} for f in fragments]
    return orjson.dumps({"request": {"model": "m", "messages": messages}, "response": None})


async def test_scrubbing_an_envelope_takes_linear_time() -> None:
    """The whole pipeline step (the wrapper's secrets, then every rule), in windows (the
    same code searches the text of error messages)."""
    small, large = envelope(ENVELOPE_BYTES), envelope(GROWTH * ENVELOPE_BYTES)
    secrets = (b"sk-proj-the-wrappers-own-key",)
    ratio = growth(lambda data: _redact.scrub(data, secrets), small, large)
    assert ratio <= MAX_RATIO, f"{GROWTH}x the envelope took {ratio:.1f}x the time"


# -- the shape that makes a rule linear ----------------------------------------------------


def _widths(pattern: str) -> tuple[int, int]:
    try:
        from re import _parser as parser  # type: ignore[attr-defined]
    except ImportError:  # Python 3.10
        import sre_parse as parser
    low, high = parser.parse(pattern).getwidth()
    return int(low), int(high)


@pytest.mark.parametrize("text", [True, False], ids=["text", "bytes"])
def test_every_rule_is_bounded_but_its_final_run(text: bool) -> None:
    """What an attempt reads before its run is within the windows' overlap; a run's
    step is short and is the end of the rule."""
    for rule in redact_rules.rules(text):
        for secret in rule.secrets:
            bounded = re.escape(rule.anchor) + rule.context + secret.lead + secret.head
            assert _widths(bounded)[1] <= rule.reach - redact_rules.LONGEST_STEP, rule.name
            if secret.step is not None:
                assert _widths(secret.step)[0] >= 1
                assert _widths(secret.step)[1] <= redact_rules.LONGEST_STEP, rule.name
        source = redact_rules.source(rule)
        re.compile(source)  # one group per secret, nothing after it (see _source)
        assert re.compile(source).groups == len(rule.secrets), rule.name
