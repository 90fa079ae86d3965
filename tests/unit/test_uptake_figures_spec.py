"""Uptake, the gap and their 95 % Wilson intervals (population/figures.py), and the headline
sentence and the change since the previous run (population/headline.py), as executable
examples. Rates are computed from the counts as shown, so none can give back a suppressed
count."""

from __future__ import annotations

import pytest

from disclosure import Disclosure
from population.figures import (
    ALREADY_USING,
    DATA_MISSING,
    MEETS,
    NOT_MET,
    POTENTIALLY,
    Figures,
    shown_rate,
    wilson,
)
from population.headline import change, previous_figures, sentence
from population.uptake import UptakeTally

EXACT, NHS = Disclosure(0), Disclosure(8)


# Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven
# methods. Stat Med 1998;17:857-72, Table I, method 3 (the Wilson score interval).
@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_the_published_intervals(
    successes: int, n: int, low: float, high: float
) -> None:
    got = wilson(successes, n)
    assert (round(got[0], 4), round(got[1], 4)) == (low, high)


def test_wilson_needs_a_denominator() -> None:
    with pytest.raises(ValueError):
        wilson(1, 0)


@pytest.mark.parametrize(
    ("d", "part", "whole", "shown"),
    [
        (EXACT, 81, 263, (0.308, 0.2553, 0.3662)),
        (NHS, 3, 263, ("*", "*", "*")),  # rests on a suppressed count
        (NHS, 81, 3, ("*", "*", "*")),
        (NHS, 0, 0, (None, None, None)),
    ],
)
def test_a_rate_as_shown(d: Disclosure, part: int, whole: int, shown: tuple[object, ...]) -> None:
    r = shown_rate(d, part, whole)
    assert (r.value, r.low, r.high) == shown


@pytest.mark.parametrize(("part", "whole", "as_shown"), [(81, 263, (80, 265)), (0, 263, (0, 265))])
def test_a_rate_is_computed_from_the_counts_as_shown(
    part: int, whole: int, as_shown: tuple[int, int]
) -> None:
    assert shown_rate(NHS, part, whole) == shown_rate(EXACT, *as_shown)


def figures(
    using: int, meets: int, potentially: int = 0, missing: int = 0, not_met: int = 0
) -> Figures:
    outcomes = {
        ALREADY_USING: using,
        MEETS: meets,
        POTENTIALLY: potentially,
        DATA_MISSING: missing,
        NOT_MET: not_met,
    }
    return Figures(sum(outcomes.values()), outcomes)


def test_uptake_is_using_over_using_and_meets_and_the_gap_is_per_1000_of_the_cohort() -> None:
    f = figures(using=210, meets=95, potentially=100, missing=629, not_met=200).shown(EXACT)
    assert f["cohort"] == 1234
    assert f["uptake"]["value"] == round(210 / 305, 4)
    assert f["gap"] == 95
    assert f["gapPer1000"]["value"] == round(1000 * 95 / 1234, 1)
    assert f["gapPer1000"]["low"] < f["gapPer1000"]["value"] < f["gapPer1000"]["high"]


def test_uptake_is_not_shown_when_the_gap_is_suppressed() -> None:
    """10 using and 2 meeting round to 10 of 10: "100 %" beside "<8 more meet it" would
    contradict itself."""
    f = figures(using=10, meets=2).shown(NHS)
    assert f["uptake"] == {"value": "*", "low": "*", "high": "*"}
    assert f["gap"] == "<8"


def tally(f: Figures, technology_data: bool = True) -> UptakeTally:
    t = UptakeTally(technology_data=technology_data)
    t.policies["nice-insulin-pump"] = "TA151"
    t.names["nice-insulin-pump"] = "NICE TA151"
    t.cohorts["nice-insulin-pump"] = "people with type 1 diabetes mellitus"
    t.in_use["nice-insulin-pump"] = "already on an insulin pump"
    for band, n in f.outcomes.items():
        t.bands[("nice-insulin-pump", band)] = n
    return t


@pytest.mark.parametrize(
    ("f", "d", "technology_data", "text"),
    [
        (
            figures(using=210, meets=95, potentially=100, missing=629, not_met=200),
            NHS,
            True,
            "Of 1,235 people with type 1 diabetes mellitus, 210 already have the technology "
            "(already on an insulin pump); 95 more meet NICE TA151 and do not "
            "(uptake 69 %, 95 % CI 63–74 %).",
        ),
        (
            figures(using=3, meets=40, missing=100),
            NHS,
            True,
            "Of 145 people with type 1 diabetes mellitus, <8 already have the technology "
            "(already on an insulin pump); 40 more meet NICE TA151 and do not "
            "(uptake not shown: it rests on a count below 8).",
        ),
        (
            figures(using=0, meets=40, missing=100),
            NHS,
            False,
            "Of 140 people with type 1 diabetes mellitus, 40 meet NICE TA151; who already uses "
            "the technology cannot be measured from this input (no device or procedure records).",
        ),
    ],
)
def test_the_headline_sentence(f: Figures, d: Disclosure, technology_data: bool, text: str) -> None:
    assert sentence(tally(f, technology_data), "nice-insulin-pump", d) == text


def test_the_change_since_the_previous_run_is_of_the_figures_as_shown() -> None:
    before, now = (
        figures(using=150, meets=100, missing=50),
        figures(using=210, meets=95, missing=50),
    )
    assert change(now, before, NHS, " (extract date 2026-05-01)") == (
        "Since the previous run (extract date 2026-05-01): uptake +9 percentage points "
        "(60 % → 69 %); gap -5 people (100 → 95)."
    )
    assert change(now, None, NHS, "") is None


def test_previous_figures_are_read_from_a_summary_json() -> None:
    f = figures(using=3, meets=4)
    doc = {"figures": {"nice-insulin-pump": {"cohort": f.cohort, "outcomes": dict(f.outcomes)}}}
    assert previous_figures(doc) == {"nice-insulin-pump": f}
    with pytest.raises(ValueError, match="no per-policy figures"):
        previous_figures({"patients": 3})
    with pytest.raises(ValueError, match="cannot be read"):
        previous_figures({"figures": {"x": {"cohort": "many"}}})
