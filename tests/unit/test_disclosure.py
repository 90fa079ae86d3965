"""Small-number suppression of the commissioners' aggregate figures, as executable examples.

NHS England's disclosure control for statistics below national level: 0 stays 0, 1 to 7 are
suppressed ('<8'), everything else is rounded to the nearest 5 (totals from the exact counts,
then rounded), shares from the rounded counts and suppressed when they rest on a suppressed
count; SMALL_NUMBER_THRESHOLD = 0 turns it off."""

from __future__ import annotations

from typing import Any

import pytest

from disclosure import OFF, Disclosure, DisclosureSettingError, rank

ON = Disclosure()


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, 0),
        (1, "<8"),
        (7, "<8"),  # the largest suppressed count
        (8, 10),  # the smallest shown, rounded to the nearest 5
        (12, 10),
        (13, 15),
        (17, 15),
        (18, 20),
        (100, 100),
        (1234, 1235),
    ],
)
def test_counts_below_8_are_suppressed_and_the_rest_rounded_to_5(n: int, shown: Any) -> None:
    assert ON.count(n) == shown


@pytest.mark.parametrize("n", [0, 1, 7, 8, 13, 1234])
def test_threshold_0_shows_every_count_exactly(n: int) -> None:
    assert OFF.count(n) == n
    assert not OFF.suppressed(n)


def test_another_threshold_moves_the_boundary() -> None:
    d = Disclosure.from_setting(11)  # e.g. a deployment that suppresses 1 to 10
    assert d.count(10) == "<11"
    assert d.count(11) == 10
    assert d.marker == "<11"
    assert Disclosure.from_setting(3).count(3) == 5  # never rounded down to 0


@pytest.mark.parametrize(
    ("part", "whole", "shown"),
    [
        (0, 0, None),  # nothing to divide by
        (0, 20, 0.0),
        (3, 20, "*"),  # the numerator is suppressed
        (9, 5, "*"),  # the denominator is suppressed
        (12, 13, round(10 / 15, 4)),  # from the rounded counts, not 12/13
        (20, 40, 0.5),
    ],
)
def test_shares_come_from_the_rounded_counts_and_never_from_a_suppressed_one(
    part: int, whole: int, shown: Any
) -> None:
    assert ON.share(part, whole) == shown


def test_shares_are_exact_when_off() -> None:
    assert OFF.share(12, 13) == round(12 / 13, 4)
    assert OFF.share(1, 3) == round(1 / 3, 4)


def test_a_statistic_over_1_to_7_values_is_suppressed() -> None:
    assert ON.statistic(7, 123.4) == "*"
    assert ON.statistic(8, 123.4) == 123.4
    assert ON.statistic(0, None) is None
    assert OFF.statistic(1, 5.0) == 5.0


def test_a_total_and_its_other_cells_do_not_give_back_a_suppressed_cell() -> None:
    """Row: 3 (suppressed), 10, 0. The total is summed exactly (13) and then rounded (15):
    15 − 10 − 0 = 5, but the true cell is anywhere the rounding allows, not read back."""
    cells = [3, 10, 0]
    shown = [ON.count(n) for n in cells]
    total = ON.count(sum(cells))
    assert shown == ["<8", 10, 0]
    assert total == 15
    # every suppressed value 1..7 is consistent with what is shown
    for hidden in range(1, 8):
        consistent = [
            (b, t)
            for b in range(8, 13)  # what '10' may be
            for t in range(13, 18)  # what '15' may be
            if hidden + b == t
        ]
        assert consistent, hidden


@pytest.mark.parametrize("value", [-1, True, 2.5, "eight", None, [8]])
def test_the_setting_must_be_a_whole_number(value: Any) -> None:
    with pytest.raises(DisclosureSettingError, match="SMALL_NUMBER_THRESHOLD must be a whole"):
        Disclosure.from_setting(value)


def test_the_setting_from_the_environment_is_text() -> None:
    assert Disclosure.from_setting("8") == Disclosure(8)
    assert Disclosure.from_setting("0") == OFF


def test_the_note_says_what_the_markers_mean_or_that_there_are_none() -> None:
    assert "“<8”" in ON.note()
    assert "rounded to the nearest 5" in ON.note()
    assert "“*”" in ON.note()
    assert "suppression is off" in OFF.note()
    assert ON.as_json()["suppressedCount"] == "<8"
    assert OFF.as_json()["suppressedCount"] is None


def test_suppressed_figures_sort_between_zero_and_the_smallest_shown() -> None:
    shown = [0, "<8", 10, "*", None, 0.25]
    assert sorted(shown, key=rank, reverse=True) == [10, "<8", 0.25, 0, "*", None]
