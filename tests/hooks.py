"""Build CDS Hooks requests as an EHR would send them."""

from __future__ import annotations

from typing import Any

from tests.builders import PID

PREFETCH_KEYS = (
    "patient",
    "conditions",
    "hba1c",
    "findings",
    "medications",
    "referrals",
    "procedures",
    "devices",
    "deviceUses",
    "assignedDevices",
)
SERVICE = {
    "order-select": "iport-advance-order-select",
    "order-sign": "iport-advance-order-sign",
    "patient-view": "iport-advance-patient-view",
    "pump-patient-view": "nice-insulin-pump-patient-view",
    "hcl-patient-view": "nice-hybrid-closed-loop-patient-view",
}


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def full_prefetch(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Every prefetch key filled, as a client that ran the templates would (Patient by read)."""
    by_key: dict[str, list[dict[str, Any]]] = {k: [] for k in PREFETCH_KEYS}
    patient = None
    for r in resources:
        rtype = r["resourceType"]
        if rtype == "Patient":
            patient = r
        elif rtype == "Condition":
            by_key["conditions"].append(r)
        elif rtype == "Observation":
            by_key["hba1c"].append(r)  # which search returned it does not matter to the service
        elif rtype in ("MedicationRequest", "Medication"):
            by_key["medications"].append(r)
        elif rtype == "ServiceRequest":
            by_key["referrals"].append(r)
        elif rtype == "Procedure":
            by_key["procedures"].append(r)
        elif rtype == "DeviceRequest":
            by_key["devices"].append(r)
        elif rtype == "DeviceUseStatement":
            by_key["deviceUses"].append(r)
        elif rtype == "Device":
            by_key["assignedDevices"].append(r)
    prefetch: dict[str, Any] = {k: searchset(v) for k, v in by_key.items() if k != "patient"}
    prefetch["patient"] = patient
    return prefetch


def hook_request(
    hook: str,
    *,
    resources: list[dict[str, Any]] | None = None,
    drafts: list[dict[str, Any]] | None = None,
    selections: list[str] | None = None,
    prefetch: dict[str, Any] | None = None,
    fhir_server: str | None = None,
    access_token: str | None = None,
    patient_id: str = PID,
    hook_instance: str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": patient_id}
    if hook in ("order-select", "order-sign"):
        drafts = drafts or []
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        }
    if hook == "order-select":
        context["selections"] = (
            selections
            if selections is not None
            else [f"{d['resourceType']}/{d['id']}" for d in drafts or []]
        )
    body: dict[str, Any] = {"hook": hook, "hookInstance": hook_instance, "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    elif resources is not None:
        body["prefetch"] = full_prefetch(resources)
    if fhir_server:
        body["fhirServer"] = fhir_server
    if access_token:
        body["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service",
        }
    return body
