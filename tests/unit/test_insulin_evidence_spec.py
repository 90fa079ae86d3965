"""Which prescriptions are insulin, of which kind, and what a card says about insulin stopped.

docs/policy-interpretation.md ("Facts", MedicationRequest (insulin)) in executable examples,
through ``policy.evaluate``; "today" is 2026-11-21.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from policy import Decision, Tri, load_policy
from tests.builders import T1DM, condition, hba1c, insulin, patient

Decide = Callable[..., Decision]
PUMP = load_policy("nice-insulin-pump")
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
