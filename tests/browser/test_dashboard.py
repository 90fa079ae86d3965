"""The commissioner dashboard in a real headless browser (Debian's chromium, via Playwright).

The service runs on a loopback port with 60 days of seeded evaluations and feedback; the test
signs in with the admin token, checks that every chart drew its data, changes the date filter
and checks the figures follow. Screenshot: test-artifacts/analytics.png.
"""

from __future__ import annotations

import random
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

import store
from service import create_app
from tests.service_process import free_port
from tests.store import debian
from tests.store.conftest import HASH_KEY, Clock
from tests.store.seed import accepted, order_select, overridden, post_feedback

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ADMIN = "dashboard-admin-token-9d8c7b6a"
END = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
CHARTS = ("c-cards", "c-reasons", "c-blocking", "c-latency", "c-prefetch")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    debian.ensure(["chromium", "fonts-dejavu-core"], lambda: shutil.which("chromium") is not None)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def seed(app: Flask, clock: Clock) -> None:
    """60 days of order-select calls (real hooks) and clinicians' feedback on their cards, plus
    patient-view evaluations whose records were partly read from the FHIR server."""
    rng = random.Random(7)
    kinds = ["meets", "insufficient", "insufficient", "does-not-meet", "insufficient"]
    s: store.Store = app.extensions["iport_cds.store"]
    with app.test_client() as client:
        for day in range(60):
            clock.now = END - timedelta(days=59 - day)
            for i in range(2 + rng.randrange(6)):
                kind = rng.choice(kinds)
                resp = client.post(
                    "/cds-services/iport-advance-order-select",
                    json=order_select(kind, pid=f"p{day}-{i}", hook_instance=f"{day}-{i}"),
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
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    clock = Clock(END)
    db = tmp_path_factory.mktemp("dashboard") / "audit.sqlite3"
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "DATABASE_URL": store.sqlite_url(db),
            "AUDIT_HASH_KEY": HASH_KEY,
            "ANALYTICS_TOKEN": ADMIN,
            "CLOCK": clock,
            "LOG_LEVEL": "WARNING",
        }
    )
    seed(app, clock)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        app.extensions["iport_cds.store"].close()


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


def test_dashboard_draws_the_figures_and_follows_the_date_filter(
    browser: Browser, service_url: str
) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
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
        assert totals["evaluations"] > 200
        assert page.text_content("#t-evaluations") == f"{totals['evaluations']:,}"
        assert page.text_content("#t-cards") == f"{totals['cards']:,}"
        assert page.text_content("#t-override") == f"{totals['overrideRate'] * 100:.1f}%"

        for canvas in CHARTS:
            state = chart_state(page, canvas)
            assert state["width"] > 200, (canvas, state)
            assert state["height"] > 100, (canvas, state)
            assert state["painted"] > 500, (canvas, state)  # bars and axes, not a blank canvas
            assert sum(state["sums"]) > 0, (canvas, state)
        cards_chart = chart_state(page, "c-cards")
        assert sum(cards_chart["sums"]) == totals["cards"]
        reasons = chart_state(page, "c-reasons")
        assert sum(reasons["sums"]) == totals["overridden"]
        assert page.locator("#tbl-blocking tbody tr").count() >= 3
        access = expected["access"]
        assert access["calls"] > 200  # every order-select call of the seed went over HTTP
        assert page.text_content("#access-calls") == f"{access['calls']:,}"
        assert page.locator("#tbl-access tbody tr").first.text_content() == (
            f"HTTP 200{access['byStatus']['200']:,}"
        )

        # A shorter range: the figures change to match /analytics.json for that range.
        page.fill("#from", "2026-11-15")
        page.click("#apply")
        wait_for_render(page, 2)
        week = figures(service_url, "from=2026-11-15&to=2026-11-21")["totals"]
        assert week["evaluations"] < totals["evaluations"]
        assert page.text_content("#t-evaluations") == f"{week['evaluations']:,}"
        assert page.text_content("#t-cards") == f"{week['cards']:,}"
        assert sum(chart_state(page, "c-cards")["sums"]) == week["cards"]
        assert "from=2026-11-15" in page.url

        ARTIFACTS.mkdir(exist_ok=True)
        page.fill("#from", "2026-09-23")
        page.click("#apply")
        wait_for_render(page, 3)
        page.screenshot(path=str(ARTIFACTS / "analytics.png"), full_page=True)
        assert errors == []
    finally:
        context.close()
