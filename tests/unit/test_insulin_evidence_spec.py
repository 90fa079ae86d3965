"""Which prescriptions are insulin, of which kind, and what a card says about insulin stopped.

docs/policy-interpretation.md ("Facts", MedicationRequest (insulin)) in executable examples,
through ``policy.evaluate``; "today" is 2026-11-21.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from cds_cards import CardContext, eligibility_card
from policy import Decision, Tri, load_policy
from tests.builders import (
    ASPART,
    GLARGINE_VTM,
    PID,
    T1DM,
    T2DM,
    condition,
    hba1c,
    insulin,
    patient,
)

Decide = Callable[..., Decision]
IPORT = load_policy("iport-advance")
PUMP = load_policy("nice-insulin-pump")
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
NO_INSULIN = "no active insulin prescription in the record"


def written(text: str, dosage: str | None = None, *, status: str = "active") -> dict[str, Any]:
    """A prescription recorded as free text only (no code), as many GP systems send a
    hand-written or imported one."""
    r = insulin(status=status)
    r["medicationCodeableConcept"] = {"text": text}
    r["dosageInstruction"] = [{"text": dosage}] if dosage else []
    return r


# -- 1. Free-text prescriptions: insulin, and its kind from its name ------------------------------
@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("insulin glargine", "basal"),
        ("Insulin glargine 100 units/ml pre-filled pen", "basal"),
        ("insulin lispro", "bolus"),
        ("insulin lispro pen", "bolus"),
        ("Insulin aspart biphasic 30/70", "mixed"),
        ("Lantus SoloStar", "basal"),
        ("Humalog KwikPen", "bolus"),
        ("Humalog Mix25 KwikPen", "mixed"),
        ("NovoRapid FlexPen", "bolus"),
        ("insulin", "unknown"),  # no name: the kind is not known
        ("insulin glargine and insulin lispro", "unknown"),  # two kinds in one: neither
    ],
)
def test_a_free_text_insulin_is_insulin_of_the_kind_its_name_says(
    record: Callable[..., Any], text: str, action: str
) -> None:
    (order,) = record(patient(), written(text)).insulin
    assert (order.action, order.matched_by) == (action, "term")


@pytest.mark.parametrize(
    "text",
    [
        "insulin pen needles 4mm",
        "NovoPen 6 insulin pen",  # a reusable pen: a device, no insulin in it
        "Insulin syringe 0.5ml",
        "Not taking insulin glargine",  # the same qualifier rules as any other text
        "No insulin lispro",
    ],
)
def test_free_text_that_is_not_insulin_prescribed_is_not_insulin(
    record: Callable[..., Any], text: str
) -> None:
    assert record(patient(), written(text)).insulin == ()


def test_free_text_basal_and_bolus_prescriptions_are_mdi(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        hba1c(80),
        written("insulin glargine", "once daily at night"),
        written("insulin lispro", "as directed"),
        policy=PUMP,
    )
    r = d.criteria["hba1c-69-or-above-on-mdi"]
    assert r.result is Tri.MET
    assert "basal-bolus: insulin glargine (basal) with insulin lispro" in r.reason
    assert NO_INSULIN not in r.reason


def test_a_free_text_pen_prescription_is_a_current_insulin_prescription(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), written("Insulin glargine 100 units/ml pre-filled pen"))
    r = d.criteria["on-insulin"]
    assert r.result is Tri.MET
    assert "Insulin glargine 100 units/ml pre-filled pen" in r.reason


# -- 2. Insulin deliberately stopped: named with its date, never a prompt to prescribe -------------
def stopped(*, ended: str | None = "2026-10-01") -> dict[str, Any]:
    """Insulin glargine prescribed on 2026-01-10 and stopped (its dosage ending ``ended``)."""
    r = insulin(GLARGINE_VTM, text="once daily at night", status="stopped")
    if ended:
        r["dosageInstruction"][0]["timing"] = {
            "repeat": {"boundsPeriod": {"start": "2026-01-10", "end": ended}}
        }
    return r


PROMPTS = ("Settled by a current insulin prescription", "Settled by insulin prescriptions")


@pytest.mark.parametrize(
    ("ended", "named"),
    [
        ("2026-10-01", "Insulin glargine stopped on 2026-10-01"),
        (None, "Insulin glargine stopped (prescribed on 2026-01-10)"),
    ],
)
@pytest.mark.parametrize(
    ("policy", "criterion"),
    [
        (IPORT, "on-insulin"),
        (IPORT, "hba1c-69-or-above-on-mdi"),
        (PUMP, "hba1c-69-or-above-on-mdi"),
    ],
)
def test_stopped_insulin_is_named_with_its_date_and_not_asked_for(
    decide: Decide, policy: Any, criterion: str, ended: str | None, named: str
) -> None:
    d = decide(patient(), condition(T1DM), hba1c(80), stopped(ended=ended), policy=policy)
    r = d.criteria[criterion]
    assert r.result is Tri.UNKNOWN  # insulin may be prescribed elsewhere
    assert named in r.reason
    assert r.missing is None  # nothing to settle by prescribing it again
    assert any(e.ref.startswith("MedicationRequest/") for e in r.context)
    detail = eligibility_card(d, CardContext(PID, None, NOW, lambda: "u"))["detail"]
    assert not [p for p in PROMPTS if p in detail]


def test_the_type_2_injections_criterion_names_stopped_insulin_too(decide: Decide) -> None:
    d = decide(patient(), condition(T2DM), stopped(), policy=IPORT)
    r = d.criteria["insulin-more-than-once-daily"]
    assert r.result is Tri.UNKNOWN
    assert "Insulin glargine stopped on 2026-10-01" in r.reason
    assert r.missing is None


def test_stopped_insulin_beside_a_current_prescription_changes_nothing(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), stopped(), insulin(ASPART, text="with meals"))
    r = d.criteria["on-insulin"]
    assert r.result is Tri.MET
    assert "stopped" not in r.reason


def statement(status: str, *, start: str = "2025-03-01", end: str | None = "2026-09-15") -> Any:
    """A MedicationStatement of insulin glargine (as a GP record's medication history has)."""
    r: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": f"ms-{status}",
        "status": status,
        "subject": {"reference": f"Patient/{PID}"},
        "medicationCodeableConcept": {"coding": [], "text": "Insulin glargine"},
        "effectivePeriod": {"start": start, **({"end": end} if end else {})},
    }
    return r


@pytest.mark.parametrize(
    ("end", "named"),
    [
        ("2026-09-15", "Insulin glargine stopped on 2026-09-15"),
        (None, "Insulin glargine stopped (started on 2025-03-01)"),
    ],
)
def test_a_stopped_medication_statement_is_named_like_a_stopped_prescription(
    decide: Decide, end: str | None, named: str
) -> None:
    d = decide(patient(), condition(T1DM), hba1c(80), statement("stopped", end=end))
    r = d.criteria["on-insulin"]
    assert r.result is Tri.UNKNOWN
    assert named in r.reason
    assert r.missing is None


@pytest.mark.parametrize("status", ["active", "completed", "intended", "not-taken", "unknown"])
def test_a_medication_statement_is_not_a_prescription(
    record: Callable[..., Any], status: str
) -> None:
    r = record(patient(), statement(status))
    assert (r.insulin, r.insulin_stopped) == ((), ())
