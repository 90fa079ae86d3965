"""A clinician's confirmation decides its criterion, and what the record holds stays beside it:
a funding panel reads the judgement and what it rests on (a needle phobia recorded in 2021)."""

from __future__ import annotations

from datetime import date
from typing import Any

from facts import extract_record
from facts.extract import WITHDRAWN_BECAUSE, WITHDRAWN_NOTE
from policy import CriterionResult, Decision, Tri, evaluate, load_policy
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


def withdrawn(criterion: str, on: str, by: str | None, at: str | None) -> dict[str, Any]:
    """A confirmation the assessment app withdrew: entered-in-error, with who and when in
    a note (as review_app.assessment.withdrawn_observation writes it)."""
    o = confirmation(criterion, on=on)
    o["status"] = "entered-in-error"
    o["note"] = [{"text": "Needle phobia confirmed at clinic"}]
    if by and at:
        o["note"].append(
            {
                "authorReference": {"reference": "Practitioner/dr-2", "display": by},
                "time": at,
                "text": WITHDRAWN_NOTE,
            }
        )
    return o


def decide_iport(vsl: ValueSetLibrary, *resources: dict[str, Any]) -> Decision:
    record = extract_record(
        [patient(), *resources], vsl, patient_id=PID, criteria_system=IPORT.info.criteria_system
    )
    return evaluate(IPORT, record, TODAY)


def test_a_withdrawn_confirmation_is_never_evidence_and_is_named_as_withdrawn(
    vsl: ValueSetLibrary,
) -> None:
    d = decide_iport(
        vsl,
        condition(text="Needle phobia", onset="2021-12-07"),
        withdrawn("needle-phobia", "2026-11-20", "Dr Ben Ode", "2026-11-20T16:05:00+00:00"),
    )
    assert d.criteria["needle-phobia"].result is Tri.UNKNOWN
    assert "confirmation" not in [e.matched_by for e in d.criteria["needle-phobia"].evidence]
    (w,) = d.withdrawn
    assert (w.criterion, w.date, w.withdrawn_by) == ("needle-phobia", date(2026, 11, 20),
                                                      "Dr Ben Ode")  # fmt: skip
    assert w.withdrawn_at is not None
    assert w.withdrawn_at.isoformat() == "2026-11-20T16:05:00+00:00"
    assert w.reason == "Needle phobia confirmed at clinic"  # the reason, not the withdrawal
    assert w.withdrawal_reason is None  # none given


def test_a_withdrawal_keeps_the_reason_given_for_it(vsl: ValueSetLibrary) -> None:
    o = withdrawn("needle-phobia", "2026-11-20", "Dr Ben Ode", "2026-11-20T16:05:00+00:00")
    o["note"][-1]["text"] = f"{WITHDRAWN_NOTE}{WITHDRAWN_BECAUSE}Wrong  patient\nchart"
    (w,) = decide_iport(vsl, o).withdrawn
    assert (w.withdrawn_by, w.withdrawal_reason) == ("Dr Ben Ode", "Wrong patient chart")
    assert w.reason == "Needle phobia confirmed at clinic"


def test_a_confirmation_made_again_after_a_withdrawal_counts(vsl: ValueSetLibrary) -> None:
    d = decide_iport(
        vsl,
        withdrawn("needle-phobia", "2026-11-20", "Dr Ben Ode", "2026-11-20T16:05:00+00:00"),
        confirmation("needle-phobia", on="2026-11-20"),
    )
    assert d.criteria["needle-phobia"].result is Tri.MET
    assert [w.criterion for w in d.withdrawn] == ["needle-phobia"]


def test_a_record_marked_entered_in_error_elsewhere_is_withdrawn_by_someone_unknown(
    vsl: ValueSetLibrary,
) -> None:
    (w,) = decide_iport(vsl, withdrawn("needle-phobia", "2026-11-20", None, None)).withdrawn
    assert (w.withdrawn_by, w.withdrawn_at) == (None, None)


def test_only_this_patients_withdrawn_confirmations_of_this_policys_criteria_are_named(
    vsl: ValueSetLibrary,
) -> None:
    other = withdrawn("needle-phobia", "2026-11-20", "Dr Ben Ode", "2026-11-20T16:05:00+00:00")
    other["subject"] = {"reference": "Patient/someone-else"}
    unknown = withdrawn("no-such-criterion", "2026-11-20", "Dr Ben Ode", "2026-11-20T16:05:00Z")
    assert decide_iport(vsl, other, unknown).withdrawn == ()
