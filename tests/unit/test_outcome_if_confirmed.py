"""``outcome_if_confirmed``: the outcome once a clinician confirms open criteria, read from an
assessment without assessing the whole policy again, is the outcome of assessing the record
with those confirmations in it: for every policy, every open criterion alone and all together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from facts import PatientRecord
from facts.model import Confirmation
from policy import Tri, load_policy
from policy.engine import assess, outcome_if_confirmed
from policy.loading import policy_names
from tests.builders import (
    NON_ADHERENCE,
    T1DM,
    T2DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    patient,
)

TODAY = date(2026, 11, 21)
POLICIES = [load_policy(name) for name in policy_names()]
MDI = (insulin(text="with meals"), insulin(text="at night"))
DECEASED = {**patient(), "deceasedDateTime": "2026-01-01"}

RECORDS: dict[str, tuple[dict[str, Any], ...]] = {
    "type 1 on MDI, HbA1c 75": (patient(), condition(T1DM), hba1c(75), *MDI),
    # the HbA1c part of "above 69 with poor adherence" is met: a confirmation can meet it
    "type 1 on MDI, HbA1c 80, no adherence record": (patient(), condition(T1DM), hba1c(80), *MDI),
    # ...and with no HbA1c it cannot, even where it is the last open criterion that matters
    "type 1 on MDI, no HbA1c": (patient(), condition(T1DM), *MDI),
    "type 1 on MDI, no HbA1c, disabling hypoglycaemia confirmed": (
        patient(),
        condition(T1DM),
        *MDI,
        confirmation("disabling-hypoglycaemia"),
    ),
    "type 1, stale non-adherence": (
        patient(),
        condition(T1DM),
        hba1c(80),
        condition(NON_ADHERENCE, onset="2023-01-01"),
    ),
    "type 2 on insulin once daily": (patient(), condition(T2DM), insulin(text="once daily")),
    "a child with type 1": (patient("2018-03-01"), condition(T1DM)),
    "deceased, type 1 on MDI": (DECEASED, condition(T1DM), hba1c(80), *MDI),
}


def with_confirmed(record: PatientRecord, criteria: list[str]) -> PatientRecord:
    added = (Confirmation(f"c/{cid}", cid, True, TODAY, "Practitioner/1") for cid in criteria)
    return replace(record, confirmations=(*record.confirmations, *added))


@pytest.mark.parametrize("name", RECORDS)
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.info.id)
def test_the_outcome_once_confirmed_is_the_outcome_of_assessing_again(
    record: Callable[..., PatientRecord], name: str, policy: Any
) -> None:
    before = record(*RECORDS[name])
    assessed = assess(policy, before, TODAY)
    open_ = [c for c, r in assessed.results.items() if r.result is Tri.UNKNOWN and r.confirmable]
    for chosen in [open_, *([c] for c in open_)]:
        confirmed = with_confirmed(before, chosen)
        expected = assess(policy, confirmed, TODAY).outcome
        assert outcome_if_confirmed(assessed, confirmed, chosen) is expected, chosen


def test_the_examples_include_a_confirmation_that_changes_the_outcome(
    record: Callable[..., PatientRecord],
) -> None:
    iport = load_policy("iport-advance")
    before = record(*RECORDS["type 1 on MDI, HbA1c 80, no adherence record"])
    assessed = assess(iport, before, TODAY)
    chosen = ["hba1c-above-69-with-poor-adherence"]
    assert assessed.results[chosen[0]].result is Tri.UNKNOWN
    confirmed = outcome_if_confirmed(assessed, with_confirmed(before, chosen), chosen)
    assert confirmed is not assessed.outcome
