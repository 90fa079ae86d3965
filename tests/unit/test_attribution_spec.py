"""Evidence counts only when it is about this patient alone (docs/policy-interpretation.md,
"Whose evidence counts").

Each example is a record that meets the i-Port criteria with one piece of its evidence made
someone else's, or not shown to be this patient's: the criterion it carried is no longer
met, the outcome is never "meets", and the record names what it did not use and why.
Through the pure core; "today" is 2026-11-21.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from facts import PatientRecord
from facts.attribution import (
    ANOTHER_PERSON,
    NHS_NUMBER,
    NOT_SHOWN,
    TWO_PATIENTS,
    nhs_number_valid,
)
from policy import Decision, Outcome, Tri
from tests.builders import PID, condition, hba1c, type1_meets
from tests.unit.test_text_qualifiers import ABOUT_ANOTHER_PERSON

Decide = Callable[..., Decision]
Record = Callable[..., PatientRecord]

NHS = "9434765919"  # a valid NHS number (the NHS's own example)
OTHER_NHS = "9449306613"  # another valid one


def meets_with(change: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    resources = copy.deepcopy(type1_meets())
    change(resources)
    return resources


def the(resources: list[dict[str, Any]], rtype: str, text: str | None = None) -> dict[str, Any]:
    """The first resource of ``rtype`` (whose code text is ``text``, when given)."""
    return next(
        r
        for r in resources
        if r["resourceType"] == rtype and (text is None or r.get("code", {}).get("text") == text)
    )


def refused(record: PatientRecord) -> dict[str, str]:
    return {n.ref: n.why for n in record.not_theirs}


# -- 1. An Observation whose focus is someone else is not the patient's -----------------------
@pytest.mark.parametrize(
    "focus",
    [
        pytest.param([{"reference": "RelatedPerson/mother", "display": "Mother"}], id="mother"),
        pytest.param([{"reference": "Patient/someone-else"}], id="another patient"),
        pytest.param([{"display": "Fetus"}], id="display only"),
        pytest.param([{"reference": f"Patient/{PID}"}, {"reference": "Group/family"}], id="two"),
    ],
)
def test_an_hba1c_about_another_person_is_not_the_patients(
    decide: Decide, record: Record, focus: list[dict[str, Any]]
) -> None:
    resources = meets_with(lambda rs: the(rs, "Observation").update(focus=focus))
    d = decide(*resources)
    assert d.outcome is not Outcome.MEETS
    assert d.criteria["hba1c-69-or-above-on-mdi"].result is Tri.UNKNOWN
    ref = the(resources, "Observation")["id"]
    assert refused(record(*resources)) == {f"Observation/{ref}": ANOTHER_PERSON}


def test_a_focus_on_the_patient_themself_is_the_patients(decide: Decide) -> None:
    focus = [{"reference": f"Patient/{PID}"}]
    d = decide(*meets_with(lambda rs: the(rs, "Observation").update(focus=focus)))
    assert d.outcome is Outcome.MEETS


# -- 2. A resource that names two patients is not used ----------------------------------------
@pytest.mark.parametrize(
    "elements",
    [
        pytest.param(
            {"subject": {"reference": f"Patient/{PID}"}, "patient": {"reference": "Patient/q"}},
            id="subject P, patient Q",
        ),
        pytest.param(
            {"patient": {"reference": f"Patient/{PID}"}, "subject": {"reference": "Patient/q"}},
            id="patient P, subject Q",
        ),
        pytest.param(
            {
                "subject": {
                    "reference": f"Patient/{PID}",
                    "identifier": {"system": NHS_NUMBER, "value": OTHER_NHS},
                }
            },
            id="reference P, NHS number of Q",
        ),
    ],
)
def test_a_resource_naming_two_patients_is_not_used(
    decide: Decide, record: Record, elements: dict[str, Any]
) -> None:
    def two(rs: list[dict[str, Any]]) -> None:
        rs[0]["identifier"] = [{"system": NHS_NUMBER, "value": NHS}]
        the(rs, "Condition", "Needle phobia").update(elements)

    resources = meets_with(two)
    d = decide(*resources)
    assert d.criteria["needle-phobia"].result is Tri.UNKNOWN
    assert d.outcome is not Outcome.MEETS
    assert list(refused(record(*resources)).values()) == [TWO_PATIENTS]


# -- 3. Text naming another person is not the patient's finding -------------------------------
@pytest.mark.parametrize("text", ABOUT_ANOTHER_PERSON)
def test_free_text_about_another_person_is_not_the_patients_finding(
    decide: Decide, record: Record, text: str
) -> None:
    resources = meets_with(
        lambda rs: the(rs, "Condition", "Needle phobia").update(code={"text": text})
    )
    d = decide(*resources)
    assert d.criteria["needle-phobia"].result is Tri.UNKNOWN
    assert d.outcome is not Outcome.MEETS
    assert list(refused(record(*resources)).values()) == [ANOTHER_PERSON]
    assert any(text in w for w in record(*resources).warnings)


def test_text_about_the_patient_is_still_read_when_a_relative_is_named_elsewhere(
    decide: Decide,
) -> None:
    def told(rs: list[dict[str, Any]]) -> None:
        the(rs, "Condition", "Needle phobia")["code"]["text"] = (
            "Husband gives injections because of her needle phobia"
        )

    assert decide(*meets_with(told)).criteria["needle-phobia"].result is Tri.MET


# -- 4. A subject named by identifier: the patient's only when it matches ---------------------
def by_nhs_number(value: str, system: str = NHS_NUMBER) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": value}}


IDENTIFIERS = [
    # (the Patient's identifiers, the HbA1c subject, the criterion's result, refused as)
    ([{"system": NHS_NUMBER, "value": NHS}], by_nhs_number("943 476 5919"), Tri.MET, None),
    ([{"system": NHS_NUMBER, "value": "943 476 5919"}], by_nhs_number(NHS), Tri.MET, None),
    ([{"system": NHS_NUMBER, "value": NHS}], by_nhs_number(OTHER_NHS), Tri.UNKNOWN, ANOTHER_PERSON),
    (
        [{"system": NHS_NUMBER, "value": "9434765918"}],
        by_nhs_number("9434765918"),
        Tri.UNKNOWN,
        NOT_SHOWN,
    ),
    (
        [{"system": NHS_NUMBER, "value": NHS}],
        by_nhs_number(NHS, "https://example.org/hospital-number"),
        Tri.UNKNOWN,
        NOT_SHOWN,
    ),
    ([], by_nhs_number(NHS), Tri.UNKNOWN, NOT_SHOWN),
    (None, by_nhs_number(NHS), Tri.UNKNOWN, NOT_SHOWN),
]


@pytest.mark.parametrize(
    ("identifiers", "subject", "expected", "why"),
    IDENTIFIERS,
    ids=[
        "same NHS number, spaced in the subject",
        "same NHS number, spaced on the Patient",
        "another NHS number",
        "invalid check digit",
        "another identifier system",
        "no Patient identifiers",
        "no Patient resource",
    ],
)
def test_a_subject_named_by_identifier_is_the_patients_only_when_it_matches(
    decide: Decide,
    record: Record,
    identifiers: list[dict[str, str]] | None,
    subject: dict[str, Any],
    expected: Tri,
    why: str | None,
) -> None:
    def named(rs: list[dict[str, Any]]) -> None:
        if identifiers is None:
            rs.pop(0)
        else:
            rs[0]["identifier"] = identifiers
        the(rs, "Observation")["subject"] = subject

    resources = meets_with(named)
    assert decide(*resources).criteria["hba1c-69-or-above-on-mdi"].result is expected
    assert list(refused(record(*resources)).values()) == ([why] if why else [])


def test_a_result_of_another_nhs_number_does_not_stop_the_patients_own(decide: Decide) -> None:
    """Another person's result is not this patient's newest result: the patient's own older
    result still decides."""

    def theirs_newer(rs: list[dict[str, Any]]) -> None:
        rs[0]["identifier"] = [{"system": NHS_NUMBER, "value": NHS}]
        other = hba1c(50, on="2026-11-01")
        other["subject"] = by_nhs_number(OTHER_NHS)
        rs.append(other)

    assert decide(*meets_with(theirs_newer)).criteria["hba1c-69-or-above-on-mdi"].result is Tri.MET


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (NHS, True),
        ("943 476 5919", False),
        ("9434765918", False),
        ("123456789", False),
        (OTHER_NHS, True),
        ("0000000000", True),
        ("1000000002", False),
    ],
)
def test_the_nhs_number_check_digit(value: str, valid: bool) -> None:
    assert nhs_number_valid(value) is valid


def test_a_condition_of_another_patient_by_nhs_number_is_refused(
    decide: Decide, record: Record
) -> None:
    def theirs(rs: list[dict[str, Any]]) -> None:
        rs[0]["identifier"] = [{"system": NHS_NUMBER, "value": NHS}]
        the(rs, "Condition", "Needle phobia")["subject"] = by_nhs_number(OTHER_NHS)

    resources = meets_with(theirs)
    assert decide(*resources).criteria["needle-phobia"].result is Tri.UNKNOWN
    (warning,) = [w for w in record(*resources).warnings if "not used" in w]
    assert "NHS number is not this patient's" in warning
    assert OTHER_NHS not in warning  # another person's identifier is not repeated


def test_a_record_read_offline_without_a_subject_is_the_files_patients(decide: Decide) -> None:
    """A file ``iport-cds evaluate`` reads is one patient's record: a finding in it with no
    subject is read as theirs (the service's binding refuses one; see test_patient_binding)."""
    c = condition(text="Needle phobia")
    del c["subject"]
    assert decide(*type1_meets()[:-1], c).criteria["needle-phobia"].result is Tri.MET


NEEDLE_PHOBIA_CM = ("http://hl7.org/fhir/sid/icd-10-cm", "F40.231", "Fear of injections")


def test_a_coded_finding_whose_own_text_names_another_person_is_not_the_patients(
    decide: Decide, record: Record
) -> None:
    coded = condition(NEEDLE_PHOBIA_CM, text="Fear of injections (wife)")
    resources = [*type1_meets()[:-1], coded]
    assert decide(*resources).criteria["needle-phobia"].result is Tri.UNKNOWN
    assert list(refused(record(*resources)).values()) == [ANOTHER_PERSON]


def test_only_the_finding_said_of_another_person_is_left_out_of_a_record(decide: Decide) -> None:
    both = condition(text="Type 1 diabetes since 2001, on MDI. Husband: needle phobia")
    d = decide(*[r for r in type1_meets() if r["resourceType"] != "Condition"], both)
    assert d.criteria["type-1-diabetes"].result is Tri.MET
    assert d.criteria["needle-phobia"].result is Tri.UNKNOWN
