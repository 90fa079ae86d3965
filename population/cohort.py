"""Who is in a policy's cohort, and which Patient record speaks for a person.

A policy's cohort is the people it could apply to on the extract date: alive, registered at a
practice, with the policy's diagnosis. People are Patient records de-duplicated by NHS number
(other identifiers where a record has none); among a person's records the most recent
registration wins (then the most recently updated, then the later in the export). Clinical
records naming no Patient that the export holds are counted for data quality, never as people.

Pure: no I/O, no clock (the extract date is given).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import places
from facts import PatientRecord
from policy import Policy
from population.per_policy import per_policy

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
# UK Core's registration details extension (GP Connect's is named the same way): its
# ``registrationPeriod`` says since when, and until when, the patient is registered.
REGISTRATION_EXTENSION_SUFFIX = "registrationdetails"

IN_COHORT = "in"
DECEASED = "deceased"
NOT_REGISTERED = "not registered"
NO_DIAGNOSIS = "no {} recorded"


def identity_key(pid: str, patient: Mapping[str, Any]) -> str:
    """What makes two Patient records one person: the NHS number, else the first other
    identifier (system and value), else the record's own id."""
    idents = [i for i in patient.get("identifier") or () if isinstance(i, Mapping)]
    for ident in idents:
        value = ident.get("value")
        if ident.get("system") == NHS_NUMBER_SYSTEM and isinstance(value, str):
            digits = "".join(value.split())
            if digits:
                return f"nhs:{digits}"
    for ident in idents:
        system, value = ident.get("system"), ident.get("value")
        if isinstance(system, str) and isinstance(value, str) and value.strip():
            return f"id:{system}|{value.strip()}"
    return f"pid:{pid}"


def _registration_period(patient: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ext in patient.get("extension") or ():
        url = ext.get("url") if isinstance(ext, Mapping) else None
        if not isinstance(url, str) or not url.lower().endswith(REGISTRATION_EXTENSION_SUFFIX):
            continue
        for sub in ext.get("extension") or ():
            if isinstance(sub, Mapping) and sub.get("url") == "registrationPeriod":
                period = sub.get("valuePeriod")
                return period if isinstance(period, Mapping) else {}
        return {}
    return None


def recency(patient: Mapping[str, Any]) -> str:
    """Orders a person's Patient records (the largest wins): the registration's start, then
    ``meta.lastUpdated`` (ISO 8601 text sorts as time for the same offset)."""
    period = _registration_period(patient) or {}
    start = period.get("start") if isinstance(period.get("start"), str) else ""
    meta = patient.get("meta")
    updated = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    return f"{start}\t{updated if isinstance(updated, str) else ''}"


def _day(text: Any) -> date | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def deceased_on(patient: Mapping[str, Any], extract_date: date) -> bool:
    """Dead on the extract date: ``deceasedBoolean`` true, or a date of death on or before it
    (a date of death after the extract date does not say the patient had died by then)."""
    if patient.get("deceasedBoolean") is True:
        return True
    if "deceasedDateTime" in patient:
        died = _day(patient["deceasedDateTime"])
        return died is None or died <= extract_date  # an unreadable date still says "died"
    return False


def registered_on(patient: Mapping[str, Any], extract_date: date) -> bool:
    """A current registered practice: ``generalPractitioner`` naming an organisation (an ODS
    code, or a reference to an Organization), or a registration period that has started and
    not ended by the extract date."""
    period = _registration_period(patient)
    if period is not None and period:
        start, end = _day(period.get("start")), _day(period.get("end"))
        if (start is None or start <= extract_date) and (end is None or end >= extract_date):
            return True
        if end is not None and end < extract_date:
            return False
    if places.practice_code(patient):
        return True
    for ref in patient.get("generalPractitioner") or ():
        if not isinstance(ref, Mapping):
            continue
        target = ref.get("reference")
        if ref.get("type") == "Organization" or (
            isinstance(target, str)
            and target.split("/_history")[0].split("/")[-2:-1] == ["Organization"]
        ):
            return True
    return False


@per_policy
def diagnosis_sets(policy: Policy) -> tuple[str, ...]:
    """The value sets of the policy's diagnosis criteria: its cohort's diagnoses (type 1 for
    NICE TA151 and TA943, type 1 or type 2 for the i-Port policy's two routes)."""
    return tuple(
        dict.fromkeys(str(c.params["valueSet"]) for c in policy.criteria if c.rule == "diagnosis")
    )


def has_diagnosis(record: PatientRecord, value_sets: Iterable[str]) -> bool:
    """An established finding (not a query: unconfirmed, provisional) in one of the sets."""
    return any(f.established for vs in value_sets for f in record.findings_in(vs))


def cohort_reason(
    policy: Policy,
    patient: Mapping[str, Any],
    record: PatientRecord,
    extract_date: date,
    diagnosis_names: Mapping[str, str],
) -> str:
    """IN_COHORT, or the first reason the person is outside the policy's cohort."""
    return outside_reason(patient, extract_date) or diagnosis_reason(
        policy, record, diagnosis_names
    )


def outside_reason(patient: Mapping[str, Any], extract_date: date) -> str | None:
    """Why the person is outside every policy's cohort (DECEASED, NOT_REGISTERED), or None."""
    if deceased_on(patient, extract_date):
        return DECEASED
    if not registered_on(patient, extract_date):
        return NOT_REGISTERED
    return None


def diagnosis_reason(
    policy: Policy, record: PatientRecord, diagnosis_names: Mapping[str, str]
) -> str:
    """IN_COHORT for a person alive and registered with the policy's diagnosis, else why not."""
    sets = diagnosis_sets(policy)
    if sets and not has_diagnosis(record, sets):
        return NO_DIAGNOSIS.format(" or ".join(diagnosis_names.get(s, s) for s in sets))
    return IN_COHORT
