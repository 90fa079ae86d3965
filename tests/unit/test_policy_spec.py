"""The i-Port Advance commissioning policy, clause by clause, as executable examples.

Read top to bottom, this file is the policy as the service understands it. "Today" is
2026-11-21 unless a test says otherwise. Each section names the clause it covers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from policy import Decision, Outcome, Tri, load_policy, parse_policy
from tests.builders import (
    HYPO_EVENT,
    IMPAIRED_AWARENESS,
    LIPO,
    NON_ADHERENCE,
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

Decide = Callable[..., Decision]
# A deployment that lets recorded repeated hypoglycaemia meet "disabling" on its own.
RECORDS_MEET = load_policy("iport-advance", {"hypoglycaemiaRecordsMeet": True})

# A type 1 adult on basal-bolus MDI (bolus with meals + basal at night = 4 a day).
MDI = (
    insulin(text="with meals"),
    insulin(text="at night"),
)


def result(decision: Decision, criterion: str) -> Tri:
    return decision.criteria[criterion].result


# -- Type 1 pathway: "Type 1 Diabetes mellitus, who meet the NICE criteria ... AND one of" ------
def test_type1_adult_high_hba1c_on_mdi_with_needle_phobia_meets(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(75), *MDI, condition(text="Needle phobia"))
    assert d.outcome is Outcome.MEETS
    assert d.pathway == "type-1"
    assert result(d, "nice-pump-criteria") is Tri.MET
    assert result(d, "needle-phobia") is Tri.MET
    assert "type 1" in d.reason


def test_type1_adult_repeated_hypoglycaemia_is_for_a_clinician_to_judge_disabling(
    decide: Decide,
) -> None:
    # NICE: "disabling hypoglycaemia (repeated and unpredictable occurrence of hypoglycaemia that
    # results in persistent anxiety about recurrence and is associated with a significant
    # adverse effect on quality of life)": the record shows the hypoglycaemia, not the rest.
    record = (
        patient(),
        condition(T1DM),
        condition(IMPAIRED_AWARENESS, onset="2026-03-01"),
        condition(LIPO),
        *MDI,
    )
    d = decide(*record)
    assert d.outcome is Outcome.INSUFFICIENT
    hypo = d.criteria["disabling-hypoglycaemia"]
    assert hypo.result is Tri.UNKNOWN
    assert hypo.evidence  # the impaired awareness, shown as what the judgement rests on
    assert "disabling-hypoglycaemia" in d.decisive
    assert result(d, "lipohypertrophy") is Tri.MET
    assert "rotation" in d.criteria["lipohypertrophy"].reason  # "despite support and advice"
    # a clinician's confirmation decides it
    confirmed = decide(*record, confirmation("disabling-hypoglycaemia"))
    assert confirmed.outcome is Outcome.MEETS
    # a deployment may let the record decide (hypoglycaemiaRecordsMeet)
    assert decide(*record, policy=RECORDS_MEET).outcome is Outcome.MEETS


def test_type1_meeting_nice_but_no_iport_criterion_recorded_is_insufficient(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(75), *MDI)
    assert result(d, "nice-pump-criteria") is Tri.MET
    assert d.outcome is Outcome.INSUFFICIENT
    assert d.pathway == "type-1"


def test_type1_with_iport_criterion_but_nice_unknown_is_insufficient(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), condition(LIPO))  # no HbA1c, no hypoglycaemia record
    assert result(d, "nice-pump-criteria") is Tri.UNKNOWN
    assert d.outcome is Outcome.INSUFFICIENT


def test_type1_with_low_hba1c_and_everything_else_denied_by_clinician_does_not_meet(
    decide: Decide,
) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        hba1c(55),
        *MDI,
        confirmation("disabling-hypoglycaemia", False),
    )
    assert result(d, "nice-pump-criteria") is Tri.NOT_MET
    assert d.outcome is Outcome.DOES_NOT_MEET
    assert d.pathway == "type-1"


# -- NICE: "HbA1c levels have remained high (69 mmol/l or above) on MDI" ------------------------
@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (68, "mmol/mol", Tri.NOT_MET),
        (69, "mmol/mol", Tri.MET),  # "69 or above": 69 counts
        (70, "mmol/mol", Tri.MET),
        (8.4, "%", Tri.NOT_MET),  # (8.4 - 2.15) x 10.929 = 68.3
        (9.0, "%", Tri.MET),  # = 74.9
    ],
)
def test_nice_hba1c_threshold_is_69_or_above(
    decide: Decide, value: float, unit: str, expected: Tri
) -> None:
    d = decide(patient(), condition(T1DM), hba1c(value, unit), *MDI)
    assert result(d, "hba1c-69-or-above-on-mdi") is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(68, Tri.NOT_MET), (69, Tri.NOT_MET), (70, Tri.MET)],  # "> 69": 69 does not count
)
def test_iport_hba1c_with_poor_adherence_threshold_is_above_69(
    decide: Decide, value: float, expected: Tri
) -> None:
    d = decide(
        patient(), condition(T1DM), hba1c(value), condition(NON_ADHERENCE, onset="2026-05-01")
    )
    assert result(d, "hba1c-above-69-with-poor-adherence") is expected


def test_high_hba1c_without_documented_non_adherence_is_unknown_not_not_met(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(80))
    assert result(d, "hba1c-above-69-with-poor-adherence") is Tri.UNKNOWN


def test_non_adherence_older_than_its_lookback_does_not_count(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(80), condition(NON_ADHERENCE, onset="2023-01-01"))
    assert result(d, "hba1c-above-69-with-poor-adherence") is Tri.UNKNOWN


@pytest.mark.parametrize(
    ("taken", "expected"),
    [("2025-12-21", Tri.MET), ("2025-10-21", Tri.UNKNOWN)],  # 11 months old is used; 13 is not
)
def test_hba1c_lookback_is_12_months(decide: Decide, taken: str, expected: Tri) -> None:
    d = decide(patient(), condition(T1DM), hba1c(75, on=taken), *MDI)
    assert result(d, "hba1c-69-or-above-on-mdi") is expected


def test_the_latest_hba1c_decides_not_the_highest(decide: Decide) -> None:
    d = decide(
        patient(), condition(T1DM), hba1c(90, on="2026-02-01"), hba1c(60, on="2026-10-01"), *MDI
    )
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.NOT_MET
    assert "60" in d.criteria["hba1c-69-or-above-on-mdi"].reason


def test_high_hba1c_on_once_daily_insulin_is_not_mdi(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(75), insulin(text="once daily"))
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.NOT_MET


def test_high_hba1c_with_no_insulin_record_is_unknown(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(75))
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN


def test_high_hba1c_on_insulin_as_directed_is_unknown(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(75), insulin(text="as directed"))
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN


def test_no_hba1c_at_all_is_unknown(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), *MDI)
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN
    assert d.criteria["hba1c-69-or-above-on-mdi"].missing == "an HbA1c result"


# -- NICE: disabling hypoglycaemia --------------------------------------------------------------
def test_one_ordinary_hypoglycaemia_event_is_context_not_evidence(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), condition(HYPO_EVENT, onset="2026-08-01"))
    r = d.criteria["disabling-hypoglycaemia"]
    assert r.result is Tri.UNKNOWN
    assert len(r.context) == 1


def test_impaired_awareness_recognised_by_clinical_term(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        observation_finding(text="Impaired awareness of hypoglycaemia", on="2026-05-01"),
        policy=RECORDS_MEET,
    )
    r = d.criteria["disabling-hypoglycaemia"]
    assert r.result is Tri.MET
    assert r.evidence[0].matched_by == "term"


# -- NICE: "adults and children 12 years and older" / "Children younger than 12" ----------------
@pytest.mark.parametrize(
    ("born", "expected"),
    [
        ("2014-11-22", Tri.NOT_MET),  # 11 until tomorrow
        ("2014-11-21", Tri.MET),  # 12 today
        ("2014", Tri.UNKNOWN),  # partial: 11 or 12
        ("2010", Tri.MET),
        (None, Tri.UNKNOWN),
    ],
)
def test_age_12_or_over(decide: Decide, born: str | None, expected: Tri) -> None:
    d = decide(patient(born), condition(T1DM))
    assert result(d, "age-12-or-over") is expected


def test_child_under_12_meets_when_mdi_is_confirmed_impractical(decide: Decide) -> None:
    d = decide(patient("2018-03-01"), condition(T1DM), *MDI, confirmation("mdi-impractical"))
    assert result(d, "nice-pump-criteria") is Tri.MET
    assert d.outcome is Outcome.MEETS  # mdi-impractical is also the i-Port criterion
    assert d.criteria["mdi-impractical"].evidence[0].matched_by == "confirmation"


def test_child_under_12_with_high_hba1c_does_not_use_the_adult_route(decide: Decide) -> None:
    d = decide(patient("2018-03-01"), condition(T1DM), hba1c(80), *MDI, condition(LIPO))
    assert result(d, "nice-pump-criteria") is Tri.UNKNOWN  # needs MDI impractical
    assert d.outcome is Outcome.INSUFFICIENT


# -- Type 2 pathway: "if recommended by a Diabetes specialist AND" ------------------------------
def test_type2_specialist_recommended_on_twice_daily_insulin_meets(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T2DM),
        insulin(text="twice daily"),
        confirmation("diabetes-specialist-recommendation"),
    )
    assert d.outcome is Outcome.MEETS
    assert d.pathway == "type-2"
    assert result(d, "insulin-more-than-once-daily") is Tri.MET


def test_type2_referral_to_diabetologist_is_context_not_a_recommendation(decide: Decide) -> None:
    d = decide(
        patient(), condition(T2DM), insulin(text="twice daily"), condition(REFERRAL_DIABETOLOGIST)
    )
    r = d.criteria["diabetes-specialist-recommendation"]
    assert r.result is Tri.UNKNOWN
    assert r.context
    assert "Referral to diabetologist" in r.reason
    assert d.outcome is Outcome.INSUFFICIENT


@pytest.mark.parametrize(("text", "expected"), [("once daily", Tri.NOT_MET), ("BD", Tri.MET)])
def test_type2_more_than_one_injection_a_day(decide: Decide, text: str, expected: Tri) -> None:
    d = decide(patient(), condition(T2DM), insulin(text=text))
    assert result(d, "insulin-more-than-once-daily") is expected


def test_type2_specialist_declined_does_not_meet(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T2DM),
        insulin(text="BD"),
        confirmation("diabetes-specialist-recommendation", False),
    )
    assert d.outcome is Outcome.DOES_NOT_MEET
    assert d.pathway == "type-2"


# -- Diagnosis: absence is "not met" ------------------------------------------------------------
def test_no_diabetes_diagnosis_does_not_meet(decide: Decide) -> None:
    d = decide(patient(), hba1c(40))
    assert d.outcome is Outcome.DOES_NOT_MEET
    assert d.pathway is None
    assert "no type 1 diabetes or type 2 diabetes diagnosis" in d.reason


@pytest.mark.parametrize(
    ("clinical", "verification", "counts"),
    [
        ("active", "confirmed", True),
        (None, None, True),
        ("recurrence", "confirmed", True),
        ("relapse", None, True),
        ("resolved", "confirmed", False),
        ("inactive", "confirmed", False),
        ("remission", "confirmed", False),
        ("active", "refuted", False),
        ("active", "entered-in-error", False),
        ("active", "provisional", None),  # a query: unknown, never met
        ("active", "unconfirmed", None),
        ("active", "differential", None),
    ],
)
def test_which_conditions_count(
    decide: Decide, clinical: str | None, verification: str | None, counts: bool | None
) -> None:
    d = decide(patient(), condition(T1DM, clinical=clinical, verification=verification))
    expected = Tri.UNKNOWN if counts is None else Tri.MET if counts else Tri.NOT_MET
    assert result(d, "type-1-diabetes") is expected


def test_diabetes_coded_in_icd10_with_or_without_the_dot(decide: Decide) -> None:
    for code in ("E10.9", "E109"):
        d = decide(patient(), condition(("http://hl7.org/fhir/sid/icd-10", code, "Type 1 DM")))
        assert result(d, "type-1-diabetes") is Tri.MET


# -- Absence of a finding is unknown, never "not met" -------------------------------------------
@pytest.mark.parametrize(
    "criterion",
    [
        "needle-phobia",
        "lipohypertrophy",
        "disabling-hypoglycaemia",
        "mdi-impractical",
        "diabetes-specialist-recommendation",
    ],
)
def test_absent_findings_are_unknown(decide: Decide, criterion: str) -> None:
    d = decide(patient(), condition(T1DM))
    assert result(d, criterion) is Tri.UNKNOWN
    assert d.criteria[criterion].missing


# -- Term matching where no verified code exists ------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Needle phobia", Tri.MET),
        ("Fear of needles", Tri.MET),
        ("injection phobia", Tri.MET),
        ("No needle phobia", Tri.UNKNOWN),
        ("Patient denies fear of needles", Tri.UNKNOWN),
        ("needle phobia - resolved", Tri.UNKNOWN),
        ("Phobia of spiders", Tri.UNKNOWN),
    ],
)
def test_needle_phobia_by_term(decide: Decide, text: str, expected: Tri) -> None:
    d = decide(patient(), condition(T1DM), condition(text=text))
    r = d.criteria["needle-phobia"]
    assert r.result is expected
    if expected is Tri.MET:
        assert r.evidence[0].matched_by == "term"
        assert "matched by clinical term" in r.reason


def test_needle_phobia_coded_in_icd10cm(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(
            ("http://hl7.org/fhir/sid/icd-10-cm", "F40.231", "Fear of injections and transfusions")
        ),
    )
    assert d.criteria["needle-phobia"].evidence[0].matched_by == "code"


# -- Clinician confirmation ---------------------------------------------------------------------
def test_confirmation_false_overrides_a_coded_finding(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), condition(LIPO), confirmation("lipohypertrophy", False))
    assert result(d, "lipohypertrophy") is Tri.NOT_MET


def test_latest_confirmation_wins(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        confirmation("needle-phobia", False, on="2026-01-01"),
        confirmation("needle-phobia", True, on="2026-09-01"),
    )
    assert result(d, "needle-phobia") is Tri.MET


@pytest.mark.parametrize(
    "bad",
    [
        {"effectiveDateTime": None},  # undated
        {"status": "preliminary"},
        {"status": "entered-in-error"},
        {"valueBoolean": "yes"},
    ],
)
def test_confirmations_that_do_not_count(decide: Decide, bad: dict[str, Any]) -> None:
    c = confirmation("needle-phobia")
    c.update(bad)
    if c.get("effectiveDateTime") is None:
        c.pop("effectiveDateTime")
    d = decide(patient(), condition(T1DM), c)
    assert result(d, "needle-phobia") is Tri.UNKNOWN


def test_a_confirmation_of_the_derived_nice_criteria_is_ignored_and_shown(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), confirmation("nice-pump-criteria"), condition(LIPO))
    r = d.criteria["nice-pump-criteria"]
    assert r.result is Tri.UNKNOWN
    assert not r.confirmable
    assert any("read from the record" in e.summary for e in r.context)
    assert d.outcome is Outcome.INSUFFICIENT


# -- Robustness: a malformed resource is skipped and reported -----------------------------------
def test_malformed_resources_are_skipped_and_reported(decide: Decide) -> None:
    broken_condition = {"resourceType": "Condition", "id": "bad1", "code": "diabetes"}
    broken_hba1c = hba1c(75)
    broken_hba1c["valueQuantity"]["value"] = "seventy-five"
    bad_date = hba1c(75, on="21/11/2026")
    d = decide(
        patient(), condition(T1DM), broken_condition, broken_hba1c, bad_date, "not a resource", None
    )
    assert result(d, "type-1-diabetes") is Tri.MET
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN
    assert any("Condition/bad1" in w for w in d.warnings)
    assert len(d.warnings) == 5


def test_resources_of_another_patient_are_ignored(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM, pid="someone-else"))
    assert result(d, "type-1-diabetes") is Tri.NOT_MET
    assert any("another patient" in w for w in d.warnings)


# -- Policy metadata ----------------------------------------------------------------------------
def test_decision_cites_policy_version_and_review_date(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM))
    assert d.policy.review_due == date(2028, 12, 31)
    assert d.policy.version == "2025-12-04"
    assert not d.policy_overdue
    assert decide(patient(), today=date(2029, 1, 1)).policy_overdue


def test_thresholds_are_configurable(decide: Decide) -> None:
    from policy.loading import policy_document

    doc = policy_document("iport-advance")
    stricter = parse_policy(doc, {"niceHba1cThreshold": 75, "hba1cLookbackMonths": 6})
    d = decide(patient(), condition(T1DM), hba1c(72), *MDI, policy=stricter)
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.NOT_MET
    assert any("6 months" in a for a in stricter.assumptions)


# -- Records that must not let the service claim more than they show -----------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Needle phobia: denies",
        "Needle phobia - none",
        "fear of needles? no",
        "Needle phobia screen negative",
    ],
)
def test_a_negation_after_the_term_denies_it(decide: Decide, text: str) -> None:
    d = decide(patient(), condition(T1DM), observation_finding(text=text))
    assert result(d, "needle-phobia") is Tri.UNKNOWN


@pytest.mark.parametrize(
    "value",
    [
        {
            "valueCodeableConcept": {
                "coding": [{"system": "http://snomed.info/sct", "code": "373067005"}]
            }
        },
        {"valueCodeableConcept": {"text": "No"}},
        {"valueString": "none"},
        {"valueBoolean": False},
    ],
)
def test_an_observation_answering_no_is_not_the_finding(
    decide: Decide, value: dict[str, Any]
) -> None:
    o = observation_finding(LIPO)
    o.update(value)
    assert result(decide(patient(), condition(T1DM), o), "lipohypertrophy") is Tri.UNKNOWN


def test_a_reissued_product_counts_once_even_beside_an_unstated_frequency(decide: Decide) -> None:
    glargine = ("http://snomed.info/sct", "126212009", "Insulin glargine")
    d = decide(
        patient(),
        condition(T2DM),
        insulin(glargine, text="10 units once daily"),
        insulin(glargine, text="10 units once daily"),
        insulin(text="as directed"),  # aspart: frequency unstated
    )
    assert result(d, "insulin-more-than-once-daily") is Tri.UNKNOWN  # known: 1/day


def test_the_same_code_issued_twice_without_a_display_counts_once(decide: Decide) -> None:
    a, b = insulin(text="once daily"), insulin(text="once daily")
    for m in (a, b):
        del m["medicationCodeableConcept"]["text"]
        del m["medicationCodeableConcept"]["coding"][0]["display"]
    assert (
        result(decide(patient(), condition(T2DM), a, b), "insulin-more-than-once-daily")
        is Tri.NOT_MET
    )


def test_dosage_steps_that_follow_one_another_are_not_added(decide: Decide) -> None:
    m = insulin()
    m["dosageInstruction"] = [
        {"sequence": 1, "text": "10 units once daily for 7 days"},
        {"sequence": 2, "text": "then 12 units once daily"},
    ]
    d = decide(patient(), condition(T1DM), hba1c(80), m)
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.NOT_MET  # 1 a day, not 2


def test_insulin_supplies_are_not_insulin(decide: Decide) -> None:
    needles = insulin(text="up to four times a day")
    needles["medicationCodeableConcept"] = {"text": "BD Viva insulin pen needles 4mm"}
    d = decide(patient(), condition(T2DM), needles, insulin(text="once daily"))
    assert result(d, "insulin-more-than-once-daily") is Tri.NOT_MET


def test_a_newer_unreadable_hba1c_stops_an_older_one_deciding(decide: Decide) -> None:
    unreadable = hba1c(80, "mmol/L", on="2026-10-01")
    d = decide(patient(), condition(T1DM), unreadable, hba1c(75, on="2026-03-01"), *MDI)
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN
    assert result(d, "hba1c-above-69-with-poor-adherence") is Tri.UNKNOWN


def test_same_day_confirmations_are_ordered_by_time(decide: Decide) -> None:
    morning = confirmation("needle-phobia", True, on="2026-10-01T09:00:00Z")
    morning["id"] = "zzz-morning"
    afternoon = confirmation("needle-phobia", False, on="2026-10-01T15:00:00Z")
    afternoon["id"] = "aaa-afternoon"
    assert (
        result(decide(patient(), condition(T1DM), morning, afternoon), "needle-phobia")
        is Tri.NOT_MET
    )


NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.mark.parametrize(
    ("subject", "said"),
    [
        (None, "must reference the patient"),
        ({"identifier": {"value": "9434765919"}}, "identifier has no system"),
        # The patient's own NHS number: this service writes confirmations with a reference,
        # so one naming the patient only by identifier is not one of its confirmations.
        ({"identifier": {"system": NHS_NUMBER, "value": "9434765919"}}, "must reference"),
        ({"reference": "urn:uuid:1234"}, "must reference the patient"),
    ],
)
def test_a_confirmation_must_reference_this_patient(
    decide: Decide, subject: Any, said: str
) -> None:
    c = confirmation("mdi-impractical")
    if subject is None:
        del c["subject"]
    else:
        c["subject"] = subject
    p = patient("2018-01-01")
    p["identifier"] = [{"system": NHS_NUMBER, "value": "9434765919"}]
    d = decide(p, condition(T1DM), c)
    assert result(d, "mdi-impractical") is Tri.UNKNOWN
    assert any(said in w for w in d.warnings), d.warnings


def test_the_nice_criteria_cite_the_branch_that_met_them(decide: Decide) -> None:
    d = decide(
        patient("2018-01-01"), condition(T1DM), hba1c(80), *MDI, confirmation("mdi-impractical")
    )
    r = d.criteria["nice-pump-criteria"]
    assert r.reason == "Met through: Aged 12 or over: not met; MDI impractical or inappropriate."
    assert {e.ref.split("/")[0] for e in r.evidence} == {"Patient", "Observation"}
    assert not any(e.ref.startswith("MedicationRequest") for e in r.evidence)  # adult route unused


def test_hostile_confirmation_and_date_values_are_skipped_not_fatal(decide: Decide) -> None:
    c = confirmation("needle-phobia")
    c["code"]["coding"][0]["code"] = 5
    far = hba1c(75, on="9999-12-31T23:30:00-01:00")
    d = decide(patient(), condition(T1DM), c, far)
    assert len(d.warnings) == 2


# -- Every route presupposes insulin injections ---------------------------------------------------
def test_type2_with_no_insulin_prescription_never_meets_even_with_confirmations(
    decide: Decide,
) -> None:
    """'multiple daily injections are impractical', 'avoiding/missing insulin injections',
    'injecting into lipo-hypertrophied areas': a port is for someone injecting insulin."""
    d = decide(
        patient(),
        condition(T2DM),
        confirmation("diabetes-specialist-recommendation"),
        confirmation("mdi-impractical"),
    )
    assert result(d, "on-insulin") is Tri.UNKNOWN
    assert "no current insulin prescription" in d.criteria["on-insulin"].reason.lower()
    assert d.outcome is Outcome.INSUFFICIENT
    assert "on-insulin" in d.decisive


def test_type1_child_with_no_insulin_prescription_is_insufficient(decide: Decide) -> None:
    d = decide(patient("2018-03-01"), condition(T1DM), confirmation("mdi-impractical"))
    assert result(d, "on-insulin") is Tri.UNKNOWN
    assert d.outcome is Outcome.INSUFFICIENT


def test_a_confirmation_cannot_stand_in_for_an_insulin_prescription(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T2DM),
        confirmation("on-insulin"),
        confirmation("diabetes-specialist-recommendation"),
        confirmation("mdi-impractical"),
    )
    assert result(d, "on-insulin") is Tri.UNKNOWN
    assert not d.criteria["on-insulin"].confirmable
    assert d.outcome is Outcome.INSUFFICIENT


def test_an_ended_insulin_prescription_does_not_meet_the_insulin_gate(decide: Decide) -> None:
    ended = insulin(text="with meals")
    ended["dispenseRequest"] = {"validityPeriod": {"end": "2025-01-01"}}
    d = decide(patient(), condition(T2DM), ended, confirmation("mdi-impractical"))
    assert result(d, "on-insulin") is Tri.UNKNOWN
