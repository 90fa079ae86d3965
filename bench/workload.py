"""Synthetic but realistic hook requests of a chosen size, shared by the benchmarks."""

from __future__ import annotations

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


def _searchset(rs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in rs]}


def order_select(n: int) -> dict[str, Any]:
    """An order-select request for an i-Port draft with all prefetch keys filled (n resources)."""
    rs = resources(n)
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
            "conditions": _searchset(by_type.get("Condition", [])),
            "hba1c": _searchset(by_type.get("Observation", [])),
            "findings": None,
            "medications": _searchset(by_type.get("MedicationRequest", [])),
            "referrals": None,
            "procedures": None,
            "devices": None,
            "deviceUses": None,
            "assignedDevices": None,
        },
    }
