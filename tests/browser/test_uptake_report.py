"""The population uptake-gap report opened in Debian's Chromium: every chart draws from the
numbers in its table, and axe-core finds no serious or critical accessibility violation.
Screenshot: test-artifacts/uptake-report.png."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from disclosure import Disclosure
from policy.loading import policy_names
from policy.outcome_words import OUTCOMES
from population.engine import PopulationSummary, run_population
from population.report import render_report
from tests.browser.axe import serious_violations
from tests.browser.greyscale import indistinct, series_greys
from tests.cli.conftest import DEMO_LOOKUPS, TODAY, generate_population

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> PopulationSummary:
    data = generate_population(tmp_path_factory, 1500, seed=3)
    return run_population(
        data,
        io.StringIO(),
        io.StringIO(),
        today=TODAY,
        workers=1,
        places_file=str(REPO / "demo" / "practice-places.csv"),
        lookup_files=DEMO_LOOKUPS,
    )


@pytest.fixture(scope="module")
def report(summary: PopulationSummary, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    html = render_report(summary, today=TODAY, source="generated", disclosure=Disclosure())
    path.write_text(html, encoding="utf-8")
    return path


@contextmanager
def drawn(browser: Browser, report: Path) -> Iterator[tuple[Page, list[str]]]:
    """The report open with every chart drawn, and the script errors the page raised."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(report.as_uri())
        page.wait_for_function("document.body.dataset.drawn === 'yes'", timeout=15_000)
        yield page, errors
    finally:
        context.close()


def test_the_report_draws_every_chart_and_is_accessible(browser: Browser, report: Path) -> None:
    with drawn(browser, report) as (page, errors):
        charts = page.evaluate(
            """() => Array.from(document.querySelectorAll("canvas")).map((c) => {
                const chart = Chart.getChart(c);
                const table = c.closest("figure").querySelector("table");
                const key = c.dataset.column || "people";
                return {
                    id: c.id,
                    width: c.getBoundingClientRect().width,
                    first: chart.data.datasets[0].data,
                    column: Array.from(table.querySelectorAll(`td[data-key="${key}"]`)).map(
                        (td) => {
                            const t = td.textContent.replace(/,/g, "");
                            return /^[0-9.]+$/.test(t) ? Number(t) : null;  // '<8' is not drawn
                        }),
                };
            })"""
        )
        # per enabled policy: bands and five breakdowns (practice and network: tables only)
        assert len(charts) == len(policy_names()) * (1 + 5)
        for chart in charts:
            assert chart["width"] > 300, chart["id"]
            assert chart["first"] == chart["column"], chart["id"]  # the table is the chart
        cells = page.eval_on_selector_all("td", "cs => cs.map(c => c.textContent.trim())")
        assert [c for c in cells if c in {"1", "2", "3", "4", "5", "6", "7"}] == []
        assert "a count from 1 to 7 is shown as “<8”" in page.text_content("#disclosure-note")
        assert serious_violations(page) == []
        assert errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "uptake-report.png"), full_page=True)


def test_the_practice_network_and_data_quality_tables_render(
    browser: Browser, report: Path
) -> None:
    with drawn(browser, report) as (page, errors):
        practices = page.locator('table[data-dimension="practice_code"]').first.evaluate(
            """(t) => Array.from(t.querySelectorAll("tbody tr")).map(
                (r) => Array.from(r.children).map((c) => c.textContent.trim()))"""
        )
        # per practice: code, name, cohort, the five outcomes, uptake with its interval, the gap
        assert {len(r) for r in practices} == {10}
        codes = [r[0] for r in practices]
        assert "Z11001" in codes
        assert {r[0]: r[1] for r in practices}["Z11001"] == "Aire Surgery"
        assert codes == sorted(codes, key=lambda c: (c == "unknown", c))  # unknown last
        networks = page.text_content('table[data-dimension="pcn_code"]') or ""
        assert "Hull West PCN (synthetic)" in networks
        quality = page.locator("#data-quality")
        assert quality.is_visible()
        text = " ".join((quality.text_content() or "").split())
        assert "People at a practice the place table does not list" in text
        assert "People whose practice is named without an ODS code" in text
        assert "postcode not in the lookup" in text
        unmapped = page.eval_on_selector_all(
            "#data-quality table.unmapped tbody th", "cells => cells.map(c => c.textContent)"
        )
        assert unmapped
        assert all(code.startswith("Z99") for code in unmapped)  # the codes no table lists
        assert serious_violations(page) == []
        assert errors == []


