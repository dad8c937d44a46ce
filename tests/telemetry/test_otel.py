"""OpenTelemetry: a GenAI client span per call and the GenAI metrics, read through the SDK's
in-memory exporter and reader and compared with the rows the same calls wrote."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


class Otel:
    """An SDK tracer and meter provider of the test's own, read in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.options = ml.OpenTelemetryOptions(self.tracer_provider, self.meter_provider)

    def spans(self, kind: SpanKind = SpanKind.CLIENT) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.kind == kind]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Otel:
    return Otel()


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def test_a_call_is_a_client_span_whose_figures_are_the_rows(
    provider: FakeProvider, stores: Any, otel: Otel
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider), stores.db, stores.storage, opentelemetry=otel.options
    )
    app = otel.tracer_provider.get_tracer("app")
    with app.start_as_current_span("handle request") as parent:
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    row = stores.one_row()
    [span] = otel.spans()
    attributes = dict(span.attributes or {})
    assert span.name == "chat gpt-4o"
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    # The row names the span, as lowercase hex of 32 and 16 characters.
    assert row["trace_id"] == _hex(span.context.trace_id, 32)
    assert row["span_id"] == _hex(span.context.span_id, 16)
    assert len(row["trace_id"]) == 32 and len(row["span_id"]) == 16
    assert row["trace_id"] == row["trace_id"].lower()
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.response.model"] == row["served_model"]
    # All input, cached included; all output, reasoning included (the conventions' counts).
    cached_in = row["cache_read_tokens"] + row["cache_write_5m_tokens"]
    assert attributes["gen_ai.usage.input_tokens"] == row["input_tokens"] + cached_in
    assert row["cache_read_tokens"] > 0 and row["reasoning_tokens"] > 0  # both sums tested
    output = row["output_tokens"] + row["reasoning_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == output
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == row["cache_read_tokens"]
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == row["reasoning_tokens"]
    assert Decimal(str(attributes["majordomo_log.cost.usd"])) == Decimal(str(row["total_cost"]))
    assert attributes["majordomo_log.request_id"] == row["request_id"]
    assert "error.type" not in attributes
    assert span.status.status_code == StatusCode.UNSET
    # The span lasts as long as the row says the call did.
    assert span.end_time is not None and span.start_time is not None
    duration_ms = (span.end_time - span.start_time) / 1e6
    assert duration_ms == pytest.approx(row["latency_ms"], abs=0.01)


async def test_metrics_are_the_rows_figures(
    provider: FakeProvider, stores: Any, otel: Otel
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider), stores.db, stores.storage, opentelemetry=otel.options
    )
    for model in ("gpt-4o", "gpt-4o", "gpt-4o-mini"):
        await llm.chat.completions.create(model=model, messages=MESSAGES)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    await llm.close()
    rows = stores.rows()
    durations = otel.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 4
    assert sum(p.sum for p in durations) == pytest.approx(sum(r["latency_ms"] for r in rows) / 1e3)
    tokens = otel.points("gen_ai.client.token.usage")
    by_type = {
        kind: sum(p.sum for p in tokens if p.attributes["gen_ai.token.type"] == kind)
        for kind in ("input", "output")
    }
    assert by_type["input"] == sum(
        r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_5m_tokens"] for r in rows
    )
    assert by_type["output"] == sum(r["output_tokens"] + r["reasoning_tokens"] for r in rows)
    mini = [p for p in durations if p.attributes.get("gen_ai.request.model") == "gpt-4o-mini"]
    assert [p.count for p in mini] == [1]
    [first_chunk] = otel.points("gen_ai.client.operation.time_to_first_chunk")
    [streamed] = [r for r in rows if r["stream"]]
    assert first_chunk.count == 1
    assert first_chunk.sum == pytest.approx(streamed["time_to_first_token_ms"] / 1e3)
    cost = sum(p.value for p in otel.points("majordomo_log.client.cost"))  # per model
    assert cost == pytest.approx(float(sum(Decimal(str(r["total_cost"])) for r in rows)))


async def test_a_failed_call_is_an_error_span(
    provider: FakeProvider, stores: Any, otel: Otel
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider, max_retries=0),
        stores.db,
        stores.storage,
        opentelemetry=otel.options,
    )
    provider.fail_next(400, message="bad request")
    with pytest.raises(openai.BadRequestError):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    row = stores.one_row()
    [span] = otel.spans()
    assert row["status"] == "error" and row["error_type"] == "BadRequestError"
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "BadRequestError"
    [duration] = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "BadRequestError"


async def test_an_explicit_tag_wins_over_the_span(
    provider: FakeProvider, stores: Any, otel: Otel
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider), stores.db, stores.storage, opentelemetry=otel.options
    )
    with ml.tags(trace_id="req-42"):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    row = stores.one_row()
    assert row["trace_id"] == "req-42"
    assert row["span_id"] is None  # a span id beside someone else's trace id would mislead
    assert len(otel.spans()) == 1  # the span is still made


class Reply:
    def __init__(self, model: str) -> None:
        self.model, self.input_tokens, self.output_tokens = model, 3, 2


