"""Request ids: UUIDv7 strings formatted when first read, the same from any thread."""

from __future__ import annotations

import threading
import uuid

from hypothesis import given
from hypothesis import strategies as st

from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.ids import format_uuid7, uuid7
from majordomo_log.record.pricing import default_prices


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**74 - 1))
def test_the_string_is_a_uuid7_of_the_time_and_the_bits(unix_ms: int, bits: int) -> None:
    text = format_uuid7(unix_ms, bits)
    parsed = uuid.UUID(text)
    assert str(parsed) == text
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert parsed.int >> 80 == unix_ms
    # all 74 random bits survive: 12 after the version, 62 after the variant
    assert ((parsed.int >> 64) & 0xFFF, parsed.int & (2**62 - 1)) == (bits >> 62, bits % 2**62)


def test_ids_sort_by_time() -> None:
    ids = [uuid7(ms) for ms in (1, 2, 10, 2**40, 2**47 + 5)]
    assert ids == sorted(ids)


def test_a_record_formats_its_id_once_and_every_thread_reads_the_same() -> None:
    ctx = CallContext(default_prices(), None, {}, ())
    record = CallRecord(
        None, 1_764_900_000.5, 0.0, "openai", "chat", "gpt-4o", False, None, None, ctx
    )
    assert record.request_id_text is None  # nothing formatted on the caller's path
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(record.request_id)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1
    assert uuid.UUID(seen[0]).int >> 80 == 1_764_900_000_500
    other = CallRecord(
        None, 1_764_900_000.5, 0.0, "openai", "chat", "gpt-4o", False, None, None, ctx
    )
    assert other.request_id != seen[0]  # fresh random bits per record
    given_id = CallRecord("fixed-id", 0.0, 0.0, "openai", "chat", None, False, None, None, ctx)
    assert given_id.request_id == "fixed-id"
