"""With a fleet counter, a threshold crossing is alerted once across the processes that
share a budget, not once per process: each process claims the alert in Redis first."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from servers import require

from majordomo_log.testing.receiver import AlertReceiver

pytestmark = pytest.mark.servers

WORKER = textwrap.dedent(
    """
    import sys
    import majordomo_log as ml
    from majordomo_log.testing import FakeProvider, fake_sync_openai_client

    db, redis_url, hook, name = sys.argv[1:5]
    provider = FakeProvider(openai_usage={"prompt_tokens": 1000, "completion_tokens": 100})
    budget = ml.Budget(limit_requests=4, per="day", thresholds=(1.0,), name=name)
    with ml.LoggingLLM(
        fake_sync_openai_client(provider), db, budgets=[budget],
        alerts=[ml.WebhookAlert(hook)], budget_store=redis_url,
    ) as llm:
        for _ in range(4):
            llm.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
    """
)


def test_a_crossing_seen_by_two_processes_is_alerted_once(tmp_path: Path) -> None:
    redis_url = require("redis")
    name = f"fleet-alert-{uuid.uuid4().hex[:8]}"  # a fresh counter and alert key
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    with AlertReceiver() as receiver:
        # Each process alone reaches the 4-request limit (its own 4 calls): both see the
        # crossing, and only the first to claim it in Redis sends it.
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(tmp_path / f"log{i}.db"),
                    redis_url,
                    receiver.url,
                    name,
                ],
            )
            for i in range(2)
        ]
        for worker in workers:
            assert worker.wait(timeout=120) == 0
        assert receiver.wait_for(1, timeout=10)
        time.sleep(0.5)
        sent = receiver.requests
    assert len(sent) == 1
    assert sent[0].json["budget"] == name and sent[0].json["threshold"] == 1.0