class Custom:
    """A client of no known SDK whose results carry usage, and which looks at the span
    current while it runs."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def ask(self, model: str) -> Any:
        self.seen.append(trace.get_current_span().get_span_context())
        return Reply(model)

    async def list_files(self) -> list[str]:
        return ["not an LLM call"]


async def test_the_span_is_current_while_the_provider_is_called(stores: Any, otel: Otel) -> None:
    client = Custom()
    llm = ml.LoggingLLM(client, stores.db, stores.storage, opentelemetry=otel.options)
    await llm.ask(model="gpt-4o")
    await llm.list_files()  # not an LLM call: no span, no row
    await llm.close()
    [span] = otel.spans()
    assert client.seen[0].span_id == span.context.span_id
    assert len(stores.rows()) == 1
    assert trace.get_current_span().get_span_context().is_valid is False  # left afterwards


async def test_the_process_writer_ends_spans_in_this_process(
    provider: FakeProvider, stores: Any, otel: Otel
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider),
        stores.db,
        stores.storage,
        writer="process",
        opentelemetry=otel.options,
    )
    for _ in range(3):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    rows = {r["span_id"]: r for r in stores.rows()}
    spans = otel.spans()
    assert len(spans) == len(rows) == 3
    for span in spans:
        row = rows[_hex(span.context.span_id, 16)]
        cost = (span.attributes or {})["majordomo_log.cost.usd"]
        assert Decimal(str(cost)) == Decimal(str(row["total_cost"]))
    assert sum(p.count for p in otel.points("gen_ai.client.operation.duration")) == 3


async def test_a_dropped_call_still_ends_its_span(
    provider: FakeProvider, tmp_path: Path, otel: Otel
) -> None:
    class DownStore:
        """A store that is never reachable: with no spool, the queue fills and drops."""

        dialect, url = "sqlite", "sqlite:///down"

        async def migrate(self) -> list[str]:
            return []

        async def write_batch(self, rows: Any, outcomes: Any) -> None:
            raise ml.StoreUnavailable("down")

        async def fetch(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
            return []

        async def close(self) -> None:
            pass

    llm = ml.LoggingLLM(
        fake_openai_client(provider),
        DownStore(),
        None,
        spool=False,
        max_queue_records=2,
        max_retries=0,
        opentelemetry=otel.options,
    )
    for _ in range(4):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stats = llm.stats()
    assert stats.dropped_by_reason.get("queue_full", 0) >= 1
    dropped = [s for s in otel.spans() if (s.attributes or {}).get("majordomo_log.dropped")]
    assert len(dropped) == stats.dropped_by_reason["queue_full"]
    await llm.close(timeout=0.5)


async def test_off_means_no_span_and_no_ids(
    provider: FakeProvider, stores: Any, otel: Otel
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider), stores.db, stores.storage, opentelemetry=False
    )
    with otel.tracer_provider.get_tracer("app").start_as_current_span("handler"):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    row = stores.one_row()
    assert (row["trace_id"], row["span_id"]) == (None, None)
    assert otel.spans() == []


def test_bad_options_are_config_errors(stores: Any) -> None:
    for bad, message in (("yes", "opentelemetry must be"),):
        with pytest.raises(ml.ConfigError, match=message):
            ml.LoggingLLM(Custom(), "sqlite:///:memory:", opentelemetry=bad)
    with pytest.raises(ml.ConfigError, match="observe"):
        ml.LoggingLLM(Custom(), "sqlite:///:memory:", metrics=[object()])


def _run(code: str, tmp_path: Path) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


_GLOBAL = """
    import asyncio, sqlite3
    import majordomo_log as ml  # imported before the provider is configured
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class Reply:
        def __init__(self, model):
            self.model, self.input_tokens, self.output_tokens = model, 3, 2

    class Custom:
        async def ask(self, model):
            return Reply(model)

    async def main():
        exporter = InMemorySpanExporter()
        if {configure}:
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
        async with ml.LoggingLLM(Custom(), "log.db") as llm:
            await llm.ask(model="gpt-4o")
        [(trace_id, span_id)] = sqlite3.connect("log.db").execute(
            "SELECT trace_id, span_id FROM llm_requests").fetchall()
        spans = exporter.get_finished_spans()
        print(len(spans), trace_id, span_id,
              spans and format(spans[0].context.span_id, "016x") == span_id)

    asyncio.run(main())
"""


def test_a_provider_configured_after_import_is_honoured(tmp_path: Path) -> None:
    count, trace_id, span_id, same = _run(_GLOBAL.format(configure=True), tmp_path).split()
    assert count == "1" and same == "True"
    assert len(trace_id) == 32 and len(span_id) == 16


def test_not_configured_means_no_span(tmp_path: Path) -> None:
    assert _run(_GLOBAL.format(configure=False), tmp_path).split() == ["0", "None", "None", "()"]


def test_without_opentelemetry_installed(tmp_path: Path) -> None:
    code = """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import majordomo_log as ml

        class Reply:
            def __init__(self, model):
                self.model, self.input_tokens, self.output_tokens = model, 3, 2

        class Custom:
            async def ask(self, model):
                return Reply(model)

        async def main():
            async with ml.LoggingLLM(Custom(), "log.db") as llm:
                await llm.ask(model="gpt-4o")
                print(llm.stats().internal_errors)
            try:
                ml.LoggingLLM(Custom(), "log2.db", opentelemetry=True)
            except ml.ConfigError as exc:
                print(exc)

        asyncio.run(main())
    """
    lines = _run(code, tmp_path).splitlines()
    assert lines[0] == "0"
    assert 'pip install "majordomo-log[otel]"' in lines[1]
