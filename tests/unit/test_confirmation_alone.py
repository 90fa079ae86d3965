"""Whether a confirmation the app offers would, on its own, make the outcome "meets"
(``Decision.meets_if_confirmed``): one that would not is offered with what else the record
needs, so a clinician is not surprised when the outcome stays "not enough information"."""

from __future__ import annotations

from datetime import date

import pytest

import demo
from policy import Outcome, evaluate, load_policy
from tests.builders import demo_record
from valuesets import ValueSetLibrary

TODAY = date(2026, 11, 21)


@pytest.mark.parametrize(
    ("name", "decisive", "alone"),
    [
        # MDI impractical could change the outcome, but the insulin prescription is missing too
        ("t1-hcl-child-on-omnipod-5", {"mdi-impractical", "on-insulin"}, ()),
        # any one of the i-Port reasons would do, the needle phobia among them
        ("t1-stale-needle-phobia", {"needle-phobia"}, ("needle-phobia", "mdi-impractical")),
        ("t1-hypo-lipohypertrophy", {"disabling-hypoglycaemia"}, ("disabling-hypoglycaemia",)),
        ("t2-no-specialist", None, ("diabetes-specialist-recommendation",)),
    ],
)
def test_a_confirmation_is_known_to_settle_the_outcome_alone_or_not(
    vsl: ValueSetLibrary, name: str, decisive: set[str] | None, alone: tuple[str, ...]
) -> None:
    iport = load_policy("iport-advance")
    patient = demo.get_patient(name)
    record = demo_record(patient, vsl, iport.info.criteria_system, TODAY)
    decision = evaluate(iport, record, TODAY)
    assert decision.outcome is Outcome.INSUFFICIENT
    if decisive is not None:
        assert decisive <= set(decision.decisive), decision.decisive
    assert set(alone) <= set(decision.meets_if_confirmed)
    if not alone:
        assert decision.meets_if_confirmed == ()
