"""Synthetic but realistic hook requests of a chosen size, shared by the benchmarks.

Two levels of detail. ``lean``: each resource holds only what the policies read (about 300
bytes a resource: 160 resources are 47 KiB). ``ehr``: each also carries what an EHR's FHIR
API returns beside it and the policies do not read (``meta``, business identifiers, the
narrative, categories, the encounter, a result's reference range, the prescriber, a
searchset entry's ``fullUrl``): about 850 bytes a resource, so that 160 resources are the
135 KiB body issue #25's figures were taken with. Neither changes what the record says:
both requests meet the i-Port criteria.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

SNOMED = "http://snomed.info/sct"
PID = "bench-patient"


def _subject() -> dict[str, str]:
    return {"reference": f"Patient/{PID}"}


def resources(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """A type 1 patient who meets the criteria, padded to ``n`` resources with the kind of
    clutter a real record has (other conditions, many HbA1c and other observations, other meds)."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": PID, "birthDate": "1984-03-09"},
        {
            "resourceType": "Condition",
            "id": "t1",
            "subject": _subject(),
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {
                "coding": [{"system": SNOMED, "code": "46635009", "display": "Type 1 diabetes"}]
            },
            "onsetDateTime": "1999-04-01",
        },
        {
            "resourceType": "Condition",
            "id": "np",
            "subject": _subject(),
            "code": {"text": "Needle phobia"},
            "recordedDate": "2026-09-01",  # a finding counts only when current
        },
        {
            "resourceType": "Observation",
            "id": "a1c-latest",
            "status": "final",
            "subject": _subject(),
            "code": {"coding": [{"system": SNOMED, "code": "999791000000106"}]},
            "effectiveDateTime": "2026-10-01",
            "valueQuantity": {"value": 78, "unit": "mmol/mol", "code": "mmol/mol"},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "bolus",
            "status": "active",
            "intent": "order",
            "subject": _subject(),
            "medicationCodeableConcept": {
                "coding": [{"system": "https://dmd.nhs.uk", "code": "3468611000001108"}]
            },
            "dosageInstruction": [{"text": "with meals"}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": "basal",
            "status": "active",
            "intent": "order",
            "subject": _subject(),
            "medicationCodeableConcept": {"text": "Tresiba FlexTouch"},
            "dosageInstruction": [{"timing": {"code": {"coding": [{"code": "QD"}]}}}],
        },
    ]
    i = 0
    while len(out) < n:
        i += 1
        kind = i % 4
        if kind == 0:
            out.append(
                {
                    "resourceType": "Observation",
                    "id": f"a1c-{i}",
                    "status": "final",
                    "subject": _subject(),
                    "code": {"coding": [{"system": SNOMED, "code": "999791000000106"}]},
                    "effectiveDateTime": f"20{rnd.randint(10, 24):02d}-{rnd.randint(1, 12):02d}-15",
                    "valueQuantity": {
                        "value": rnd.randint(50, 90),
                        "unit": "mmol/mol",
                        "code": "mmol/mol",
                    },
                }
            )
        elif kind == 1:
            out.append(
                {
                    "resourceType": "Condition",
                    "id": f"c-{i}",
                    "subject": _subject(),
                    "clinicalStatus": {"coding": [{"code": rnd.choice(["active", "resolved"])}]},
                    "code": {
                        "coding": [{"system": SNOMED, "code": str(100000 + i), "display": "Other"}],
                        "text": "Some other condition",
                    },
                    "recordedDate": "2015-06-01",
                }
            )
        elif kind == 2:
            out.append(
                {
                    "resourceType": "Observation",
                    "id": f"o-{i}",
                    "status": "final",
                    "subject": _subject(),
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": "8480-6"}],
                        "text": "Systolic BP",
                    },
                    "effectiveDateTime": "2024-02-02",
                    "valueQuantity": {"value": 120 + i % 30, "unit": "mm[Hg]"},
                }
            )
        else:
            out.append(
                {
                    "resourceType": "MedicationRequest",
                    "id": f"m-{i}",
                    "status": "active",
                    "intent": "order",
                    "subject": _subject(),
                    "medicationCodeableConcept": {
                        "coding": [{"system": "https://dmd.nhs.uk", "code": str(300000 + i)}],
                        "text": "Atorvastatin 20mg tablets",
                    },
                    "dosageInstruction": [{"text": "one at night"}],
                }
            )
    return out[:n]


DETAILS = ("lean", "ehr")


