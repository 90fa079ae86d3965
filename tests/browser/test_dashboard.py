"""The commissioner dashboard in a real headless browser (Debian's chromium, via Playwright).

The service runs on a loopback port with 60 days of seeded evaluations and feedback from
patients registered at practices in three places (and some at none); the test signs in with
the admin token, checks the people-assessed count, the place × outcome table, that every chart
drew its data, the date filter, the CSV download, and runs axe-core for serious or critical
accessibility violations. Screenshots: test-artifacts/analytics*.png.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser, Page

import store
from service import create_app
from service.state import state_of
from tests.browser.axe import serious_violations
from tests.browser.greyscale import indistinct, series_greys
from tests.service_process import serving
from tests.store.conftest import HASH_KEY, Clock
from tests.store.seed import accepted, order_select, overridden, post_feedback

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
ADMIN = "dashboard-admin-token-9d8c7b6a"
END = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
CHARTS = ("c-people", "c-places", "c-trend", "c-reasons", "c-blocking")
OPS_CHARTS = ("c-latency", "c-prefetch")
PRACTICES = {"B81001": "hull", "B82002": "north-yorkshire", "B82003": "vale-of-york"}


def seed(app: Flask, clock: Clock) -> None:
    """60 days of order-select calls (real hooks) and clinicians' feedback on their cards, plus
    patient-view evaluations whose records were partly read from the FHIR server."""
    rng = random.Random(7)
    kinds = ["meets", "insufficient", "insufficient", "does-not-meet", "insufficient"]
    s = state_of(app).store
    with app.test_client() as client:
        for day in range(60):
            clock.now = END - timedelta(days=59 - day)
            for i in range(2 + rng.randrange(6)):
                kind = rng.choice(kinds)
                practice = rng.choice([*PRACTICES, None])
                pid = f"p{rng.randrange(120)}"  # people come back: fewer people than checks
                resp = client.post(
                    "/cds-services/iport-advance-order-select",
                    json=order_select(kind, pid, f"{day}-{i}", practice),
                )
                (card,) = resp.json["cards"]
                at = (clock.now + timedelta(minutes=2)).isoformat()
                roll = rng.random()
                if kind == "insufficient" and roll < 0.35:
                    post_feedback(client, accepted(card, at=at))
                elif roll < 0.75:
                    post_feedback(client, overridden(card, reason=rng.randrange(5), at=at))
            s.record(
                store.AuditRecord(
                    recorded_at=clock.now,
                    service_id="iport-advance-patient-view",
                    hook="patient-view",
                    hook_instance=f"pv-{day}",
                    patient_hash=store.patient_hash(HASH_KEY.encode(), f"p{day}"),
                    outcome="insufficient-information",
                    pathway="type-1",
                    policy_id="hny-iport-advance",
                    policy_version="2025-12-04",
                    cards=(),
                    criteria=(store.CriterionRecord("needle-phobia", "unknown", True),),
                    prefetch_keys=("patient", "conditions"),
                    fetched_keys=("hba1c", "medications", "findings"),
                    fhir_requests=3,
                    fetch_ms=rng.uniform(80, 400),
                    total_ms=rng.uniform(120, 450),
                )
            )
    assert s.flush(30)
    clock.now = END


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    clock = Clock(END)
    folder = tmp_path_factory.mktemp("dashboard")
    db = folder / "audit.sqlite3"
    practices = folder / "practices.csv"
    practices.write_text(
        "practice_code,place\n" + "".join(f"{c},{p}\n" for c, p in PRACTICES.items()),
        encoding="utf-8",
    )
    settings = {
        "PLACE_BY_PRACTICE_FILE": str(practices),
        "REQUIRE_AUTH": False,
        "DATABASE_URL": store.sqlite_url(db),
        "AUDIT_HASH_KEY": HASH_KEY,
        "ANALYTICS_TOKEN": ADMIN,
        "CLOCK": clock,
        "LOG_LEVEL": "WARNING",
    }
    # Exact figures (a local audit), so the page can be checked against sums of the seed.
    app = create_app({**settings, "SMALL_NUMBER_THRESHOLD": 0})
    seed(app, clock)
    # The same database as commissioners see it by default: small numbers suppressed.
    protected = create_app(settings)
    with serving(app) as exact_url, serving(protected) as protected_url:
        yield {"exact": exact_url, "protected": protected_url}


@pytest.fixture(scope="module")
def service_url(services: dict[str, str]) -> str:
    return services["exact"]


@pytest.fixture(scope="module")
def protected_url(services: dict[str, str]) -> str:
    return services["protected"]


def figures(url: str, query: str) -> dict[str, Any]:
    with requests.Session() as http:
        resp = http.get(
            f"{url}/analytics.json?{query}",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data


def chart_state(page: Page, canvas_id: str) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """(id) => {
            const c = document.getElementById(id);
            const box = c.getBoundingClientRect();
            const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let painted = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
            const chart = Chart.getChart(c);
            const sums = chart.data.datasets.map(
                (d) => d.data.reduce((a, b) => a + (Number(b) || 0), 0));
            return {width: box.width, height: box.height, painted, sums};
        }""",
        canvas_id,
    )
    return state


def wait_for_render(page: Page, n: int) -> None:
    page.wait_for_function(
        "(n) => document.body.dataset.state === 'ready'"
        " && Number(document.body.dataset.renders) >= n",
        arg=n,
        timeout=15_000,
    )


def cell_numbers(page: Page, table: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        f"#{table} tbody tr",
        "rows => rows.map(r => Array.from(r.children).map(c => c.textContent.trim()))",
    )
    return rows


def test_dashboard_draws_the_figures_and_follows_the_date_filter(
    browser: Browser, service_url: str
) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # Without the token: the sign-in form, not the figures.
        page.goto(f"{service_url}/analytics?from=2026-09-23&to=2026-11-21")
        assert page.locator("input[name=token]").is_visible()
        errors.clear()  # the 401 status of the sign-in page itself is logged by the browser
        page.fill("input[name=token]", ADMIN)
        page.click("button[type=submit]")
        page.wait_for_url("**/analytics")
        page.goto(f"{service_url}/analytics?from=2026-09-23&to=2026-11-21")
        wait_for_render(page, 1)

        expected = figures(service_url, "from=2026-09-23&to=2026-11-21")
        totals = expected["totals"]
        people = expected["people"]["assessed"]
        assert totals["evaluations"] > 200
        assert 50 < people < totals["evaluations"]  # people come back: fewer people than calls
        assert page.text_content("#t-people") == f"{people:,}"
        assert page.text_content("#t-evaluations") == f"{totals['evaluations']:,}"
        assert page.text_content("#t-cards") == f"{totals['cards']:,}"
        assert page.text_content("#t-override") == f"{totals['overrideRate'] * 100:.1f}%"
        offered = expected["feedbackByOffer"]["withSuggestions"]["overrideRate"]
        assert page.text_content("#t-override-offered") == f"{offered * 100:.1f}%"
        # The override rate is no headline tile: it sits with its caveat beneath the figures
        # that answer who meets the criteria.
        assert page.locator(".tiles #t-override").count() == 0
        below = page.evaluate(
            """() => ["cap-people", "cap-places", "t-override"].map(
                (id) => document.getElementById(id).getBoundingClientRect().top + scrollY)"""
        )
        assert below[0] < below[2]
        assert below[1] < below[2]

        # The place × outcome table: every place, unknown last, numbers as in the JSON.
        places = cell_numbers(page, "tbl-places")
        assert [r[1] for r in places] == [
            "Hull",
            "North Yorkshire",
            "Vale of York",
            "Unknown place",
        ]
        for row, want in zip(places, expected["people"]["byPlace"], strict=True):
            assert row[2:] == [
                f"{want[k]:,}"
                for k in (
                    "meets-criteria",
                    "does-not-meet-criteria",
                    "insufficient-information",
                    "total",
                )
            ]
        assert sum(int(r[5].replace(",", "")) for r in places) == people
        by_policy = cell_numbers(page, "tbl-by-policy")
        assert [r[1] for r in by_policy] == [
            f"{expected['byPolicy'][p['key']]['evaluations']:,}" for p in expected["policies"]
        ]
        calls = {r[0]: r[1] for r in cell_numbers(page, "tbl-calls")}
        assert calls["Data missing"] == (
            f"{expected['evaluationsByOutcome']['insufficient-information']:,}"
        )
        assert "high by construction" in " ".join(page.text_content("#override-explain").split())

        # Long labels are cut to two short lines, the full name in the table beside the chart.
        drawn = page.evaluate(
            """() => ["c-people", "c-places", "c-blocking", "c-reasons"].map((id) => {
                const chart = Chart.getChart(document.getElementById(id));
                return {labels: chart.data.labels, ticks: chart.scales.y.ticks.map((t) => t.label)};
            })"""
        )
        for chart in drawn:
            assert len(chart["ticks"]) == len(chart["labels"])  # every bar named
            for tick in chart["ticks"]:
                assert isinstance(tick, list), tick
                assert len(tick) <= 2, tick
                assert all(len(line) <= 32 for line in tick), tick
        assert any(len(label) > 32 for chart in drawn for label in chart["labels"])
        # Every outcome stays apart in greyscale, and in the report's style for its word.
        page.locator("#c-places").scroll_into_view_if_needed()
        greys = series_greys(page, "c-places")
        assert {g.series for g in greys} == {"meets", "does not meet", "data missing"}
        assert indistinct(greys) == []
        page.locator("#c-trend").scroll_into_view_if_needed()
        assert indistinct(series_greys(page, "c-trend")) == []

        for canvas in CHARTS:
            state = chart_state(page, canvas)
            assert state["width"] > 200, (canvas, state)
            assert state["height"] > 100, (canvas, state)
            assert state["painted"] > 500, (canvas, state)  # bars and axes, not a blank canvas
            assert sum(state["sums"]) > 0, (canvas, state)
        assert sum(chart_state(page, "c-trend")["sums"]) == totals["evaluations"]
        assert sum(chart_state(page, "c-reasons")["sums"]) == totals["overridden"]
        assert page.text_content("#trend-bin") == "per day"
        assert page.locator("#tbl-blocking tbody tr").count() >= 3
        access = expected["access"]
        assert access["calls"] > 200  # every order-select call of the seed went over HTTP
        assert page.text_content("#access-calls") == f"{access['calls']:,}"
        assert page.locator("#tbl-access tbody tr").first.text_content() == (
            f"HTTP 200{access['byStatus']['200']:,}"
        )
        assert "Type 1 diabetes" not in page.text_content("#tbl-blocking")  # a gate, left out

        # Operations are collapsed; opened, their charts draw too.
        assert not page.locator("#c-latency").is_visible()
        page.click("#ops summary")
        for canvas in OPS_CHARTS:
            page.wait_for_function(
                "(id) => document.getElementById(id).getBoundingClientRect().width > 200",
                arg=canvas,
            )
            assert chart_state(page, canvas)["painted"] > 500, canvas

        # The CSV download: what the filters show, columns a spreadsheet can use.
        with page.expect_download() as download_info:
            page.click("#csv-link")
        raw = Path(download_info.value.path()).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(raw[3:].decode("utf-8"))))
        assert len(rows) == totals["evaluations"]
        assert {"recorded (Europe/London)", "place", "outcome", "person (hash)"} <= set(rows[0])
        assert "criterion: Needle phobia / significant injection anxiety" in rows[0]
        assert {r["place"] for r in rows} == {
            "Hull",
            "North Yorkshire",
            "Vale of York",
            "Unknown place",
        }

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "analytics.png"), full_page=True)

        # A shorter range and one place: the figures change to match /analytics.json.
        page.fill("#from", "2026-11-15")
        page.select_option("#place", "hull")
        page.click("#apply")
        wait_for_render(page, 2)
        week = figures(service_url, "from=2026-11-15&to=2026-11-21&place=hull")
        assert week["totals"]["evaluations"] < totals["evaluations"]
        assert page.text_content("#t-people") == f"{week['people']['assessed']:,}"
        assert page.text_content("#t-evaluations") == f"{week['totals']['evaluations']:,}"
        assert sum(chart_state(page, "c-trend")["sums"]) == week["totals"]["evaluations"]
        assert [r[1] for r in cell_numbers(page, "tbl-places")] == ["Hull"]
        assert "from=2026-11-15" in page.url
        assert "place=hull" in page.url

        # A year: monthly bins, not 365 bars.
        page.fill("#from", "2025-11-22")
        page.select_option("#place", "")
        page.click("#apply")
        wait_for_render(page, 3)
        assert page.text_content("#trend-bin") == "per month"
        assert len(chart_state(page, "c-trend")["sums"]) == 4  # one dataset per outcome
        assert errors == []
    finally:
        context.close()


def test_no_serious_accessibility_violations_and_a_friendly_bad_range_page(
    browser: Browser, service_url: str
) -> None:
    # axe is injected as an inline script: this context alone sets the page's CSP aside.
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    context.set_extra_http_headers({"Authorization": f"Bearer {ADMIN}"})
    page = context.new_page()
    try:
        page.goto(f"{service_url}/analytics?from=2026-09-23&to=2026-11-21")
        wait_for_render(page, 1)
        page.click("#ops summary")
        page.click("#cap-trend ~ details summary")
        assert serious_violations(page) == []

        page.goto(f"{service_url}/analytics?from=2026-11-21&to=2026-09-23")
        assert page.text_content("h2") == "The figures could not be shown for those filters"
        assert "'from' must not be after 'to'" in page.text_content("[role=alert]")
        assert serious_violations(page) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "analytics-bad-range.png"))

        page.goto(f"{service_url}/analytics?from=2026-09-23&to=2026-11-21")
        wait_for_render(page, 1)
        page.emulate_media(color_scheme="light")
        page.add_style_tag(content="html { filter: grayscale(1); }")
        page.screenshot(path=str(ARTIFACTS / "analytics-greyscale.png"), full_page=True)
    finally:
        context.close()


SMALL = re.compile(r"^[1-7]$")


def json_small_counts(value: Any) -> list[Any]:
    """Whole numbers from 1 to 7 anywhere in the figures (the disclosure settings aside)."""
    if isinstance(value, dict):
        return [x for k, v in value.items() if k != "disclosure" for x in json_small_counts(v)]
    if isinstance(value, list):
        return [x for v in value for x in json_small_counts(v)]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7:
        return [value]
    return []


def test_by_default_no_count_from_1_to_7_is_shown_and_the_page_says_why(
    browser: Browser, protected_url: str
) -> None:
    """The same 60 days as commissioners see them: daily counts are small, so the trend table
    reads '<8' where the exact page has 1 to 7; every other count is a multiple of 5; the note
    on the page says what '<8' and '*' mean; axe-core finds nothing serious."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    context.set_extra_http_headers({"Authorization": f"Bearer {ADMIN}"})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{protected_url}/analytics?from=2026-09-23&to=2026-11-21")
        wait_for_render(page, 1)
        page.click("#ops summary")
        page.click("#cap-trend ~ details summary")
        data = figures(protected_url, "from=2026-09-23&to=2026-11-21")
        assert json_small_counts(data) == []
        note = page.text_content("#disclosure-note") or ""
        assert "a count from 1 to 7 is shown as “<8”" in note
        assert "rounded to the nearest 5" in note
        assert page.locator("#disclosure-note").is_visible()
        # Every table cell that holds a count (response times in milliseconds are no count).
        cells: list[str] = page.eval_on_selector_all(
            "table:not(#tbl-latency) td", "cells => cells.map(c => c.textContent.trim())"
        )
        assert [c for c in cells if SMALL.match(c)] == []
        assert "<8" in cells  # the per-day trend: 2 to 7 checks a day
        numbers = [int(c.replace(",", "")) for c in cells if re.fullmatch(r"[\d,]+", c)]
        assert numbers
        assert all(n % 5 == 0 for n in numbers)
        for tile in ("#t-people", "#t-evaluations", "#t-cards"):
            shown = (page.text_content(tile) or "").replace(",", "")
            assert shown == "<8" or int(shown) % 5 == 0, (tile, shown)
        for canvas in CHARTS:
            assert chart_state(page, canvas)["painted"] > 500, canvas
        assert serious_violations(page) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "analytics-suppressed.png"), full_page=True)
        assert errors == []
    finally:
        context.close()
