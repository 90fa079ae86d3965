"""Third policy: NICE TA943 hybrid closed loop (HCL) eligibility, through the pure core.

Each example is one clause of TA943 section 1 read against a patient's FHIR record on
2026-11-21 (see docs/policy-interpretation.md, "Hybrid closed loop").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from policy import Decision, Outcome, Policy, Tri, load_policy
from tests.builders import (
    DMD,
    HYPO_EVENT,
    IMPAIRED_AWARENESS,
    PID,
    SNOMED,
    T1DM,
    T2DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    observation_finding,
    patient,
)

Decide = Callable[..., Decision]
HCL = load_policy("nice-hybrid-closed-loop")
PUMP = load_policy("nice-insulin-pump")
LIBRE_2 = (DMD, "39094611000001105", "FreeStyle Libre 2 Sensor (Abbott Laboratories Ltd)")
DEXCOM_G7 = (DMD, "43230011000001106", "Dexcom G7 Sensor (Dexcom International Ltd)")
PREGNANT = (SNOMED, "77386006", "Pregnancy")
AID = (SNOMED, "1516031000000105", "Uses continuous subcutaneous automated insulin delivery system")
CHILD = "2010-03-01"  # aged 16 on 2026-11-21


def sensor(code: tuple[str, str, str] = LIBRE_2, *, on: str = "2026-10-01") -> dict[str, Any]:
    """A glucose sensor prescription: how primary care records CGM use."""
    return {**insulin(code), "authoredOn": on, "dosageInstruction": []}


def pump_in_use(on: str = "2026-08-01") -> dict[str, Any]:
    """A DeviceUseStatement for an insulin pump Device, as a diabetes service records it."""
    return {
        "resourceType": "DeviceUseStatement",
        "id": "dus-pump",
        "status": "active",
        "subject": {"reference": f"Patient/{PID}"},
        "device": {"reference": "Device/pump-1"},
        "recordedOn": on,
    }


PUMP_DEVICE = {
    "resourceType": "Device",
    "id": "pump-1",
    "status": "active",
    "patient": {"reference": f"Patient/{PID}"},
    "type": {"coding": [{"system": SNOMED, "code": "69805005", "display": "Insulin pump"}]},
}


def hcl(decide: Decide, *resources: Any) -> Decision:
    return decide(*resources, policy=HCL)


# -- 1.1 adults ----------------------------------------------------------------------------------
def test_adult_with_hba1c_58_using_cgm_meets(decide: Decide) -> None:
    d = hcl(decide, patient(), condition(T1DM), hba1c(58), sensor())
    assert d.outcome is Outcome.MEETS
    assert d.pathway == "adult"
    assert d.criteria["uses-intermittently-scanned-cgm"].result is Tri.MET
    assert d.criteria["already-on-hcl"].result is Tri.NOT_MET


def test_adult_with_disabling_hypoglycaemia_on_a_pump_meets(decide: Decide) -> None:
    record = (
        patient(),
        condition(T1DM),
        hba1c(50),
        condition(IMPAIRED_AWARENESS, onset="2026-05-01"),
        PUMP_DEVICE,
        pump_in_use(),
    )
    # the record shows repeated hypoglycaemia; that it is disabling is a clinician's judgement
    d = hcl(decide, *record)
    assert d.outcome is Outcome.INSUFFICIENT
    assert d.criteria["disabling-hypoglycaemia"].result is Tri.UNKNOWN
    assert "disabling-hypoglycaemia" in d.decisive
    d = hcl(decide, *record, confirmation("disabling-hypoglycaemia"))
    assert d.outcome is Outcome.MEETS
    assert d.criteria["hba1c-58-or-above"].result is Tri.NOT_MET
    assert d.criteria["disabling-hypoglycaemia"].result is Tri.MET
    assert d.criteria["uses-csii"].result is Tri.MET
    assert "dus-pump" in d.criteria["uses-csii"].evidence[0].ref


def test_adult_at_58_with_no_technology_recorded_is_unknown_not_refused(decide: Decide) -> None:
    """TA943 asks for best possible management with CSII or CGM first; no record of them is not
    evidence they are not used (CGM is often supplied by the hospital): unknown, confirmable."""
    d = hcl(decide, patient(), condition(T1DM), hba1c(70))
    assert d.outcome is Outcome.INSUFFICIENT
    tech = d.criteria["diabetes-technology-in-use"]
    assert tech.result is Tri.UNKNOWN
    assert d.criteria["uses-real-time-cgm"].confirmable
    # a clinician's confirmation that none is used makes it "does not meet"
    refused = hcl(
        decide,
        patient(),
        condition(T1DM),
        hba1c(70),
        *(
            confirmation(c, False)
            for c in ("uses-csii", "uses-real-time-cgm", "uses-intermittently-scanned-cgm")
        ),
        *(confirmation(c, False) for c in ("pregnant", "planning-pregnancy")),
    )
    assert refused.outcome is Outcome.DOES_NOT_MEET


@pytest.mark.parametrize(
    ("value", "unit", "result"),
    [
        (58, "mmol/mol", Tri.MET),
        (57, "mmol/mol", Tri.NOT_MET),
        (57.9, "mmol/mol", Tri.NOT_MET),
        (7.5, "%", Tri.MET),  # (7.5 − 2.15) × 10.929 = 58.5
        (7.4, "%", Tri.NOT_MET),  # 57.4
    ],
)
def test_hba1c_58_boundary_and_percent(
    decide: Decide, value: float, unit: str, result: Tri
) -> None:
    d = hcl(decide, patient(), condition(T1DM), hba1c(value, unit), sensor(DEXCOM_G7))
    assert d.criteria["hba1c-58-or-above"].result is result


def test_the_latest_hba1c_decides_not_every_result(decide: Decide) -> None:
    d = hcl(
        decide,
        patient(),
        condition(T1DM),
        hba1c(49, on="2026-03-01"),
        hba1c(61, on="2026-10-01"),
        sensor(),
    )
    assert d.criteria["hba1c-58-or-above"].result is Tri.MET
    assert d.outcome is Outcome.MEETS


def test_an_implausible_newest_hba1c_is_unknown_and_an_older_one_does_not_decide(
    decide: Decide,
) -> None:
    d = hcl(
        decide,
        patient(),
        condition(T1DM),
        hba1c(70, on="2026-03-01"),
        hba1c(580, on="2026-10-01"),
        sensor(),
    )
    result = d.criteria["hba1c-58-or-above"]
    assert result.result is Tri.UNKNOWN
    assert "implausible" in result.reason
    assert d.outcome is Outcome.INSUFFICIENT


def test_stale_technology_use_is_unknown_and_says_so(decide: Decide) -> None:
    """A sensor last issued more than the supply window ago (6 months) is not current."""
    d = hcl(decide, patient(), condition(T1DM), hba1c(70), sensor(on="2025-06-01"))
    result = d.criteria["uses-intermittently-scanned-cgm"]
    assert result.result is Tri.UNKNOWN
    assert "more than 6 months ago" in result.reason
    assert d.outcome is Outcome.INSUFFICIENT


def test_an_assigned_active_device_is_in_use_without_a_date(decide: Decide) -> None:
    """A pump assigned to the patient (``Device.patient``) and active is durable: in use until
    it is made inactive, however old the record; the card says no start date is recorded."""
    d = hcl(decide, patient(), condition(T1DM), hba1c(70), PUMP_DEVICE)
    result = d.criteria["uses-csii"]
    assert result.result is Tri.MET
    assert "no start date recorded" in result.reason


@pytest.mark.parametrize(
    ("device", "use"),
    [
        ({**PUMP_DEVICE, "status": "inactive"}, {}),  # a pump no longer assigned
        (PUMP_DEVICE, {"status": "completed"}),  # use has ended
        ({**PUMP_DEVICE, "patient": {"reference": "Patient/someone-else"}}, {}),
    ],
)
def test_devices_not_in_use_by_this_patient_do_not_count(
    decide: Decide, device: dict[str, Any], use: dict[str, Any]
) -> None:
    d = hcl(decide, patient(), condition(T1DM), hba1c(70), device, {**pump_in_use(), **use})
    assert d.criteria["uses-csii"].result is Tri.UNKNOWN
    assert not [e for e in d.criteria["uses-csii"].evidence if e.ref.startswith("DeviceUse")]


# -- 1.2 children and young people ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("born", "pathway", "outcome"),
    [
        ("2009-11-22", "child-or-young-person", Outcome.MEETS),  # 17 on 2026-11-21
        ("2008-11-21", None, Outcome.INSUFFICIENT),  # 18 today: the adult route, unknown
    ],
)
def test_children_and_young_people_under_18(
    decide: Decide, born: str, pathway: str | None, outcome: Outcome
) -> None:
    d = hcl(decide, patient(born), condition(T1DM), hba1c(50))
    assert d.outcome is outcome
    if pathway:
        assert d.pathway == pathway
        assert d.reason.endswith("pathway: Aged 18 or over: not met.")


def test_a_child_with_type_2_diabetes_does_not_meet(decide: Decide) -> None:
    d = hcl(decide, patient(CHILD), condition(T2DM), hba1c(80))
    assert d.outcome is Outcome.DOES_NOT_MEET
    assert d.reason == "Does not meet the criteria: no type 1 diabetes diagnosis is recorded."


# -- 1.3 pregnancy -------------------------------------------------------------------------------
def test_pregnant_adult_meets_whatever_her_hba1c(decide: Decide) -> None:
    d = hcl(decide, patient(), condition(T1DM), hba1c(48), condition(PREGNANT, onset="2026-08-15"))
    assert d.outcome is Outcome.MEETS
    assert d.pathway == "pregnancy"


def test_a_pregnancy_older_than_the_window_is_not_current(decide: Decide) -> None:
    d = hcl(decide, patient(), condition(T1DM), hba1c(48), condition(PREGNANT, onset="2025-09-01"))
    assert d.criteria["pregnant"].result is Tri.UNKNOWN


def test_planning_pregnancy_by_clinical_term_meets(decide: Decide) -> None:
    d = hcl(
        decide,
        patient(),
        condition(T1DM),
        hba1c(48),
        observation_finding(text="Planning a pregnancy - preconception advice", on="2026-09-01"),
    )
    assert d.criteria["planning-pregnancy"].result is Tri.MET
    assert d.outcome is Outcome.MEETS


def test_planning_pregnancy_confirmed_by_a_clinician_meets(decide: Decide) -> None:
    d = hcl(decide, patient(), condition(T1DM), hba1c(48), confirmation("planning-pregnancy"))
    assert d.outcome is Outcome.MEETS


# -- already on HCL, conditions of use, deceased ------------------------------------------------
@pytest.mark.parametrize(
    "in_use",
    [
        condition(AID, onset="2025-01-10"),
        observation_finding(text="Omnipod 5 hybrid closed loop started", on="2024-05-01"),
    ],
)
def test_already_using_hcl_meets_and_is_silenced(decide: Decide, in_use: dict[str, Any]) -> None:
    d = hcl(decide, patient(CHILD), condition(T1DM), in_use)
    assert d.outcome is Outcome.MEETS
    silencers = HCL.info.presentation["silenceWhenMet"]
    assert silencers == ["already-on-hcl"]
    assert d.criteria["already-on-hcl"].result is Tri.MET


def test_a_referral_for_hcl_is_not_hcl_in_use(decide: Decide) -> None:
    referral = {
        "resourceType": "ServiceRequest",
        "id": "ref-hcl",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{PID}"},
        "code": {"text": "Referral for hybrid closed loop assessment"},
        "authoredOn": "2026-10-01",
    }
    d = hcl(decide, patient(CHILD), condition(T1DM), referral)
    assert d.criteria["already-on-hcl"].result is Tri.NOT_MET


def test_conditions_of_use_are_confirmable_shown_and_never_gate(decide: Decide) -> None:
    d = hcl(decide, patient(CHILD), condition(T1DM))
    for cid in ("multidisciplinary-team-support", "able-to-use-hcl"):
        assert d.criteria[cid].result is Tri.UNKNOWN
        assert d.criteria[cid].confirmable
    assert d.outcome is Outcome.MEETS
    assert any("Conditions of use" in a for a in d.assumptions)


def test_deceased_is_never_assessed(decide: Decide) -> None:
    d = hcl(decide, {**patient(CHILD), "deceasedBoolean": True}, condition(T1DM))
    assert d.outcome is Outcome.INSUFFICIENT
    assert d.deceased


def test_only_judgement_criteria_are_confirmable() -> None:
    confirmable = {c.id for c in HCL.criteria if c.confirmable}
    assert confirmable == {
        "disabling-hypoglycaemia",
        "uses-csii",
        "uses-real-time-cgm",
        "uses-intermittently-scanned-cgm",
        "pregnant",
        "planning-pregnancy",
        "multidisciplinary-team-support",
        "able-to-use-hcl",
    }


def test_a_confirmation_of_the_hba1c_criterion_is_not_used(decide: Decide) -> None:
    d = hcl(
        decide, patient(), condition(T1DM), hba1c(50), sensor(), confirmation("hba1c-58-or-above")
    )
    assert d.criteria["hba1c-58-or-above"].result is Tri.NOT_MET


# -- the three policies read shared criteria identically -----------------------------------------
CASES = [
    (patient(), condition(T1DM), hba1c(75)),
    (patient(CHILD), condition(T1DM), hba1c(80)),
    (patient(), condition(T1DM), condition(IMPAIRED_AWARENESS, onset="2026-05-01")),
    (patient(), condition(T1DM), condition(IMPAIRED_AWARENESS, onset="2018-01-01")),
    (patient(), condition(T1DM), condition(HYPO_EVENT, onset="2026-08-01")),
    (patient(), condition(T1DM), condition(T2DM), hba1c(75)),
    (patient(), condition(text="Type 1 diabetes"), hba1c(75)),
    (patient(), hba1c(75), insulin()),
    (patient(), condition(T1DM), confirmation("disabling-hypoglycaemia")),
    (patient(), condition(T1DM), confirmation("disabling-hypoglycaemia", on="2025-01-01")),
    (patient(None), condition(T1DM)),
]


@pytest.mark.parametrize("resources", CASES)
def test_the_three_policies_read_shared_criteria_identically(
    decide: Decide, iport_policy: Policy, resources: tuple[Any, ...]
) -> None:
    shared = ["type-1-diabetes", "disabling-hypoglycaemia"]
    decisions = [decide(*resources, policy=p) for p in (iport_policy, PUMP, HCL)]
    for cid in shared:
        results = {(d.criteria[cid].result, d.criteria[cid].reason) for d in decisions}
        assert len(results) == 1, (cid, results)
