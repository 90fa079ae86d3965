"""Who is in a policy's cohort (population/cohort.py), as executable examples: alive on the
extract date, registered at a practice, with the policy's diagnosis; and which Patient record
speaks for a person. docs/policy-interpretation.md ("Population cohorts") states the rules."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from facts import extract_record
from policy import load_policy
from population import cohort
from tests.builders import CRITERIA, PID, T1DM, T2DM, condition, patient, registered
from valuesets import ValueSetLibrary

EXTRACT = date(2026, 11, 1)
NHS = cohort.NHS_NUMBER_SYSTEM
REGISTRATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RegistrationDetails"
NAMES = {"type-1-diabetes": "type 1 diabetes", "type-2-diabetes": "type 2 diabetes"}


def registration(start: str | None, end: str | None = None) -> dict[str, Any]:
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    return {
        "url": REGISTRATION,
        "extension": [{"url": "registrationPeriod", "valuePeriod": period}],
    }


def person(**extra: Any) -> dict[str, Any]:
    return {**registered(patient()), **extra}


# (why, the Patient, the diagnoses recorded, the policy, the answer)
CASES: list[tuple[str, dict[str, Any], list[Any], str, str]] = [
    ("alive, registered, type 1", person(), [T1DM], "nice-insulin-pump", cohort.IN_COHORT),
    ("deceased, flag", person(deceasedBoolean=True), [T1DM], "nice-insulin-pump", cohort.DECEASED),
    (
        "died before the extract",
        person(deceasedDateTime="2026-03-01"),
        [T1DM],
        "nice-insulin-pump",
        cohort.DECEASED,
    ),
    (
        "died on the extract date",
        person(deceasedDateTime="2026-11-01T09:00:00Z"),
        [T1DM],
        "nice-insulin-pump",
        cohort.DECEASED,
    ),
    (
        "a date of death after the extract: alive on it",
        person(deceasedDateTime="2026-12-01"),
        [T1DM],
        "nice-insulin-pump",
        cohort.IN_COHORT,
    ),
    ("deceasedBoolean false", person(deceasedBoolean=False), [T1DM], "nice-insulin-pump", "in"),
    ("no practice", patient(), [T1DM], "nice-insulin-pump", cohort.NOT_REGISTERED),
    (
        "a practice named without an ODS code: an Organization reference",
        {**patient(), "generalPractitioner": [{"reference": "Organization/org-1"}]},
        [T1DM],
        "nice-insulin-pump",
        cohort.IN_COHORT,
    ),
    (
        "a GP (Practitioner) only",
        {**patient(), "generalPractitioner": [{"reference": "Practitioner/dr-1"}]},
        [T1DM],
        "nice-insulin-pump",
        cohort.NOT_REGISTERED,
    ),
    (
        "UK Core registration details, current",
        {**patient(), "extension": [registration("2020-01-01")]},
        [T1DM],
        "nice-insulin-pump",
        cohort.IN_COHORT,
    ),
    (
        "registration ended before the extract, practice still named",
        person(extension=[registration("2020-01-01", "2026-06-30")]),
        [T1DM],
        "nice-insulin-pump",
        cohort.NOT_REGISTERED,
    ),
    (
        "type 2 on a type 1 policy",
        person(),
        [T2DM],
        "nice-insulin-pump",
        "no type 1 diabetes recorded",
    ),
    (
        "type 2 on the i-Port policy (its type 2 route)",
        person(),
        [T2DM],
        "iport-advance",
        cohort.IN_COHORT,
    ),
    (
        "no diabetes recorded",
        person(),
        [],
        "iport-advance",
        "no type 1 diabetes or type 2 diabetes recorded",
    ),
    (
        "type 1 recorded only as a query (provisional)",
        person(),
        [("provisional", T1DM)],
        "nice-hybrid-closed-loop",
        "no type 1 diabetes recorded",
    ),
    (
        "deceased and unregistered: the first reason",
        patient() | {"deceasedBoolean": True},
        [],
        "nice-insulin-pump",
        cohort.DECEASED,
    ),
]


@pytest.mark.parametrize(
    ("why", "pat", "diagnoses", "policy", "answer"), CASES, ids=[c[0] for c in CASES]
)
def test_cohort(
    vsl: ValueSetLibrary,
    why: str,
    pat: dict[str, Any],
    diagnoses: list[Any],
    policy: str,
    answer: str,
) -> None:
    resources: list[dict[str, Any]] = [pat]
    for d in diagnoses:
        if isinstance(d[0], str) and d[0] == "provisional":
            resources.append(condition(d[1], verification="provisional"))
        else:
            resources.append(condition(d))
    record = extract_record(resources, vsl, patient_id=PID, criteria_system=CRITERIA)
    assert cohort.cohort_reason(load_policy(policy), pat, record, EXTRACT, NAMES) == answer


@pytest.mark.parametrize(
    ("identifiers", "key"),
    [
        ([{"system": NHS, "value": "943 476 5919"}], "nhs:9434765919"),
        (
            [
                {"system": "https://example.org/local", "value": "L1"},
                {"system": NHS, "value": "9434765919"},
            ],
            "nhs:9434765919",
        ),
        (
            [{"system": "https://example.org/local", "value": " L1 "}],
            "id:https://example.org/local|L1",
        ),
        ([{"system": NHS, "value": ""}], "pid:pat-1"),
        ([], "pid:pat-1"),
    ],
)
def test_a_person_is_their_nhs_number_else_another_identifier_else_the_record(
    identifiers: list[dict[str, str]], key: str
) -> None:
    assert cohort.identity_key(PID, {**patient(), "identifier": identifiers}) == key


def test_the_most_recent_registration_then_update_orders_a_persons_records() -> None:
    old = {**patient(), "meta": {"lastUpdated": "2026-10-01T00:00:00Z"}}
    newer = {**patient(), "meta": {"lastUpdated": "2026-10-20T00:00:00Z"}}
    moved = {**patient(), "extension": [registration("2026-09-01")]}
    moved_earlier = {
        **patient(),
        "extension": [registration("2025-01-01")],
        "meta": {"lastUpdated": "2026-10-30T00:00:00Z"},
    }
    assert cohort.recency(newer) > cohort.recency(old)
    assert cohort.recency(moved) > cohort.recency(moved_earlier) > cohort.recency(newer)


@pytest.mark.parametrize(
    ("policy", "sets"),
    [
        ("iport-advance", ("type-1-diabetes", "type-2-diabetes")),
        ("nice-insulin-pump", ("type-1-diabetes",)),
        ("nice-hybrid-closed-loop", ("type-1-diabetes",)),
    ],
)
def test_a_policys_cohort_diagnoses_are_its_diagnosis_criteria(
    policy: str, sets: tuple[str, ...]
) -> None:
    assert cohort.diagnosis_sets(load_policy(policy)) == sets
