"""One vocabulary for outcomes in every commissioner-facing output, and one style per word in
every chart: the dashboard's outcome names and the uptake report's bands are the words of
``policy.outcome_words``, and ``dashboard/static/series.js`` (shared by the dashboard and the
report) gives each word a style of its own, colour and pattern both."""

from __future__ import annotations

import re
from pathlib import Path

from dashboard.data import OUTCOME_NAMES
from policy import outcome_words
from population.uptake import BANDS

SERIES_JS = Path(__file__).resolve().parents[2] / "dashboard" / "static" / "series.js"
_STYLE = re.compile(r'^\s+"([^"]+)": \{ colour: "(#[0-9a-f]{6})", pattern: "(\w+)"', re.M)


def styles() -> dict[str, tuple[str, str]]:
    return {m[1]: (m[2], m[3]) for m in _STYLE.finditer(SERIES_JS.read_text(encoding="utf-8"))}


def test_the_dashboard_and_the_report_say_an_outcome_in_the_same_words() -> None:
    assert {
        code: outcome_words.capitalised(word) for code, word in outcome_words.BY_OUTCOME.items()
    } == OUTCOME_NAMES
    assert OUTCOME_NAMES["insufficient-information"] == "Data missing"
    assert OUTCOME_NAMES["meets-criteria"] == "Meets"
    assert set(outcome_words.BY_OUTCOME.values()) - {outcome_words.NOT_ASSESSED} <= set(BANDS)


def test_every_word_a_chart_draws_has_a_style_of_its_own() -> None:
    found = styles()
    assert set(outcome_words.SERIES) <= set(found)
    colours = [c for c, _ in found.values()]
    patterns = [p for _, p in found.values() if p != "solid"]
    # one meaning per pattern: no two words share a colour, nor a pattern other than solid
    assert len(set(colours)) == len(colours)
    assert len(set(patterns)) == len(patterns)
