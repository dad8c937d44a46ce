"""Production setup: many application instances logging into one PostgreSQL.

    MAJORDOMO_LOG_DB=postgresql://app@db.internal/llm?schema=llm_log \
    MAJORDOMO_LOG_STORAGE=s3://my-llm-archive/llm-logs?region=eu-west-1 \
    MAJORDOMO_LOG_KEY_SECRET=... \
    python recipes/postgres/app.py

Without OPENAI_API_KEY it talks to majordomo_log.testing's in-process fake, so the
recipe runs end to end anywhere a PostgreSQL answers (tests/test_recipes.py runs it).
"""

from __future__ import annotations

import asyncio
import os

import majordomo_log as ml


def make_client() -> object:
    if os.environ.get("OPENAI_API_KEY"):
        import openai

        return openai.AsyncOpenAI()
    from majordomo_log.testing import FakeProvider, fake_openai_client

    return fake_openai_client(FakeProvider())


async def main() -> None:
    # One pool per process; the schema is created and migrated on first start.
    db = await ml.open_db(os.environ["MAJORDOMO_LOG_DB"])
    storage = await ml.open_storage(os.environ.get("MAJORDOMO_LOG_STORAGE", "file://request_logs"))
    async with ml.LoggingLLM(
        make_client(),
        db,
        storage,
        api_key_alias=os.environ.get("OPENAI_KEY_ALIAS", "prod"),
        tags={"environment": os.environ.get("APP_ENV", "production")},
    ) as llm:
        # In a web app this is one request handler; tags follow the request.
        with ml.tags(feature="support-chat", user_id="u-42", session_id="s-1"):
            reply = await llm.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order?"}]
            )
        info = ml.call_info(reply)
        print(f"logged {info.request_id}: {info.total_tokens} tokens, ${info.total_cost}")
        await llm.record_outcome(info.request_id, "accepted")
    # Leaving the block flushed the queue and closed the pool and the body store.

    # Analysts query the same database with plain SQL, or the shipped views:
    db = await ml.open_db(os.environ["MAJORDOMO_LOG_DB"])
    try:
        for row in await db.fetch(
            "SELECT day, model, calls, total_cost FROM llm_daily_spend ORDER BY day DESC, model"
        ):
            print(row)
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