def detail_argument(ap: argparse.ArgumentParser) -> None:
    """``--detail``: the resources' level of detail, the issue's 135 KiB body by default."""
    ap.add_argument(
        "--detail",
        choices=DETAILS,
        default="ehr",
        help="ehr: resources as an EHR returns them (160 are 135 KiB, issue #25's body); "
        "lean: only what the policies read (47 KiB)",
    )


FHIR_BASE = "https://ehr.example.nhs.uk/fhir"
_UPDATED = "2026-11-20T09:14:03Z"
_NARRATIVE = {
    "Patient": "Patient",
    "Condition": "Problem list entry",
    "Observation": "Result",
    "MedicationRequest": "Repeat prescription",
}
_CATEGORY = {
    "Condition": (
        "http://terminology.hl7.org/CodeSystem/condition-category",
        "problem-list-item",
        "Problem List Item",
    ),
    "MedicationRequest": (
        "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
        "community",
        "Community",
    ),
}


def _with_ehr_detail(r: dict[str, Any], i: int) -> dict[str, Any]:
    """``r`` with what an EHR returns beside what the policies read (none of it read)."""
    rtype = r["resourceType"]
    out: dict[str, Any] = {
        "resourceType": rtype,
        "id": r["id"],
        "meta": {"lastUpdated": _UPDATED},
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{_NARRATIVE[rtype]}.</div>',
        },
        "identifier": [{"system": "https://bench.example.nhs.uk/id", "value": f"{rtype}-{i:06d}"}],
        **{k: v for k, v in r.items() if k not in ("resourceType", "id")},
    }
    if rtype == "Patient":
        out["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9449306060"}]
        out["name"] = [{"use": "official", "family": "Bench", "given": ["Pat"]}]
        out["gender"] = "female"
        out["address"] = [{"use": "home", "city": "Hull", "postalCode": "HU1 1AA"}]
        return out
    out["encounter"] = {"reference": f"Encounter/enc-{i % 12}"}
    if rtype in _CATEGORY:
        system, code, display = _CATEGORY[rtype]
        out["category"] = [{"coding": [{"system": system, "code": code, "display": display}]}]
    if rtype == "Condition":
        out["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        }
    elif rtype == "Observation":
        lab = "mmol/mol" in str(r.get("valueQuantity", {}).get("unit"))
        code = "laboratory" if lab else "vital-signs"
        out["category"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": code,
                    }
                ]
            }
        ]
        low, high = (20, 41) if lab else (90, 140)
        out["referenceRange"] = [{"low": {"value": low}, "high": {"value": high}}]
    elif rtype == "MedicationRequest":
        out["requester"] = {"reference": "Practitioner/gp-1", "display": "Dr A GP"}
    return out


def _searchset(rs: list[dict[str, Any]], detail: str = "lean") -> dict[str, Any]:
    if detail == "lean":
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in rs],
        }
    return {
        "resourceType": "Bundle",
        "id": "searchset",
        "meta": {"lastUpdated": _UPDATED},
        "type": "searchset",
        "total": len(rs),
        "entry": [
            {
                "fullUrl": f"{FHIR_BASE}/{r['resourceType']}/{r['id']}",
                "resource": r,
            }
            for r in rs
        ],
    }


def order_select(n: int, detail: str = "lean") -> dict[str, Any]:
    """An order-select request for an i-Port draft with all prefetch keys filled (n resources),
    each resource ``lean`` or with an EHR's ``ehr`` detail (see the module's docstring)."""
    if detail not in DETAILS:
        raise ValueError(f"detail is one of {DETAILS}")
    rs = resources(n)
    if detail == "ehr":
        rs = [_with_ehr_detail(r, i) for i, r in enumerate(rs)]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rs[1:]:
        by_type.setdefault(r["resourceType"], []).append(r)
    draft = {
        "resourceType": "DeviceRequest",
        "id": "draft-iport",
        "status": "draft",
        "intent": "order",
        "subject": _subject(),
        "codeCodeableConcept": {"text": "i-Port Advance injection port 9mm"},
    }
    return {
        "hook": "order-select",
        "hookInstance": "9f0d2e1c-6b8a-4d55-8f2e-2d3c4b5a6f70",
        "context": {
            "userId": "Practitioner/bench",
            "patientId": PID,
            "selections": ["DeviceRequest/draft-iport"],
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": draft}],
            },
        },
        "prefetch": {
            "patient": rs[0],
            "conditions": _searchset(by_type.get("Condition", []), detail),
            "hba1c": _searchset(by_type.get("Observation", []), detail),
            "findings": None,
            "medications": _searchset(by_type.get("MedicationRequest", []), detail),
            "referrals": None,
            "procedures": None,
            "devices": None,
            "deviceUses": None,
            "assignedDevices": None,
        },
    }
