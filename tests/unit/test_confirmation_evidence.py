"""A clinician's confirmation decides its criterion, and what the record holds stays beside it:
a funding panel reads the judgement and what it rests on (a needle phobia recorded in 2021)."""

from __future__ import annotations

from datetime import date
from typing import Any

from facts import extract_record
from policy import CriterionResult, Tri, evaluate, load_policy
from tests.builders import PID, condition, confirmation, patient
from valuesets import ValueSetLibrary

TODAY = date(2026, 11, 21)
IPORT = load_policy("iport-advance")


def needle_phobia(vsl: ValueSetLibrary, *resources: dict[str, Any]) -> CriterionResult:
    record = extract_record(
        [patient(), *resources],
        vsl,
        patient_id=PID,
        criteria_system=IPORT.info.criteria_system,
    )
    return evaluate(IPORT, record, TODAY).criteria["needle-phobia"]


def test_a_confirmed_criterion_keeps_the_record_it_rests_on(vsl: ValueSetLibrary) -> None:
    old = condition(text="Needle phobia", onset="2021-12-07")
    before = needle_phobia(vsl, old)
    assert before.result is Tri.UNKNOWN  # recorded five years ago: not current evidence
    after = needle_phobia(vsl, old, confirmation("needle-phobia", on="2026-11-20"))
    assert after.result is Tri.MET
    assert [e.matched_by for e in after.evidence] == ["confirmation"]
    assert [e.ref for e in after.context] == [e.ref for e in before.evidence]
    assert "2021" in after.context[0].summary


def test_a_confirmation_with_nothing_in_the_record_has_no_record_context(
    vsl: ValueSetLibrary,
) -> None:
    after = needle_phobia(vsl, confirmation("needle-phobia", on="2026-11-20"))
    assert after.result is Tri.MET
    assert after.context == ()


def test_a_confirmation_carries_the_clinicians_reason(vsl: ValueSetLibrary) -> None:
    with_reason = confirmation("needle-phobia", on="2026-11-20")
    with_reason["note"] = [{"text": "  Misses  evening doses;\nanxious at every injection "}]
    after = needle_phobia(vsl, with_reason)
    assert after.result is Tri.MET
    because = "because: Misses evening doses; anxious at every injection"
    assert after.reason.endswith(f"{because}.")  # as one line, spaces folded
    assert after.evidence[0].summary.endswith(because)
