"""The golden corpus: recorded calls, and the rows and envelopes the pipeline made of them.

``tests/test_golden_output.py`` rebuilds each recorded ``CallRecord`` from
``corpus.json`` and checks that today's code turns it into the same row (``repr``)
and the same envelope (bytes) as the code that wrote the file did. A faster pricing,
serializer, redaction or row builder must produce output identical to the one it
replaces; this is where that is checked, byte for byte.

Regenerate only when the output is meant to change (a new column, a fixed bug),
and say so in the commit::

    .venv/bin/python tests/golden/corpus.py record   # capture calls, write inputs + outputs
    .venv/bin/python tests/golden/corpus.py expect   # recompute outputs from the inputs

The calls go through the real openai and anthropic SDKs against the in-process fake
provider: chat, responses, embeddings and messages, plain and streamed, errors,
a duck-typed client, secrets in prompts, tags (hashed too), unicode, a body over the cap.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import sys
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.json"
STARTED_AT = 1_764_900_000.123456  # 2025-12-05, fixed so dates and price versions are too

# CallRecord fields kept as they are (str, int, float, bool, None, tuples of str)
_PLAIN = (
    "provider", "operation", "model", "stream", "status", "error_type", "error_message",
    "served_model", "provider_request_id", "api_key_hash", "body_dropped",
)  # fmt: skip


def _encode(value: Any) -> Any:
    """A value of a record as JSON: SDK models by class and JSON, Usage by fields."""
    from majordomo_log.record.usage import Usage

    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Usage):
        import dataclasses

        return {"$usage": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    if isinstance(value, (list, tuple)):
        return {"$list": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"$dict": {k: _encode(v) for k, v in value.items()}}
    cls = type(value)
    if hasattr(value, "model_dump_json"):
        return {
            "$model": f"{cls.__module__}:{cls.__qualname__}",
            "json": value.model_dump_json(warnings=False, exclude_unset=True),
        }
    raise TypeError(f"corpus cannot hold {cls!r}")


def _decode(value: Any) -> Any:
    from majordomo_log.record.usage import Usage

    if not isinstance(value, dict):
        return value
    if "$usage" in value:
        fields = dict(value["$usage"])
        fields["flags"] = tuple(fields.get("flags", ()))
        return Usage(**fields)
    if "$list" in value:
        return [_decode(v) for v in value["$list"]]
    if "$dict" in value:
        return {k: _decode(v) for k, v in value["$dict"].items()}
    module, _, qualname = value["$model"].partition(":")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls.model_validate_json(value["json"])


def _context(spec: dict[str, Any]) -> Any:
    from majordomo_log.record.call import CallContext
    from majordomo_log.record.pricing import default_prices

    return CallContext(
        prices=default_prices(),
        api_key_alias=spec.get("alias"),
        tags=spec.get("tags", {}),
        secrets=tuple(s.encode() for s in spec.get("secrets", ())),
        max_body_bytes=spec.get("max_body_bytes", 16 * 1024 * 1024),
        hash_tags=frozenset(spec.get("hash_tags", ())),
        tag_secret=spec.get("tag_secret", "").encode(),
    )


def to_input(record: Any, index: int, ctx_spec: dict[str, Any]) -> dict[str, Any]:
    """A captured record as corpus input: times and ids fixed, everything else as seen."""
    out: dict[str, Any] = {name: _encode(getattr(record, name)) for name in _PLAIN}
    out["request_id"] = f"0193a000-0000-7000-8000-{index:012d}"
    out["started_at"] = STARTED_AT + index
    out["t_first"] = None if record.t_first is None else 0.25
    out["t_end"] = None if record.t_end is None else 0.5 + index / 1000
    out["context_tags"] = _encode(dict(record.context_tags or {}))
    out["request_json"] = base64.b64encode(record.request_json or b"").decode()
    out["has_request"] = record.request_json is not None
    out["response"] = _encode(record.response)
    out["stream_chunks"] = _encode(record.stream_chunks)
    out["usage"] = _encode(record.usage)
    out["outcome"] = None
    out["ctx"] = ctx_spec
    return out


def from_input(data: dict[str, Any]) -> Any:
    """The ``CallRecord`` a corpus input stands for, as the writer would receive it."""
    from majordomo_log.record.call import CallRecord

    record = CallRecord(
        data["request_id"],
        data["started_at"],
        0.0,
        data["provider"],
        data["operation"],
        data["model"],
        data["stream"],
        _decode(data["context_tags"]) or None,
        data["api_key_hash"],
        _context(data["ctx"]),
    )
    for name in _PLAIN:
        setattr(record, name, data[name])
    record.t_first, record.t_end = data["t_first"], data["t_end"]
    record.request_json = base64.b64decode(data["request_json"]) if data["has_request"] else None
    record.response = _decode(data["response"])
    chunks = _decode(data["stream_chunks"])
    record.stream_chunks = chunks
    record.usage = _decode(data["usage"])
    return record


def outputs(records: list[Any]) -> list[dict[str, str]]:
    """What the pipeline makes of the records: each row's repr and envelope."""
    from majordomo_log.delivery.prepare import prepare
    from majordomo_log.record.rows import build_row

    bodies = prepare(records, True)
    out = []
    for record, body in zip(records, bodies, strict=True):
        envelope = b"" if body is None else body[2]
        ref = None if body is None else f"ref/{record.request_id}"
        out.append({"row": repr(build_row(record, ref)), "envelope": envelope.decode("utf-8")})
    return out


