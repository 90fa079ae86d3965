"""Insulin injections per day, from every form a dosage takes in real prescriptions."""

from __future__ import annotations

from typing import Any

import pytest

from facts.dosage import injections_per_day, per_day_from_text


@pytest.mark.parametrize(
    ("text", "per_day"),
    [
        ("once daily", 1),
        ("OD", 1),
        ("Inject 10 units daily", 1),
        ("twice a day", 2),
        ("twice daily", 2),
        ("BD", 2),
        ("b.d.", 2),
        ("TDS", 3),
        ("three times daily", 3),
        ("3 times a day", 3),
        ("3x daily", 3),
        ("QDS", 4),
        ("four times a day", 4),
        ("with meals", 3),
        ("inject before meals according to carbohydrate", 3),
        ("at night", 1),
        ("at bedtime", 1),
        ("nocte", 1),
        ("in the morning and at night", 2),
        ("with breakfast and evening meal", 2),
        ("every 8 hours", 3),
        ("Inject 10 units twice daily as directed", 2),
        ("as directed", None),
        ("use as directed by the diabetes team", None),
        ("sliding scale", None),
        ("", None),
    ],
)
def test_dosage_text(text: str, per_day: float | None) -> None:
    assert per_day_from_text(text) == per_day


@pytest.mark.parametrize(
    ("timing", "per_day"),
    [
        ({"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}, 2),
        ({"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}}, 3),
        ({"repeat": {"period": 1, "periodUnit": "d"}}, 1),  # frequency defaults to 1
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}, 1 / 7),
        ({"repeat": {"when": ["ACM", "ACD", "ACV"]}}, 3),
        ({"repeat": {"when": ["C"]}}, 3),
        ({"repeat": {"when": ["HS"]}}, 1),
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN", "HS"]}}, 2),
        ({"code": {"coding": [{"code": "QD"}]}}, 1),
        ({"code": {"coding": [{"code": "BID"}]}}, 2),
        ({"code": {"coding": [{"code": "TID"}]}}, 3),
        ({"code": {"coding": [{"code": "QID"}]}}, 4),
        ({"code": {"text": "twice a day"}}, 2),
    ],
)
def test_structured_timing(timing: dict[str, Any], per_day: float) -> None:
    total, source = injections_per_day([{"timing": timing}])
    assert total == pytest.approx(per_day)
    assert source.startswith("timing")


def test_structured_timing_wins_over_text() -> None:
    total, _ = injections_per_day(
        [{"text": "once daily", "timing": {"code": {"coding": [{"code": "BID"}]}}}]
    )
    assert total == 2


def test_split_doses_add_up() -> None:
    total, _ = injections_per_day(
        [{"text": "8 units in the morning"}, {"text": "6 units at night"}]
    )
    assert total == 2


def test_one_unstated_frequency_makes_the_total_unknown() -> None:
    total, reason = injections_per_day([{"text": "BD"}, {"text": "as directed"}])
    assert total is None
    assert "as directed" in reason


def test_no_dosage_is_unknown() -> None:
    assert injections_per_day([]) == (None, "no dosage instruction")
