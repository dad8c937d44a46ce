"""The dashboard in a real headless browser (Debian's Chromium through Playwright), on
SQLite and PostgreSQL: the spend table against SQL, the chart drawn (read from a
screenshot), a call's body shown with hostile text as text, and the browser never asked
for anything but the dashboard itself, nor refused anything under its CSP.

Skipped with the reason when Playwright or Chromium is missing; failed instead in CI
(tests/support/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from browser import chromium, colored_pixels, require_browser
from dashboard_log import HOSTILE_FEATURE, HOSTILE_PROMPTS, run, seeded_log
from ui_log import NOW, NOW_TEXT, Log, direct_sql

from majordomo_log.dashboard import Dashboard
from majordomo_log.dashboard.html import money

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Log, str]]:
    require_browser()  # before seeding: a machine without a browser skips at once
    with (
        seeded_log(request.param, tmp_path_factory.mktemp("ui-browser"), now=NOW) as seeded,
        Dashboard(seeded.db_url, seeded.storage_url, port=0) as dashboard,
    ):
        yield Log(request.param, seeded), dashboard.url


class Watched:
    """A page, and what the browser did while showing it."""

    def __init__(self, browser: Any, base: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on(
            "console", lambda m: m.type in ("error", "warning") and self.problems.append(m.text)
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.base = base

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, path
        return self.page

    def close(self) -> None:
        self.page.close()
        assert [u for u in self.requests if not u.startswith(self.base)] == []
        assert self.problems == [] and self.dialogs == []


@pytest.fixture
def watched(browser: Any, served: tuple[Log, str]) -> Iterator[Watched]:
    w = Watched(browser, served[1])
    yield w
    w.close()


def sql(log: Log, query: str) -> list[tuple[Any, ...]]:
    return run(direct_sql(log, query))  # Playwright's loop is this thread's


def dec(value: Any) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(Decimal("1e-10")).normalize()
    return Decimal(str(value)).normalize()


def test_the_spend_by_model_table_beside_the_chart_matches_sql(
    served: tuple[Log, str], watched: Watched
) -> None:
    log, _ = served
    page = watched.open(f"?window=30d&until={NOW_TEXT}")
    assert page.locator("h2", has_text="Spend by model").is_visible()
    lines = page.locator("#spend-table tbody tr")
    shown = {}
    for i in range(lines.count()):
        cells = lines.nth(i).locator("th, td")
        model = cells.nth(0).inner_text()
        spend = cells.nth(2)
        shown[model] = (
            int(cells.nth(1).inner_text().replace(",", "")),
            spend.get_attribute("data-value"),
            spend.inner_text(),
        )
    expected = sql(
        log,
        "SELECT model, SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END), SUM(total_cost)"
        " FROM llm_requests GROUP BY model",
    )
    assert {m: (c, dec(v) if v else None) for m, (c, v, _) in shown.items()} == {
        m: (int(c), dec(s) if s is not None else None) for m, c, s in expected
    }
    for model, (_, value, text) in shown.items():  # the text read is the exact figure
        assert text == money(Decimal(value) if value else None), model
    # the table sits beside the chart, not under it
    chart, table = (
        page.locator("#spend-chart").bounding_box(),
        page.locator("#spend-table").bounding_box(),
    )
    assert chart and table and table["x"] >= chart["x"] + chart["width"] - 1


def test_the_chart_draws_its_lines(watched: Watched) -> None:
    page = watched.open(f"?window=14d&until={NOW_TEXT}")
    page.wait_for_selector("#spend-chart[data-drawn]")
    assert page.locator("#spend-chart canvas").count() == 1
    drawn = colored_pixels(page.locator("#spend-chart").screenshot())
    page = watched.open("?window=14d&until=2001-01-01")  # a window with no calls
    page.wait_for_selector("#spend-chart[data-drawn]")
    assert page.locator("#no-calls").is_visible()
    empty = colored_pixels(page.locator("#spend-chart").screenshot())
    assert empty < 50 < 2000 < drawn, (empty, drawn)


def test_hourly_and_by_a_hostile_group_name(watched: Watched) -> None:
    page = watched.open(f"?by=feature&step=hour&window=14d&until={NOW_TEXT}")
    page.wait_for_selector("#spend-chart[data-drawn]")
    assert page.evaluate("window.__pwned") is None
    names = page.locator("#spend-table tbody th").all_inner_texts()
    assert HOSTILE_FEATURE in names  # as text, in the table
    legend = page.locator("#spend-chart .u-legend").inner_text()
    assert HOSTILE_FEATURE in legend  # and on the chart's legend
    assert page.locator("#spend-chart img").count() == 0


def test_a_calls_page_shows_its_body_and_runs_no_hostile_text(
    served: tuple[Log, str], watched: Watched
) -> None:
    log, _ = served
    page = watched.open(f"calls?window=30d&until={NOW_TEXT}&limit=5")
    first = page.locator("#calls-table tbody tr").first.locator("a")
    request_id = first.inner_text()
    first.click()
    page.wait_for_url(f"**/call/{request_id}")
    assert page.locator("#body-json").inner_text().count(request_id) == 1
    operations = {row.request_id: row.operation for row in log.seeded.rows}
    assert len(log.seeded.hostile_ids) >= 3
    for request_id in log.seeded.hostile_ids:
        page = watched.open(f"call/{request_id}")
        prompt = page.locator("#request article pre").last.inner_text()  # the user's turn
        assert prompt in HOSTILE_PROMPTS
        if operations[request_id] != "embeddings":  # an embedding's response is no text
            reply = page.locator("#response article pre").first.inner_text()
            assert reply == f"Reply to: {prompt}"
        assert prompt in page.locator("#body-json").inner_text().replace('\\"', '"')
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main img, main b, main script").count() == 0


def test_the_budgets_page(served: tuple[Log, str], watched: Watched) -> None:
    page = watched.open("budgets")
    names = set(page.locator("#budgets-table tbody th").all_inner_texts())
    assert names == {"all time", "per feature", "daily per user", "monthly tokens"}
    assert (
        page.locator("#budgets-table meter").count()
        == page.locator("#budgets-table tbody tr").count()
    )