SECRET_PROMPT = (
    "my key is sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 and the db is "
    "postgresql://app:hunter2-secret@db.internal:5432/prod; Authorization: Bearer "
    'abc.def.ghi; {"password": "pa55word"} eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-Nature_'
)


async def _record_calls() -> list[dict[str, Any]]:
    import majordomo_log as ml
    from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

    captured: list[dict[str, Any]] = []
    provider = FakeProvider(
        openai_usage={
            "prompt_tokens": 1200,
            "completion_tokens": 340,
            "cached_tokens": 1024,
            "reasoning_tokens": 128,
        },
        anthropic_usage={
            "input_tokens": 50,
            "output_tokens": 700,
            "cache_read_input_tokens": 4000,
            "cache_creation_5m": 2000,
            "cache_creation_1h": 1500,
        },
    )
    plain = {"alias": "prod", "tags": {"feature": "golden"}}
    hashed = {
        "alias": None, "tags": {"user": "alice@example.com", "team": "ml"},
        "hash_tags": ["user"], "tag_secret": "tag-secret",
    }  # fmt: skip
    small = {"max_body_bytes": 600, "tags": {"workflow": "big"}}

    async def run(client: Any, spec: dict[str, Any], calls: Any) -> None:
        import tempfile

        db = await ml.SqliteAdapter.create(Path(tempfile.mkdtemp()) / "golden.db")
        llm = ml.LoggingLLM(client, db, None, spool=False, tags=spec.get("tags"))
        records: list[Any] = []
        llm._writer.submit = records.append  # keep records, as the queue would
        for tags, call in calls(llm):
            with ml.tags(**tags):
                try:
                    result = await call
                    if hasattr(result, "__aiter__"):
                        async for _ in result:
                            pass
                except Exception:
                    pass
        for record in records:
            if isinstance(record, tuple):
                continue
            if record.stream_chunks is None and record.stream:
                record.priced()  # nothing to assemble: same as the writer
            captured.append(to_input(record, len(captured), spec))
        llm._writer.submit = type(llm._writer).submit.__get__(llm._writer)
        await llm.close()

    unicode = 'héllo wörld — 日本語 \U0001f600 \u2028 \\n "quoted"'
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi " * 200}]

    def openai_calls(llm: Any) -> Any:
        yield {}, llm.chat.completions.create(model="gpt-4o", messages=msgs)
        yield (
            {"session": "s1"},
            llm.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": unicode}], stream=True
            ),
        )
        yield (
            {},
            llm.chat.completions.create(
                model="o3-mini", messages=[{"role": "user", "content": SECRET_PROMPT}]
            ),
        )
        yield {}, llm.responses.create(model="gpt-4.1", input="Summarize: " + unicode)
        yield {}, llm.responses.create(model="gpt-4.1-mini", input="stream me", stream=True)
        yield {}, llm.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        yield {}, llm.chat.completions.create(model="no-such-model-xyz", messages=msgs[:1])

    await run(fake_openai_client(provider), plain, openai_calls)

    def openai_failing(llm: Any) -> Any:
        provider.fail_next(429, message="rate limited, key sk-proj-ZZZZZZZZZZZZZZZZZZZZZZZZ")
        yield {}, llm.chat.completions.create(model="gpt-4o", messages=msgs[:1])

    def anthropic_failing(llm: Any) -> Any:
        provider.fail_next(500)
        yield {}, llm.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=msgs[1:])

    await run(fake_openai_client(provider), hashed, openai_failing)
    await run(fake_anthropic_client(provider), hashed, anthropic_failing)

    def anthropic_calls(llm: Any) -> Any:
        user = [{"role": "user", "content": "Hello " + unicode}]
        yield {}, llm.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=user)
        yield (
            {"user": "bob"},
            llm.messages.create(
                model="claude-3-5-haiku-latest", max_tokens=100, messages=user, stream=True
            ),
        )
        yield {}, llm.messages.create(
            model="claude-opus-4-1", max_tokens=100,
            messages=[{"role": "user", "content": SECRET_PROMPT * 3}],
        )  # fmt: skip

    await run(fake_anthropic_client(provider), hashed, anthropic_calls)

    def openai_big(llm: Any) -> Any:
        yield {}, llm.chat.completions.create(model="gpt-4o", messages=msgs)
        yield {}, llm.chat.completions.create(model="gpt-4o", messages=msgs, stream=True)

    await run(fake_openai_client(provider), small, openai_big)

    # Usage of a long-context tier, and an older price version (the call's date decides)
    provider.anthropic_usage = {"input_tokens": 250_000, "output_tokens": 90_000}
    provider.openai_usage = {"prompt_tokens": 7, "completion_tokens": 1}

    def tiers(llm: Any) -> Any:
        user = [{"role": "user", "content": "long"}]
        yield {}, llm.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=user)

    await run(fake_anthropic_client(provider), plain, tiers)

    def tiny(llm: Any) -> Any:
        yield {}, llm.chat.completions.create(model="gpt-4.1-nano", messages=msgs[:1])

    await run(fake_openai_client(provider), plain, tiny)
    return captured


def main(argv: list[str]) -> None:
    if argv[1:] == ["record"]:
        inputs = asyncio.run(_record_calls())
    elif argv[1:] == ["expect"]:
        inputs = [case["input"] for case in orjson.loads(CORPUS.read_bytes())]
    else:
        raise SystemExit(__doc__)
    expected = outputs([from_input(i) for i in inputs])
    cases = [{"input": i, "expected": e} for i, e in zip(inputs, expected, strict=True)]
    CORPUS.write_bytes(orjson.dumps(cases, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"{len(cases)} cases written to {CORPUS}")


if __name__ == "__main__":
    main(sys.argv)
