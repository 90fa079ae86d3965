"""Small builders for FHIR R4 resources, so each test reads as the clinical situation it sets up."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import demo
from facts import PatientRecord, extract_record
from valuesets import ValueSetLibrary

SNOMED = "http://snomed.info/sct"
DMD = "https://dmd.nhs.uk"
LOINC = "http://loinc.org"
CRITERIA = "https://iport-cds.example.org/fhir/CodeSystem/iport-criteria"
PID = "pat-1"

T1DM = (SNOMED, "46635009", "Diabetes mellitus type 1")
T2DM = (SNOMED, "44054006", "Diabetes mellitus type 2")
LIPO = (SNOMED, "238894004", "Insulin lipohypertrophy")
NON_ADHERENCE = (SNOMED, "129834002", "Non-compliance with medication regimen")
IMPAIRED_AWARENESS = (SNOMED, "170766006", "Loss of hypoglycaemic warning")
HYPO_EVENT = (SNOMED, "237632004", "Hypoglycaemic event due to diabetes")
REFERRAL_DIABETOLOGIST = (SNOMED, "183530004", "Referral to diabetologist")
ASPART = (
    DMD,
    "3468611000001108",
    "Insulin aspart 100units/ml solution for injection 3ml cartridges",
)
GLARGINE_VTM = (SNOMED, "126212009", "Insulin glargine")
PREMIXED_ASPART = (
    DMD,
    "3468811000001107",
    "Insulin aspart biphasic 30/70 100units/ml suspension for injection 3ml cartridges",
)
HYPO_COMA = (SNOMED, "421437000", "Hypoglycemic coma due to type 1 diabetes mellitus")

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def coding(code: tuple[str, str, str]) -> dict[str, Any]:
    system, value, display = code
    return {"system": system, "code": value, "display": display}


def patient(birth_date: str | None = "1990-05-17", pid: str = PID) -> dict[str, Any]:
    p: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if birth_date:
        p["birthDate"] = birth_date
    return p


def registered(p: dict[str, Any], practice: str = "B81001") -> dict[str, Any]:
    """``p`` registered at a practice (an ODS code): in a population cohort."""
    ods = "https://fhir.nhs.uk/Id/ods-organization-code"
    p["generalPractitioner"] = [
        {"type": "Organization", "identifier": {"system": ods, "value": practice}}
    ]
    return p


def condition(
    code: tuple[str, str, str] | None = None,
    *,
    text: str | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    onset: str | None = "2026-06-01",
    pid: str = PID,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "resourceType": "Condition",
        "id": _id("cond"),
        "subject": {"reference": f"Patient/{pid}"},
        "code": {},
    }
    if code:
        c["code"]["coding"] = [coding(code)]
    if text:
        c["code"]["text"] = text
    if clinical:
        c["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical,
                }
            ]
        }
    if verification:
        c["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        }
    if onset:
        c["onsetDateTime"] = onset
    return c


def hba1c(
    value: float,
    unit: str = "mmol/mol",
    *,
    on: str = "2026-09-01",
    code: tuple[str, str, str] = (SNOMED, "999791000000106", "Haemoglobin A1c level - IFCC"),
    status: str = "final",
    pid: str = PID,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": _id("hba1c"),
        "status": status,
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [coding(code)]},
        "effectiveDateTime": on,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def hba1c_censored(
    written: str, *, on: str = "2026-11-02", as_string: bool = False, pid: str = PID
) -> dict[str, Any]:
    """An HbA1c beyond the analyser's range, as written (">130", "<=20"): comparator ">" and
    value 130, or with ``as_string`` the valueString "> 130 mmol/mol"."""
    number = written.lstrip("<>=")
    op = written[: len(written) - len(number)]
    r = hba1c(float(number), on=on, pid=pid)
    if as_string:
        del r["valueQuantity"]
        r["valueString"] = f"{op} {number} mmol/mol"
    else:
        r["valueQuantity"]["comparator"] = op
    return r


def observation_finding(
    code: tuple[str, str, str] | None = None,
    *,
    text: str | None = None,
    on: str = "2026-06-01",
    pid: str = PID,
) -> dict[str, Any]:
    o: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _id("obs"),
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {},
        "effectiveDateTime": on,
    }
    if code:
        o["code"]["coding"] = [coding(code)]
    if text:
        o["code"]["text"] = text
    return o


def insulin(
    code: tuple[str, str, str] = ASPART,
    *,
    text: str | None = None,
    timing: dict[str, Any] | None = None,
    status: str = "active",
    pid: str = PID,
) -> dict[str, Any]:
    dosage: dict[str, Any] = {}
    if text is not None:
        dosage["text"] = text
    if timing is not None:
        dosage["timing"] = timing
    return {
        "resourceType": "MedicationRequest",
        "id": _id("med"),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": {"coding": [coding(code)], "text": code[2]},
        "authoredOn": "2026-01-10",
        "dosageInstruction": [dosage] if dosage else [],
    }


def confirmation(
    criterion: str,
    value: bool = True,
    *,
    on: str = "2026-10-01",
    performer: str | None = "Practitioner/dr-1",
    pid: str = PID,
) -> dict[str, Any]:
    o: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _id("confirm"),
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": CRITERIA, "code": criterion}]},
        "effectiveDateTime": on,
        "valueBoolean": value,
    }
    if performer:
        o["performer"] = [{"reference": performer}]
    return o


def iport_device_request(
    status: str = "draft", text: str = "i-Port Advance injection port 9mm", pid: str = PID
) -> dict[str, Any]:
    return {
        "resourceType": "DeviceRequest",
        "id": _id("devreq"),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "codeCodeableConcept": {"text": text},
    }


def type1_meets(pid: str = PID) -> list[dict[str, Any]]:
    """A type 1 adult who meets the i-Port criteria: HbA1c 75 on basal-bolus MDI, needle phobia."""
    return [
        patient(pid=pid),
        condition(T1DM, pid=pid),
        hba1c(75, pid=pid),
        insulin(text="with meals", pid=pid),
        insulin(text="at night", pid=pid),
        condition(text="Needle phobia", pid=pid),
    ]


def demo_record(
    patient: demo.DemoPatient, vsl: ValueSetLibrary, criteria_system: str, today: date
) -> PatientRecord:
    """The demo ``patient``'s record as the service reads it, on ``today``."""
    return extract_record(
        demo.bundle_resources(patient.bundle(today)),
        vsl,
        patient_id=patient.patient_id,
        criteria_system=criteria_system,
    )
