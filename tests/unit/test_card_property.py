"""Any record, any decision: the card's detail fits a pop-up and names no FHIR resource.

Hypothesis builds records from the pieces the policy reads (diagnoses, ages, HbA1c results,
insulin, findings, confirmations of any criterion, unreadable results) and checks every card,
with and without a companion note and read warnings, against the rules the golden files fix
for the demo patients.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_cards import CardContext, eligibility_card
from cds_cards.render import MAX_DETAIL_LINES, MAX_SUGGESTIONS, rendered_lines
from facts import extract_record
from policy import Policy, Tri, evaluate, load_policy
from tests.builders import (
    HYPO_EVENT,
    IMPAIRED_AWARENESS,
    LIPO,
    NON_ADHERENCE,
    PID,
    REFERRAL_DIABETOLOGIST,
    T1DM,
    T2DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    observation_finding,
    patient,
)
from tests.conftest import TODAY
from tests.unit.test_concise_cards import FHIR_REFERENCE
from valuesets import load_value_sets

VSL = load_value_sets()
POLICIES = [load_policy("iport-advance"), load_policy("nice-insulin-pump")]
CRITERIA = sorted({c for p in POLICIES for c in p.criterion_ids})
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)

pieces = st.lists(
    st.sampled_from(
        [
            lambda: condition(T1DM),
            lambda: condition(T2DM),
            lambda: condition(LIPO),
            lambda: condition(NON_ADHERENCE),
            lambda: condition(IMPAIRED_AWARENESS),
            lambda: observation_finding(HYPO_EVENT),
            lambda: observation_finding(HYPO_EVENT, on="2026-03-01"),
            lambda: condition(REFERRAL_DIABETOLOGIST),
            lambda: condition(text="needle phobia"),
            lambda: hba1c(75),
            lambda: hba1c(60, on="2026-10-01"),
            lambda: hba1c(8.9, unit="%"),
            lambda: hba1c(80, on="2024-01-01"),
            lambda: {
                "resourceType": "Observation",
                "id": "broken",
                "status": "final",
                "subject": {"reference": f"Patient/{PID}"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                "effectiveDateTime": "2026-11-01",
                "valueString": "unreadable",
            },
            lambda: insulin(text="with meals"),
            lambda: insulin(text="at night"),
            lambda: insulin(text="as directed"),
        ]
    ),
    max_size=8,
)
confirmations = st.lists(
    st.tuples(
        st.sampled_from(CRITERIA), st.booleans(), st.sampled_from([None, "Practitioner/dr-9"])
    ),
    max_size=3,
)


def record(
    born: str | None, parts: list[Any], confirmed: list[tuple[str, bool, str | None]]
) -> Any:
    resources = [patient(birth_date=born), *(p() for p in parts)]
    resources += [confirmation(c, value=v, performer=who) for c, v, who in confirmed]
    return extract_record(
        resources, VSL, patient_id=PID, criteria_system=POLICIES[0].info.criteria_system
    )


@settings(max_examples=150, deadline=None)
@given(
    policy=st.sampled_from(POLICIES),
    born=st.sampled_from(["1990-05-17", "2016-04-02", "2014", None]),
    parts=pieces,
    confirmed=confirmations,
    note=st.sampled_from([None, "A companion policy's note."]),
    warnings=st.lists(st.sampled_from(["Condition/broken skipped: not FHIR"]), max_size=3),
)
def test_every_card_fits_and_names_no_resource(
    policy: Policy,
    born: str | None,
    parts: list[Any],
    confirmed: list[tuple[str, bool, str | None]],
    note: str | None,
    warnings: list[str],
) -> None:
    decision = evaluate(policy, record(born, parts, confirmed), TODAY)
    decision = dataclasses.replace(decision, warnings=(*decision.warnings, *warnings))
    ctx = CardContext(
        PID, "Practitioner/dr-1", NOW, lambda: "u", note=note, app_url="https://x/review/launch"
    )
    card = eligibility_card(decision, ctx)
    assert rendered_lines(card["detail"]) <= MAX_DETAIL_LINES, card["detail"]
    assert not FHIR_REFERENCE.search(card["detail"]), card["detail"]
    assert not FHIR_REFERENCE.search(card["summary"])
    asked = [s for s in card.get("suggestions", []) if s["label"].startswith("I confirm:")]
    assert len(asked) <= MAX_SUGGESTIONS
    for cid in decision.decisive:  # each decisive unknown is on the card, or the cut says so
        title = decision.criteria[cid].title
        assert decision.criteria[cid].result is Tri.UNKNOWN
        assert title in card["detail"] or re.search(r"\*\* and \d+ more\.", card["detail"])