def test_every_series_stays_apart_in_greyscale(browser: Browser, report: Path) -> None:
    """Converted to greyscale, the bars of each series differ in grey level or in pattern,
    and a series has the same style (one meaning per pattern) in every chart."""
    with drawn(browser, report) as (page, errors):
        seen: set[str] = set()
        for i in range(1, len(policy_names()) + 1):
            page.locator(f"#bands-{i}").scroll_into_view_if_needed()
            greys = series_greys(page, f"bands-{i}")
            assert indistinct(greys) == [], i
            seen |= {g.series for g in greys}
        # the outcomes large enough to measure in this population, each apart from the others
        # in its chart ("does not meet" is measured on the dashboard's charts)
        assert seen >= set(OUTCOMES) - {"does not meet"}, seen
        styles = page.evaluate(
            """() => Array.from(document.querySelectorAll("canvas")).flatMap((c) =>
                Chart.getChart(c).data.datasets.map((d) => [d.label, d.series || null]))"""
        )
        gap = {series for label, series in styles if label.startswith("Gap per 1,000")}
        assert gap == {"gap"}  # never the pattern of "does not meet"
        assert errors == []


HOSTILE_LABEL = '<!--<script></script><b id="injected">x</b>&amp;'


def test_every_chart_draws_whatever_its_labels_hold(
    browser: Browser, summary: PopulationSummary, tmp_path: Path
) -> None:
    """A label that is markup (a group or a policy's name from a deployment's files) is shown as
    text: it cannot end or hide the report's data, so every chart still draws."""
    hostile = copy.deepcopy(summary)
    tally = hostile.tally
    for pid in tally.policies:
        tally.names[pid] = HOSTILE_LABEL
        for what in ("people", "meets"):
            tally.groups[(pid, "sex", HOSTILE_LABEL, what)] += 10
    path = tmp_path / "report.html"
    path.write_text(
        render_report(hostile, today=TODAY, source="hostile", disclosure=Disclosure(0)), "utf-8"
    )
    with drawn(browser, path) as (page, errors):
        labels = page.evaluate(
            """() => Array.from(document.querySelectorAll("canvas")).map(
                (c) => Chart.getChart(c).data.labels)"""
        )
        assert len(labels) == 3 * (1 + 5)  # per policy: bands and five breakdowns
        assert sum(HOSTILE_LABEL in chart for chart in labels) == 3
        assert page.query_selector("#injected") is None
        assert errors == []


def test_the_headline_comes_first_one_sentence_per_policy_national_guidance_first(
    browser: Browser, summary: PopulationSummary, tmp_path: Path
) -> None:
    previous = {p: summary.tally.figures(p) for p in summary.tally.policies}
    path = tmp_path / "report.html"
    path.write_text(
        render_report(
            summary,
            today=TODAY,
            source="generated",
            disclosure=Disclosure(),
            previous=previous,
            previous_extract="2026-05-01",
        ),
        "utf-8",
    )
    with drawn(browser, path) as (page, errors):
        first = page.eval_on_selector("main > section", "s => s.id")
        assert first == "headline"
        lines = page.eval_on_selector_all(
            "#headline p.headline",
            "ps => ps.map(p => ({policy: p.dataset.policy, text: p.innerText,"
            " visible: p.getBoundingClientRect().height > 0}))",
        )
        assert [h["policy"] for h in lines] == [
            "nice-insulin-pump",
            "nice-hybrid-closed-loop",
            "hny-iport-advance",
        ]
        for h in lines:
            assert h["visible"]
            assert h["text"].startswith("Of ")
            assert "already have the technology" in h["text"]
            assert "more meet" in h["text"]
            assert "Since the previous run (extract date 2026-05-01): uptake " in h["text"]
        extract = page.text_content("#extract-date")
        assert extract == summary.extract_date
        assert page.query_selector("#codelists table tbody tr") is not None
        assert serious_violations(page) == []
        assert errors == []
