"""Decisive unknowns and deciding criteria (policy/decisive.py), as examples on the demo patients.

An unknown is decisive when setting it to met, and again to not met, gives two different
outcomes (or, when no single one can, when it is on a pathway branch still open); the deciding
criteria are the ones a card names as the reason for its outcome.
"""

from __future__ import annotations

import functools
from datetime import date

import pytest

from cli.evaluate import Core, decide_file, load_core
from demo import PATIENTS_DIR
from policy import Decision, Outcome
from policy.decide import decide as decide_record
from policy.decide import read_record
from tests.builders import GLARGINE_VTM, PID, T1DM, condition, hba1c, insulin, patient

TODAY = date(2026, 11, 21)


@functools.cache
def _core(policy: str) -> Core:
    return load_core(policy)


def decide(patient: str, policy: str = "iport-advance") -> Decision:
    return decide_file(_core(policy), PATIENTS_DIR / f"{patient}.json", TODAY, None)[0]


@pytest.mark.parametrize(
    ("patient", "policy", "decisive"),
    [
        # Type 2, needle phobia met: only the specialist's recommendation could change it.
        ("t2-no-specialist", "iport-advance", ("diabetes-specialist-recommendation",)),
        # NICE met, no i-Port reason yet: any one of four would do, so each is decisive.
        (
            "t1-no-iport-criterion",
            "iport-advance",
            (
                "mdi-impractical",
                "needle-phobia",
                "hba1c-above-69-with-poor-adherence",
                "lipohypertrophy",
            ),
        ),
        # No recent HbA1c: the NICE route could still go either way through either part.
        (
            "t1-no-recent-hba1c",
            "nice-insulin-pump",
            ("disabling-hypoglycaemia", "hba1c-69-or-above-on-mdi"),
        ),
        # Met, or not met: nothing unknown could change it.
        ("t1-mdi-needle-phobia", "iport-advance", ()),
        ("t1-low-hba1c-no-hypos", "iport-advance", ()),
        ("no-diabetes", "iport-advance", ()),
    ],
)
def test_decisive_unknowns(patient: str, policy: str, decisive: tuple[str, ...]) -> None:
    d = decide(patient, policy)
    assert d.decisive == decisive
    if decisive:
        assert d.outcome is Outcome.INSUFFICIENT


def test_an_unknown_that_cannot_change_the_outcome_is_not_decisive() -> None:
    d = decide("t2-no-specialist")
    assert d.criteria["mdi-impractical"].result.value == "unknown"
    assert "mdi-impractical" not in d.decisive


@pytest.mark.parametrize(
    ("patient", "decided_by"),
    [
        # Met: the branch that met it, derived criteria opened into their parts.
        (
            "t1-mdi-needle-phobia",
            (
                "type-1-diabetes",
                "on-insulin",
                "age-12-or-over",
                "hba1c-69-or-above-on-mdi",
                "needle-phobia",
            ),
        ),
        # A child: the age that opens the under-12 route, and the confirmation that met it.
        (
            "t1-child-mdi-impractical",
            ("type-1-diabetes", "on-insulin", "age-12-or-over", "mdi-impractical"),
        ),
        # Not met: what failed, not the under-12 route an adult was never on.
        ("t1-low-hba1c-no-hypos", ("disabling-hypoglycaemia", "hba1c-69-or-above-on-mdi")),
        # No diagnosis: the diagnoses.
        ("no-diabetes", ("type-1-diabetes", "type-2-diabetes")),
        # Not enough information: what is settled on the branches still open.
        (
            "t2-no-specialist",
            ("type-2-diabetes", "on-insulin", "insulin-more-than-once-daily", "needle-phobia"),
        ),
    ],
)
def test_deciding_criteria(patient: str, decided_by: tuple[str, ...]) -> None:
    assert decide(patient).decided_by == decided_by


def test_when_no_one_answer_can_change_it_every_open_unknown_is_decisive() -> None:
    # An adult with type 1 whose only HbA1c is implausible and who has no i-Port reason
    # recorded: the pathway needs the NICE criteria and an i-Port reason at once, so no single
    # answer changes the outcome; the card must still name what is missing.
    resources = [
        patient("1985-03-04"),
        condition(T1DM, onset="2018-01-01"),
        hba1c(72, "%", on="2026-11-01"),
        insulin(GLARGINE_VTM, text="once daily at night"),
        insulin(text="with meals"),
    ]
    core = _core("iport-advance")
    (policy,) = core.policies.values()
    d = decide_record(read_record(core, resources, PID), policy, TODAY).decision
    assert d.outcome is Outcome.INSUFFICIENT
    assert set(d.decisive) == {
        "hba1c-69-or-above-on-mdi",
        "disabling-hypoglycaemia",
        "mdi-impractical",
        "needle-phobia",
        "hba1c-above-69-with-poor-adherence",
        "lipohypertrophy",
    }
