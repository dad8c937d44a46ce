"""A log an older release created (migration 0001 only): the dashboard never migrates,
so it reads the columns later migrations added as unknown, and every page still shows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from dashboard_log import drop, log_url, run
from servers import DIALECTS
from ui_log import NOW

import majordomo_log as ml
from majordomo_log.dashboard import queries
from majordomo_log.dashboard.params import overview_params
from majordomo_log.stores.sql import migrate, mysql, postgres, sqlite


@pytest.fixture(params=DIALECTS)
def old_log(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    dialect = request.param
    name = f"mdl_old_{uuid.uuid4().hex[:10]}"
    url = log_url(dialect, tmp_path_factory.mktemp(f"old-{dialect}"), name)
    everything = migrate.migrations_for
    with monkeypatch.context() as patch:
        for module in (sqlite, postgres, mysql):
            patch.setattr(module, "migrations_for", lambda d: everything(d)[:1])

        async def create() -> None:
            db = await ml.open_db(url)
            await db.close()

        run(create())
    try:
        yield url
    finally:
        if dialect != "sqlite":
            run(drop(dialect, name))


async def test_the_overview_of_an_old_log(old_log: str) -> None:
    db = await ml.open_db(old_log, read_only=True)
    try:
        assert "cache_savings" in await queries.missing_columns(db)
        query = {"until": [NOW.isoformat()], "by": ["feature"]}
        view = await queries.overview(db, overview_params(query, NOW))
        assert view.total.calls == 0 and view.groups == []
    finally:
        await db.close()
