"""A wrapper cannot be built on a closed store: a StoreError names the store."""

from __future__ import annotations

import re
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_wrapper_on_closed_store_raises_store_error_naming_it(
    provider: FakeProvider, stores: Any
) -> None:
    await stores.db.close()
    with pytest.raises(ml.StoreError, match=re.escape(str(stores.db_path))):
        ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
