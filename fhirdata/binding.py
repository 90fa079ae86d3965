"""Which resources are this patient's: the subject must say so, exactly.

A resource counts as the context patient's only when its ``subject`` (or ``patient``) is

- ``Patient/<id>``: a reference relative to the request's FHIR server;
- ``<fhirServer>/Patient/<id>``: absolute, on the request's own FHIR server;
- ``urn:uuid:<x>`` where the same Bundle has an entry ``fullUrl: urn:uuid:<x>`` holding
  ``Patient/<id>``.

No subject, an identifier-only subject, a contained (``#``) or unresolvable ``urn:uuid``
subject, or the same id on another server says nothing reliable about *this* patient: such a
resource is not used, and is named among what could not be read, never silently dropped.
A ``Patient`` resource must have the context id. Resources that are about no patient
(Medication, Practitioner ...) pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fhirdata.allowlist import normalise_base

# Types the service reads that always belong to a patient: one without a subject is refused.
PATIENT_SPECIFIC = frozenset(
    {
        "AllergyIntolerance",
        "CarePlan",
        "Condition",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "Encounter",
        "Flag",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
    }
)


def patient_urns(entries: Iterable[Any], patient_id: str) -> frozenset[str]:
    """``fullUrl``s of a Bundle's entries that hold the context Patient as a ``urn:uuid``."""
    found = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        full_url, resource = entry.get("fullUrl"), entry.get("resource")
        if (
            isinstance(full_url, str)
            and full_url.startswith("urn:uuid:")
            and isinstance(resource, dict)
            and resource.get("resourceType") == "Patient"
            and resource.get("id") == patient_id
        ):
            found.add(full_url)
    return frozenset(found)


def binding_problem(
    resource: Mapping[str, Any],
    patient_id: str,
    fhir_server: str | None,
    urns: frozenset[str] = frozenset(),
) -> str | None:
    """Why ``resource`` cannot be taken as the context patient's, or None when it can."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):  # a list or an object: not a FHIR resource (nor hashable)
        return "its resourceType is not a name"
    if rtype == "Patient":
        return None if resource.get("id") == patient_id else "it is another Patient"
    target = None
    for key in ("subject", "patient"):
        if key in resource:
            target = resource[key]
            break
    else:
        return "it names no patient" if rtype in PATIENT_SPECIFIC else None
    reference = target.get("reference") if isinstance(target, dict) else None
    if not isinstance(reference, str) or not reference:
        return "its patient is not given as a reference (an identifier alone is not enough)"
    if reference == f"Patient/{patient_id}":
        return None
    if reference.startswith("urn:uuid:"):
        if reference in urns:
            return None
        return "its patient is a urn:uuid that does not resolve to this patient in the Bundle"
    if fhir_server and _absolute_on(reference, fhir_server, patient_id):
        return None
    if reference.startswith(("http://", "https://")):
        return "its patient is on another FHIR server, or is another patient"
    return "it belongs to another patient"


def _absolute_on(reference: str, fhir_server: str, patient_id: str) -> bool:
    try:
        parts = urlsplit(reference)
    except ValueError:
        return False
    if parts.query or parts.fragment:
        return False
    return normalise_base(reference) == f"{normalise_base(fhir_server)}/Patient/{patient_id}"


def bind(
    resources: Iterable[Any],
    patient_id: str,
    fhir_server: str | None,
    warnings: list[str],
    urns: frozenset[str] = frozenset(),
) -> list[Any]:
    """The resources that are this patient's; the others are named in ``warnings``."""
    kept = []
    for resource in resources:
        if not isinstance(resource, dict):
            kept.append(resource)  # not a resource at all: reading it reports that
            continue
        problem = binding_problem(resource, patient_id, fhir_server, urns)
        if problem is None:
            kept.append(resource)
            continue
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if rtype == "Patient":  # its id would name another patient on the card
            ref = "A Patient resource"
        elif isinstance(rtype, str) and isinstance(rid, str):
            ref = f"{rtype}/{rid}"[:80]
        else:
            ref = str(rtype)[:40]
        warnings.append(f"{ref} not used: {problem}.")
    return kept
