"""A criterion is met only by evidence that is about this patient, current and plausible.

Anything less is *unknown* with the reason shown, never *met*. Each section is one rule of
docs/policy-interpretation.md ("Evidence that counts"), written as executable examples
through the pure core. "Today" is 2026-11-21.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from policy import Decision, Outcome, PolicyError, Tri, load_policy, parse_policy
from policy.loading import policy_document
from tests.builders import (
    ASPART,
    GLARGINE_VTM,
    HYPO_COMA,
    HYPO_EVENT,
    IMPAIRED_AWARENESS,
    LIPO,
    NON_ADHERENCE,
    PREMIXED_ASPART,
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

GLARGINE = GLARGINE_VTM  # basal
NOVOMIX = PREMIXED_ASPART
BASAL_BOLUS = (insulin(GLARGINE, text="once daily at night"), insulin(ASPART, text="with meals"))
T1_REMISSION = (SNOMED, "703137001", "Type I diabetes mellitus in remission")
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


# Where a deployment lets recorded repeated hypoglycaemia meet "disabling" on its own (the
# default asks a clinician): these examples read the windows and the counting of days.
RECORDS_MEET = load_policy("iport-advance", {"hypoglycaemiaRecordsMeet": True})
HCL = load_policy("nice-hybrid-closed-loop")


def result(decision: Decision, criterion: str) -> Tri:
    return decision.criteria[criterion].result


def iport_doc() -> dict[str, Any]:
    doc: dict[str, Any] = policy_document("iport-advance")
    return doc


# -- 1. Currency: a finding counts only inside its window ------------------------------------------
@pytest.mark.parametrize(
    ("criterion", "code", "inside", "outside"),
    [
        ("lipohypertrophy", LIPO, "2025-11-21", "2025-11-20"),  # 12 months
        ("needle-phobia", None, "2024-11-21", "2024-11-20"),  # 24 months
        ("disabling-hypoglycaemia", IMPAIRED_AWARENESS, "2025-11-21", "2025-11-20"),  # 12 months
    ],
)
def test_a_finding_counts_only_inside_its_window(
    decide: Decide, criterion: str, code: Any, inside: str, outside: str
) -> None:
    def at(day: str) -> Decision:
        if code is None:
            return decide(patient(), condition(T1DM), condition(text="Needle phobia", onset=day))
        return decide(patient(), condition(T1DM), condition(code, onset=day), policy=RECORDS_MEET)

    assert result(at(inside), criterion) is Tri.MET
    stale = at(outside).criteria[criterion]
    assert stale.result is Tri.UNKNOWN
    assert f"last recorded on {outside}" in stale.reason
    assert stale.confirmable  # "still current" is a clinician's judgement


def test_poor_adherence_counts_for_24_months(decide: Decide) -> None:
    def at(day: str) -> Tri:
        d = decide(patient(), condition(T1DM), hba1c(80), condition(NON_ADHERENCE, onset=day))
        return result(d, "hba1c-above-69-with-poor-adherence")

    assert at("2024-11-21") is Tri.MET
    assert at("2024-11-20") is Tri.UNKNOWN


def test_an_eight_year_old_active_finding_is_unknown_and_shown_with_its_date(
    decide: Decide,
) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        condition(LIPO, onset="2018-03-01"),
        condition(IMPAIRED_AWARENESS, onset="2018-03-01"),
    )
    for criterion in ("lipohypertrophy", "disabling-hypoglycaemia"):
        r = d.criteria[criterion]
        assert r.result is Tri.UNKNOWN
        assert "last recorded on 2018-03-01" in r.reason
        assert any("last recorded on 2018-03-01" in e.summary for e in r.evidence)
    assert d.outcome is not Outcome.MEETS


def test_the_recorded_date_decides_over_an_older_onset(decide: Decide) -> None:
    lipo = condition(LIPO, onset="2017-01-01")
    lipo["recordedDate"] = "2026-10-01"  # recorded at this year's review
    assert result(decide(patient(), condition(T1DM), lipo), "lipohypertrophy") is Tri.MET
    old = condition(LIPO, onset="2026-10-01")
    old["recordedDate"] = "2017-01-01"  # the record is from 2017, whatever onset it claims
    assert result(decide(patient(), condition(T1DM), old), "lipohypertrophy") is Tri.UNKNOWN


def test_an_undated_finding_is_never_enough_on_its_own(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), condition(LIPO, onset=None))
    r = d.criteria["lipohypertrophy"]
    assert r.result is Tri.UNKNOWN
    assert "without a date" in r.reason


def test_a_finding_dated_after_today_does_not_count(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), condition(LIPO, onset="2027-01-01"))
    assert result(d, "lipohypertrophy") is Tri.UNKNOWN


def test_windows_are_parameters(decide: Decide) -> None:
    longer = parse_policy(iport_doc(), {"lipohypertrophyLookbackMonths": 120})
    d = decide(patient(), condition(T1DM), condition(LIPO, onset="2018-03-01"), policy=longer)
    assert result(d, "lipohypertrophy") is Tri.MET


# -- 2. Confirmations: only judgement criteria, only while valid -----------------------------------
JUDGEMENT = {
    "mdi-impractical",
    "diabetes-specialist-recommendation",
    "needle-phobia",
    "lipohypertrophy",
    "disabling-hypoglycaemia",
    "hba1c-above-69-with-poor-adherence",
}


def test_only_judgement_criteria_are_confirmable(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM))
    assert {cid for cid, r in d.criteria.items() if r.confirmable} == JUDGEMENT


@pytest.mark.parametrize(
    "criterion",
    [
        "type-1-diabetes",
        "type-2-diabetes",
        "age-12-or-over",
        "hba1c-69-or-above-on-mdi",
        "insulin-more-than-once-daily",
        "nice-pump-criteria",
    ],
)
def test_a_confirmation_of_a_data_criterion_is_ignored_and_shown(
    decide: Decide, criterion: str
) -> None:
    d = decide(patient(None), hba1c(52), insulin(text="once daily"), confirmation(criterion))
    r = d.criteria[criterion]
    assert r.result is not Tri.MET
    assert any(e.matched_by == "confirmation" for e in r.context)
    assert d.outcome is not Outcome.MEETS


def test_a_2019_confirmation_does_not_outrank_a_current_hba1c(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        hba1c(52),
        *BASAL_BOLUS,
        confirmation("hba1c-69-or-above-on-mdi", on="2019-05-01"),
        confirmation("nice-pump-criteria", on="2019-05-01"),
        condition(text="Needle phobia"),
    )
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.NOT_MET
    assert d.outcome is not Outcome.MEETS


@pytest.mark.parametrize(
    ("on", "expected"),
    [("2025-11-21", Tri.MET), ("2025-11-20", Tri.UNKNOWN), ("2026-11-22", Tri.UNKNOWN)],
)
def test_a_confirmation_counts_for_12_months_and_not_from_the_future(
    decide: Decide, on: str, expected: Tri
) -> None:
    d = decide(patient(), condition(T1DM), confirmation("needle-phobia", on=on))
    assert result(d, "needle-phobia") is expected


def test_an_expired_confirmation_is_shown_as_expired(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), confirmation("lipohypertrophy", on="2019-05-01"))
    r = d.criteria["lipohypertrophy"]
    assert r.result is Tri.UNKNOWN
    assert any("older than 12 months" in e.summary for e in r.context)
    current = decide(
        patient(),
        condition(T1DM),
        hba1c(80),
        confirmation("hba1c-above-69-with-poor-adherence", on="2019-05-01"),
        confirmation("hba1c-above-69-with-poor-adherence", on="2026-10-01"),
    ).criteria["hba1c-above-69-with-poor-adherence"]
    assert current.result is Tri.MET
    assert not any("older than" in e.summary for e in current.context)


def test_confirmation_validity_is_a_parameter(decide: Decide) -> None:
    policy = parse_policy(iport_doc(), {"confirmationValidMonths": 36})
    d = decide(
        patient(), condition(T1DM), confirmation("needle-phobia", on="2024-01-01"), policy=policy
    )
    assert result(d, "needle-phobia") is Tri.MET


def test_a_confirmation_false_makes_the_criterion_not_met(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        condition(text="Needle phobia"),
        confirmation("needle-phobia", False),
    )
    assert result(d, "needle-phobia") is Tri.NOT_MET


@pytest.mark.parametrize(
    ("status", "counts"), [("final", True), ("amended", True), ("preliminary", False)]
)
def test_a_confirmation_counts_only_when_final_or_amended(
    decide: Decide, status: str, counts: bool
) -> None:
    c = confirmation("lipohypertrophy")
    c["status"] = status
    d = decide(patient(), condition(T1DM), c)
    assert result(d, "lipohypertrophy") is (Tri.MET if counts else Tri.UNKNOWN)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(80, Tri.MET), (60, Tri.NOT_MET)],
)
def test_an_adherence_confirmation_meets_only_when_the_hba1c_part_is_met(
    decide: Decide, value: float, expected: Tri
) -> None:
    d = decide(
        patient(), condition(T1DM), hba1c(value), confirmation("hba1c-above-69-with-poor-adherence")
    )
    r = d.criteria["hba1c-above-69-with-poor-adherence"]
    assert r.result is expected
    if expected is Tri.NOT_MET:
        assert any("HbA1c part is not met" in e.summary for e in r.context)


def test_an_adherence_confirmation_does_not_stand_in_for_a_missing_hba1c(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), confirmation("hba1c-above-69-with-poor-adherence"))
    assert result(d, "hba1c-above-69-with-poor-adherence") is Tri.UNKNOWN


def test_a_policy_file_must_declare_confirmability_and_may_not_confirm_data() -> None:
    doc = iport_doc()
    del doc["criteria"][0]["confirmable"]
    with pytest.raises(PolicyError, match="must declare"):
        parse_policy(doc)
    doc = iport_doc()
    doc["criteria"][0]["confirmable"] = True  # type-1-diabetes: a diagnosis
    with pytest.raises(PolicyError, match="cannot be confirmable"):
        parse_policy(doc)
    doc = iport_doc()
    doc["derived"][0]["confirmable"] = True
    with pytest.raises(PolicyError, match="composite"):
        parse_policy(doc)


# -- 3. Plausibility -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "unit", "usable"),
    [
        (72, "%", False),  # = 763 mmol/mol: a % unit on an mmol/mol value
        (19, "mmol/mol", False),
        (20, "mmol/mol", True),
        (200, "mmol/mol", True),
        (201, "mmol/mol", False),
        (9.0, "%", True),
        (75, "mg/dL", False),
    ],
)
def test_an_implausible_hba1c_is_not_used(
    decide: Decide, value: float, unit: str, usable: bool
) -> None:
    d = decide(patient(), condition(T1DM), hba1c(value, unit), *BASAL_BOLUS)
    r = d.criteria["hba1c-69-or-above-on-mdi"]
    if usable:
        assert r.result is not Tri.UNKNOWN
    else:
        assert r.result is Tri.UNKNOWN
        if unit != "mg/dL":
            assert any("implausible, not used" in e.summary for e in r.context)


def test_an_implausible_newest_result_blocks_older_ones(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        hba1c(72, "%", on="2026-10-01"),
        hba1c(75, on="2026-06-01"),
        *BASAL_BOLUS,
    )
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN
    assert result(d, "hba1c-above-69-with-poor-adherence") is Tri.UNKNOWN


UNUSABLE_NEWEST = [
    hba1c(72, "%", on="2026-10-01"),  # = 763 mmol/mol: implausible
    hba1c(250, on="2026-10-01"),  # implausible
    hba1c(80, "mmol/L", on="2026-10-01"),  # unreadable unit
]


@pytest.mark.parametrize("newest", UNUSABLE_NEWEST)
def test_an_unusable_newest_result_does_not_block_what_older_results_settle(
    decide: Decide, newest: dict[str, Any]
) -> None:
    # "Remained high" is settled by any plausible result below 69 in the lookback: a newer
    # result that cannot be used cannot raise the older one.
    d = decide(patient(), condition(T1DM), newest, hba1c(60, on="2026-06-01"), *BASAL_BOLUS)
    r = d.criteria["hba1c-69-or-above-on-mdi"]
    assert r.result is Tri.NOT_MET
    assert r.reason.startswith("HbA1c 60 mmol/mol (2026-06-01) is below 69")
    assert any("not used" in e.summary for e in r.context)  # still named beside it


@pytest.mark.parametrize("newest", UNUSABLE_NEWEST)
def test_an_unusable_newest_result_never_lets_an_older_one_meet(
    decide: Decide, newest: dict[str, Any]
) -> None:
    older = hba1c(75, on="2026-06-01")
    d = decide(patient(), condition(T1DM), newest, older, *BASAL_BOLUS, policy=HCL)
    assert result(d, "hba1c-58-or-above") is Tri.UNKNOWN  # the latest is the one TA943 reads
    d = decide(patient(), condition(T1DM), newest, older, *BASAL_BOLUS)
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (
            hba1c(80, "mmol/L", on="2026-10-15"),
            "HbA1c 80 mmol/L (2026-10-15): unit 'mmol/L' not recognised (not mmol/mol or %), "
            "not used; no usable HbA1c result in the last 12 months.",
        ),
        (
            hba1c(80, on="2027-02-01"),
            "No usable HbA1c result in the last 12 months: HbA1c 80 mmol/mol (2027-02-01): "
            "dated after today, not used.",
        ),
    ],
)
def test_an_hba1c_not_used_is_named_as_recorded_with_why(
    decide: Decide, result: dict[str, Any], reason: str
) -> None:
    # A clinician can see the value in the record: the reason says why it did not count.
    d = decide(patient(), condition(T1DM), result, *BASAL_BOLUS)
    r = d.criteria["hba1c-69-or-above-on-mdi"]
    assert r.result is Tri.UNKNOWN
    assert r.reason == reason
    assert r.context  # shown beside the reason: the result read and not used


def test_an_unusable_newest_hba1c_is_named_and_stops_the_older_one(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        hba1c(80, "mmol/L", on="2026-10-15"),
        hba1c(75, on="2026-06-01"),
        *BASAL_BOLUS,
    )
    r = d.criteria["hba1c-above-69-with-poor-adherence"]
    assert r.result is Tri.UNKNOWN
    assert r.reason.startswith("HbA1c 80 mmol/L (2026-10-15): unit 'mmol/L' not recognised")
    assert r.reason.endswith("it is the newest result, so an older one must not decide.")


# -- 4. "Remained high": every result in the lookback ----------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((55, 58, 71), Tri.NOT_MET),  # the latest alone is high: not "remained"
        ((71, 58, 75), Tri.NOT_MET),
        ((70, 69, 80), Tri.MET),
        ((75,), Tri.MET),  # at least one
    ],
)
def test_remained_high_means_every_result_in_the_lookback(
    decide: Decide, values: tuple[float, ...], expected: Tri
) -> None:
    days = ["2026-02-01", "2026-06-01", "2026-10-01"]
    results = [hba1c(v, on=day) for v, day in zip(values, days[-len(values) :], strict=True)]
    d = decide(patient(), condition(T1DM), *results, *BASAL_BOLUS)
    r = d.criteria["hba1c-69-or-above-on-mdi"]
    assert r.result is expected
    assert f"{len(values)} result" in r.reason  # how many it read


def test_a_result_before_the_lookback_does_not_count_against(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(50, on="2025-06-01"), hba1c(75), *BASAL_BOLUS)
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.MET


def test_an_unreadable_older_result_leaves_remained_high_unknown(decide: Decide) -> None:
    unreadable = hba1c(60, "mmol/L", on="2026-02-01")
    d = decide(patient(), condition(T1DM), unreadable, hba1c(75), *BASAL_BOLUS)
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.UNKNOWN


# -- 5. MDI: basal-bolus, or three injections a day ------------------------------------------------
@pytest.mark.parametrize(
    ("prescriptions", "expected"),
    [
        (BASAL_BOLUS, Tri.MET),
        ((insulin(GLARGINE, text="once daily"), insulin(ASPART, text="as directed")), Tri.MET),
        ((insulin(NOVOMIX, text="twice daily"),), Tri.NOT_MET),  # premixed BD is not MDI
        ((insulin(NOVOMIX, text="three times a day"),), Tri.MET),
        ((insulin(GLARGINE, text="once daily"),), Tri.NOT_MET),
        ((insulin(ASPART, text="BD"),), Tri.NOT_MET),
        ((insulin(NOVOMIX, text="as directed"),), Tri.UNKNOWN),
    ],
)
def test_mdi_is_basal_bolus_or_three_injections_a_day(
    decide: Decide, prescriptions: tuple[dict[str, Any], ...], expected: Tri
) -> None:
    d = decide(patient(), condition(T1DM), hba1c(80), *prescriptions)
    assert result(d, "hba1c-69-or-above-on-mdi") is expected


def test_the_type2_criterion_stays_two_injections_a_day(decide: Decide) -> None:
    d = decide(patient(), condition(T2DM), insulin(NOVOMIX, text="twice daily"))
    assert result(d, "insulin-more-than-once-daily") is Tri.MET


# -- 6. Disabling hypoglycaemia: impaired awareness, or episodes on two days -----------------------
def test_one_hypoglycaemic_coma_is_one_episode(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), condition(HYPO_COMA, onset="2026-08-01"))
    r = d.criteria["disabling-hypoglycaemia"]
    assert r.result is Tri.UNKNOWN
    assert r.confirmable
    assert "one episode" in r.reason


def test_one_episode_recorded_twice_on_one_day_is_one_episode(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        condition(HYPO_EVENT, onset="2026-08-01"),
        observation_finding(HYPO_EVENT, on="2026-08-01T14:00:00+01:00"),
    )
    assert result(d, "disabling-hypoglycaemia") is Tri.UNKNOWN


def test_episodes_on_two_days_in_the_window_are_repeated(decide: Decide) -> None:
    episodes = (
        patient(),
        condition(T1DM),
        condition(HYPO_COMA, onset="2026-08-01"),
        observation_finding(HYPO_EVENT, on="2026-03-02"),
    )
    assert result(decide(*episodes, policy=RECORDS_MEET), "disabling-hypoglycaemia") is Tri.MET
    # by default repeated is the evidence, and disabling the clinician's judgement
    r = decide(*episodes).criteria["disabling-hypoglycaemia"]
    assert r.result is Tri.UNKNOWN
    assert len(r.evidence) == 2
    assert r.missing == "a clinician's confirmation that the hypoglycaemia is disabling"
    assert "2 different days" in r.reason
    assert "quality of life" in r.reason


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (("2026-08-01", "2026-02-01"), Tri.MET),
        (("2026-08-01", "2025-06-01"), Tri.UNKNOWN),  # the second is outside the 12 months
        (("2026-08-01",), Tri.UNKNOWN),
    ],
)
def test_hypoglycaemia_on_two_days_in_the_window_is_repeated(
    decide: Decide, days: tuple[str, ...], expected: Tri
) -> None:
    episodes = [condition(HYPO_EVENT, onset=day) for day in days]
    d = decide(patient(), condition(T1DM), *episodes, policy=RECORDS_MEET)
    assert result(d, "disabling-hypoglycaemia") is expected


# -- 7. Diagnoses ----------------------------------------------------------------------------------
def test_both_diabetes_types_active_is_a_conflict(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        condition(T2DM),
        insulin(text="twice daily"),
        confirmation("diabetes-specialist-recommendation"),
    )
    assert result(d, "type-1-diabetes") is Tri.UNKNOWN
    assert result(d, "type-2-diabetes") is Tri.UNKNOWN
    assert d.outcome is Outcome.INSUFFICIENT
    assert "correct" in d.reason
    assert not d.criteria["type-1-diabetes"].confirmable


def test_a_refuted_second_type_is_no_conflict(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), condition(T2DM, verification="entered-in-error"))
    assert result(d, "type-1-diabetes") is Tri.MET


@pytest.mark.parametrize(
    "text", ["Type 1 diabetes", "Diabetes mellitus type 1", "T1DM", "Type I diabetes mellitus"]
)
def test_a_diagnosis_recorded_as_text_is_recognised(decide: Decide, text: str) -> None:
    d = decide(patient(), condition(text=text), hba1c(75), *BASAL_BOLUS)
    assert result(d, "type-1-diabetes") is Tri.MET
    assert d.outcome is not Outcome.DOES_NOT_MEET


@pytest.mark.parametrize("text", ["Family history of type 1 diabetes", "?Type 1 diabetes"])
def test_a_qualified_text_diagnosis_is_not_a_diagnosis(decide: Decide, text: str) -> None:
    d = decide(patient(), condition(text=text))
    assert result(d, "type-1-diabetes") is Tri.NOT_MET


def test_a_text_diagnosis_counts_only_on_a_condition(decide: Decide) -> None:
    review = observation_finding(text="Type 2 diabetes annual review")
    d = decide(patient(), condition(T1DM), review)
    assert result(d, "type-2-diabetes") is Tri.NOT_MET
    assert result(d, "type-1-diabetes") is Tri.MET  # so no conflict either


@pytest.mark.parametrize(
    ("system", "code", "criterion"),
    [
        (ICD10CM, "E10.65", "type-1-diabetes"),
        (ICD10CM, "E10.9", "type-1-diabetes"),
        (ICD10CM, "E11.649", "type-2-diabetes"),
        ("http://hl7.org/fhir/sid/icd-10", "E10.52", "type-1-diabetes"),
        ("http://hl7.org/fhir/sid/icd-10", "E1010", "type-1-diabetes"),
    ],
)
def test_icd10_diagnoses_are_recognised_as_families(
    decide: Decide, system: str, code: str, criterion: str
) -> None:
    d = decide(patient(), condition((system, code, "Diabetes")))
    assert result(d, criterion) is Tri.MET


def test_other_icd_chapters_are_not_diabetes(decide: Decide) -> None:
    d = decide(patient(), condition((ICD10CM, "E13.9", "Other specified diabetes")))
    assert result(d, "type-1-diabetes") is Tri.NOT_MET


def test_no_diagnosis_but_insulin_is_unknown_not_not_met(decide: Decide) -> None:
    d = decide(patient(), hba1c(75), *BASAL_BOLUS)
    assert result(d, "type-1-diabetes") is Tri.UNKNOWN
    assert result(d, "type-2-diabetes") is Tri.UNKNOWN
    assert d.outcome is Outcome.INSUFFICIENT


def test_a_diagnosis_in_remission_does_not_meet(decide: Decide) -> None:
    d = decide(patient(), condition(T1_REMISSION))
    r = d.criteria["type-1-diabetes"]
    assert r.result is Tri.NOT_MET
    assert "remission" in r.reason


def test_a_diagnosis_text_in_remission_does_not_meet(decide: Decide) -> None:
    d = decide(patient(), condition(text="Type 2 diabetes in remission"))
    assert result(d, "type-2-diabetes") is Tri.NOT_MET


# -- 8. Text about someone else, or not now, never counts ------------------------------------------
def test_family_history_of_needle_phobia_is_not_needle_phobia(decide: Decide) -> None:
    d = decide(
        patient(), condition(T1DM), condition(text="Family history of needle phobia (mother)")
    )
    assert result(d, "needle-phobia") is Tri.UNKNOWN


def test_a_family_member_history_resource_never_counts(decide: Decide) -> None:
    fmh = {
        "resourceType": "FamilyMemberHistory",
        "id": "fmh1",
        "status": "completed",
        "patient": {"reference": "Patient/pat-1"},
        "relationship": {"text": "mother"},
        "condition": [{"code": {"coding": [{"system": SNOMED, "code": "46635009"}]}}],
    }
    d = decide(patient(), fmh, condition(text="Needle phobia"))
    assert result(d, "type-1-diabetes") is Tri.NOT_MET


# -- 9. Patient state ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "deceased",
    [
        {"deceasedBoolean": True},
        {"deceasedDateTime": "2026-09-14T08:00:00Z"},
        {"deceasedDateTime": "14/09/2026"},  # unreadable, but a death is recorded
    ],
)
def test_a_deceased_patient_is_never_assessed(decide: Decide, deceased: dict[str, Any]) -> None:
    p = patient()
    p.update(deceased)
    d = decide(p, condition(T1DM), hba1c(75), *BASAL_BOLUS, condition(text="Needle phobia"))
    assert d.outcome is not Outcome.MEETS
    assert d.deceased
    assert "recorded as deceased" in d.reason
    assert "no eligibility is assessed" in d.reason


@pytest.mark.parametrize(
    ("birth", "died", "why"),
    [
        ("1990-05-17", "2027-03-01", "after today"),
        ("1990-05-17", "2026-11-22T00:30:00+00:00", "after today"),  # 00:30 tomorrow in London
        ("1990-05-17", "2026-12", "after today"),  # a partial date after today
        ("1990-05-17", "1985-01-01", "before the date of birth"),
    ],
)
def test_a_date_of_death_that_cannot_be_true_leaves_alive_or_dead_unknown_and_is_not_assessed(
    decide: Decide, birth: str, died: str, why: str
) -> None:
    # The patient may have died on another date, or be alive with the field filled in wrongly:
    # either way no eligibility is assessed (never a prompt for someone who may be dead), and
    # the reason says what is wrong, so the record can be corrected.
    p = patient(birth)
    p["deceasedDateTime"] = died
    d = decide(p, condition(T1DM), hba1c(75), *BASAL_BOLUS, condition(text="Needle phobia"))
    assert d.outcome is Outcome.INSUFFICIENT
    assert d.deceased
    assert d.deceased_implausible is not None
    assert why in d.deceased_implausible
    assert why in d.reason
    assert "not plausible" in d.reason
    assert "whether the patient is alive is unknown" in d.reason
    assert "corrected" in d.reason


@pytest.mark.parametrize("died", ["2026-11-21", "2026-11-21T23:30:00+00:00", "1990-05-17"])
def test_a_date_of_death_up_to_today_is_a_plausible_death(decide: Decide, died: str) -> None:
    p = patient("1990-05-17")
    p["deceasedDateTime"] = died
    d = decide(p, condition(T1DM), hba1c(75), *BASAL_BOLUS, condition(text="Needle phobia"))
    assert d.deceased
    assert d.deceased_implausible is None
    assert "recorded as deceased (on " in d.reason


@pytest.mark.parametrize(
    ("birth", "age"),
    [
        ("2026-11-22", "unknown"),  # born tomorrow
        ("2027", "unknown"),  # a year after this one
        ("2026-11-21", "not-met"),  # born today: aged 0
        ("2026-11", "not-met"),  # this month: possibly today or before, aged 0 either way
        ("2026-12", "unknown"),  # next month
        ("1906-11-21", "met"),  # 120 today: the oldest plausible age
        ("1905-11-21", "unknown"),  # 121
        ("1899", "unknown"),
    ],
)
def test_a_birth_date_after_today_or_over_120_years_ago_is_not_evidence_of_age(
    decide: Decide, birth: str, age: str
) -> None:
    d = decide(patient(birth), condition(T1DM))
    r = d.criteria["age-12-or-over"]
    assert r.result.value == age, r.reason
    if age == "unknown":
        assert "not plausible" in r.reason
        assert r.missing == "a correct date of birth"
        assert not r.evidence  # shown as context, never as what the result rests on


def test_an_implausible_birth_date_never_opens_the_under_12_route(decide: Decide) -> None:
    # Read as an age, a birth date after today is "under 12", and a confirmation that MDI is
    # impractical would then meet the NICE criteria through the children's route.
    d = decide(
        patient("2031-02-03"),
        condition(T1DM),
        *BASAL_BOLUS,
        confirmation("mdi-impractical"),
        condition(text="Needle phobia"),
    )
    assert d.criteria["age-12-or-over"].result is Tri.UNKNOWN
    assert d.criteria["nice-pump-criteria"].result is Tri.UNKNOWN
    assert d.outcome is Outcome.INSUFFICIENT


def test_deceased_false_is_alive(decide: Decide) -> None:
    p = patient()
    p["deceasedBoolean"] = False
    d = decide(p, condition(T1DM), hba1c(75), *BASAL_BOLUS, condition(text="Needle phobia"))
    assert d.outcome is Outcome.MEETS
    assert not d.deceased


def test_the_iport_decision_says_when_a_pump_is_already_in_use(decide: Decide) -> None:
    pump = (SNOMED, "180178009", "Continuous subcutaneous infusion of insulin")
    d = decide(patient(), condition(T1DM), condition(pump))
    assert d.notices == (
        "Already on an insulin pump: Continuous subcutaneous infusion of insulin (insulin pump "
        "(CSII)) in use since 1 Jun 2026. i-Port Advance is an alternative to a pump: check it "
        "is still wanted.",
    )
    assert not decide(patient(), condition(T1DM)).notices


def test_evaluation_date_is_the_only_clock(decide: Decide) -> None:
    later = decide(patient(), condition(T1DM), condition(LIPO), today=date(2027, 7, 1))
    assert result(later, "lipohypertrophy") is Tri.UNKNOWN  # 13 months after 2026-06-01


# -- Established: a provisional, unconfirmed or differential record is a query, not a finding ----
NEEDLE_PHOBIA_CM = (ICD10CM, "F40.231", "Fear of injections and transfusions")
NOT_ESTABLISHED = ["unconfirmed", "provisional", "differential"]


@pytest.mark.parametrize("verification", NOT_ESTABLISHED)
@pytest.mark.parametrize(
    ("criterion", "code"),
    [
        ("needle-phobia", NEEDLE_PHOBIA_CM),
        ("lipohypertrophy", LIPO),
        ("disabling-hypoglycaemia", IMPAIRED_AWARENESS),
    ],
)
def test_a_finding_not_yet_established_is_unknown_and_shown(
    decide: Decide, verification: str, criterion: str, code: Any
) -> None:
    d = decide(patient(), condition(T1DM), condition(code, verification=verification))
    found = d.criteria[criterion]
    assert found.result is Tri.UNKNOWN
    assert verification in found.reason
    assert any(verification in e.summary for e in found.evidence + found.context)
    assert found.confirmable


def test_provisional_hypoglycaemia_on_two_days_is_not_repeated(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T1DM),
        condition(HYPO_EVENT, verification="provisional", onset="2026-03-01"),
        condition(HYPO_EVENT, verification="provisional", onset="2026-09-01"),
    )
    assert result(d, "disabling-hypoglycaemia") is Tri.UNKNOWN


@pytest.mark.parametrize("verification", NOT_ESTABLISHED)
def test_a_provisional_diagnosis_is_unknown_never_met(decide: Decide, verification: str) -> None:
    on_insulin = decide(
        patient(),
        condition(T1DM, verification=verification),
        *BASAL_BOLUS,
        hba1c(80, on="2026-09-01"),
        condition(text="Needle phobia"),
    )
    assert result(on_insulin, "type-1-diabetes") is Tri.UNKNOWN
    assert verification in on_insulin.criteria["type-1-diabetes"].reason
    assert on_insulin.outcome is not Outcome.MEETS
    alone = decide(patient(), condition(T1DM, verification=verification))
    assert result(alone, "type-1-diabetes") is Tri.UNKNOWN


def test_a_possible_type_1_diagnosis_stops_the_type_2_route(decide: Decide) -> None:
    d = decide(
        patient(),
        condition(T2DM),
        condition(T1DM, verification="provisional"),
        insulin(NOVOMIX, text="twice daily"),
        confirmation("diabetes-specialist-recommendation"),
    )
    assert result(d, "type-2-diabetes") is Tri.UNKNOWN
    assert d.outcome is not Outcome.MEETS


def test_a_history_of_hypoglycaemia_code_is_not_an_episode(decide: Decide) -> None:
    # "H/O: hypoglycaemic event" is entered at a review: its date is when it was written down,
    # not when an episode happened, so two reviews are not two episodes.
    history = (SNOMED, "1957911000006107", "H/O: hypoglycaemic event in diabetes")
    d = decide(
        patient(),
        condition(T1DM),
        observation_finding(history, on="2026-03-01"),
        observation_finding(history, on="2026-09-01"),
    )
    assert result(d, "disabling-hypoglycaemia") is Tri.UNKNOWN


def test_an_insulin_prescription_past_its_validity_period_is_not_current(decide: Decide) -> None:
    # An order left "active" in a system that never closed it: its validity period says it ended.
    ended = insulin(ASPART, text="with meals")
    ended["dispenseRequest"] = {"validityPeriod": {"start": "2016-01-01", "end": "2017-01-01"}}
    d = decide(
        patient(),
        condition(T1DM),
        insulin(GLARGINE, text="once daily at night"),
        ended,
        hba1c(80, on="2026-03-01"),
        hba1c(82, on="2026-09-01"),
    )
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.NOT_MET
    assert any("2017-01-01" in w and ended["id"] in w for w in d.warnings)
    current = dict(ended, dispenseRequest={"validityPeriod": {"end": "2027-01-01"}})
    d = decide(patient(), condition(T1DM), insulin(GLARGINE, text="at night"), current, hba1c(80))
    assert result(d, "hba1c-69-or-above-on-mdi") is Tri.MET


@pytest.mark.parametrize("clinical", ["active", None])
@pytest.mark.parametrize(
    "abatement",
    [
        {"abatementDateTime": "2026-08-01"},
        {"abatementPeriod": {"start": "2026-07-01", "end": "2026-08-01"}},
        {"abatementString": "resolved with CBT"},
    ],
)
def test_a_condition_that_has_abated_is_not_current(
    decide: Decide, clinical: str | None, abatement: dict[str, Any]
) -> None:
    # FHIR: an abatement means the condition resolved or went into remission, whatever a
    # clinicalStatus left at "active" (or left out) says.
    phobia = condition(text="Needle phobia", onset="2026-06-01", clinical=clinical) | abatement
    lipo = condition(LIPO, onset="2026-06-01", clinical=clinical) | abatement
    d = decide(patient(), condition(T1DM), phobia, lipo)
    assert result(d, "needle-phobia") is Tri.UNKNOWN
    assert result(d, "lipohypertrophy") is Tri.UNKNOWN


def test_a_condition_that_came_back_after_abating_counts(decide: Decide) -> None:
    back = condition(LIPO, onset="2026-06-01", clinical="recurrence")
    back["abatementDateTime"] = "2026-03-01"
    assert result(decide(patient(), condition(T1DM), back), "lipohypertrophy") is Tri.MET


@pytest.mark.parametrize(("unit", "why"), [("mg/dL", "unit 'mg/dL'"), ("mmol/L", "unit 'mmol/L'")])
def test_an_hba1c_in_another_unit_says_why_it_is_not_used(
    decide: Decide, unit: str, why: str
) -> None:
    d = decide(
        patient(), condition(T1DM), hba1c(80, on="2026-03-01"), hba1c(75, unit, on="2026-09-01")
    )
    for criterion in ("hba1c-69-or-above-on-mdi", "hba1c-above-69-with-poor-adherence"):
        assert d.criteria[criterion].result is Tri.UNKNOWN
        assert why in d.criteria[criterion].reason


def test_mdi_unknown_says_which_fact_is_missing(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c(80), insulin(ASPART, text="via pump"))
    reason = d.criteria["hba1c-69-or-above-on-mdi"].reason
    assert "a prescription's frequency is unknown" in reason


def test_every_decision_says_which_clauses_are_the_clinicians_judgement(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), *BASAL_BOLUS, hba1c(80), condition(text="Needle phobia"))
    assert d.outcome is Outcome.MEETS
    said = " ".join(d.assumptions)
    for clause in ("despite a high level of care", "despite support and advice", "acceptable"):
        assert clause in said, clause


def test_an_unreadable_condition_leaves_the_diagnosis_unknown_not_absent(decide: Decide) -> None:
    """Missing data is unknown: a Condition that cannot be read may be the diagnosis."""
    unreadable = condition(T1DM)
    unreadable["onsetDateTime"] = "x"
    d = decide(patient(), unreadable)
    assert d.criteria["type-1-diabetes"].result is Tri.UNKNOWN
    assert d.criteria["type-2-diabetes"].result is Tri.UNKNOWN
    assert "could not be read" in d.criteria["type-1-diabetes"].reason
    assert d.outcome is Outcome.INSUFFICIENT


def test_with_every_condition_readable_no_diagnosis_is_not_met(decide: Decide) -> None:
    d = decide(patient(), condition(LIPO))
    assert d.criteria["type-1-diabetes"].result is Tri.NOT_MET
    assert d.outcome is Outcome.DOES_NOT_MEET


# -- Evidence dated before the date of birth is a record error, not evidence ---------------------
def test_a_diagnosis_dated_before_birth_is_unknown_not_met(decide: Decide) -> None:
    d = decide(
        patient("1995-05-05"),
        condition(T1DM, onset="1990-01-01"),
        hba1c(78),
        *BASAL_BOLUS,
        condition(text="Needle phobia"),
    )
    r = d.criteria["type-1-diabetes"]
    assert r.result is Tri.UNKNOWN
    assert "dated before birth: check the record" in r.reason
    assert "1990-01-01" in r.reason
    assert "1995-05-05" in r.reason
    assert r.missing == "a correctly dated type 1 diabetes diagnosis"
    assert d.outcome is not Outcome.MEETS


@pytest.mark.parametrize(
    ("birth", "onset", "expected"),
    [
        ("1995-05-05", "1995-05-04", Tri.UNKNOWN),  # the day before birth
        ("1995-05-05", "1995-05-05", Tri.MET),  # diagnosed on the day of birth
        ("1995", "1995-01-01", Tri.MET),  # a partial birth date allows any day that year
        ("1995", "1994-12-31", Tri.UNKNOWN),
        ("2031-02-03", "1990-01-01", Tri.MET),  # an implausible birth date decides nothing here
    ],
)
def test_the_day_of_birth_is_the_boundary_for_a_diagnosis(
    decide: Decide, birth: str, onset: str, expected: Tri
) -> None:
    d = decide(patient(birth), condition(T1DM, onset=onset))
    assert d.criteria["type-1-diabetes"].result is expected


def test_a_correctly_dated_diagnosis_still_counts_beside_one_dated_before_birth(
    decide: Decide,
) -> None:
    d = decide(
        patient("1995-05-05"),
        condition(T1DM, onset="1990-01-01"),
        condition(T1DM, onset="2001-03-01"),
    )
    r = d.criteria["type-1-diabetes"]
    assert r.result is Tri.MET
    assert "2001-03-01" in r.reason
    assert all(e.date != date(1990, 1, 1) for e in r.evidence)


def test_a_finding_dated_before_birth_is_unknown_with_the_reason(decide: Decide) -> None:
    d = decide(
        patient("2026-02-01"),
        condition(T1DM, onset="2026-05-01"),
        condition(text="Needle phobia", onset="2026-01-10"),
    )
    r = d.criteria["needle-phobia"]
    assert r.result is Tri.UNKNOWN
    assert "dated before birth: check the record" in r.reason
