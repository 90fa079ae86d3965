"""The CDS services this deployment offers, as published at GET /cds-services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceDef:
    id: str
    hook: str
    title: str
    description: str


_ORDER_DESCRIPTION = (
    "When an i-Port Advance injection port is {verb}, checks the patient's record against the "
    "NHS Humber and North Yorkshire commissioning policy (type 1: NICE insulin pump criteria plus "
    "one i-Port criterion; type 2: diabetes specialist recommendation plus one criterion) and "
    "shows each criterion as met / not met / unknown with its evidence."
)

SERVICES: Mapping[str, ServiceDef] = {
    s.id: s
    for s in (
        ServiceDef(
            "iport-advance-order-select",
            "order-select",
            "i-Port Advance: commissioning criteria check",
            _ORDER_DESCRIPTION.format(verb="selected in a draft order"),
        ),
        ServiceDef(
            "iport-advance-order-sign",
            "order-sign",
            "i-Port Advance: commissioning criteria check at signing",
            _ORDER_DESCRIPTION.format(verb="about to be signed"),
        ),
        ServiceDef(
            "iport-advance-patient-view",
            "patient-view",
            "i-Port Advance: patient may be eligible",
            "When a patient's record is opened, says so if they meet the NHS Humber and North "
            "Yorkshire commissioning criteria for an i-Port Advance injection port and have no "
            "i-Port order yet. Silent otherwise.",
        ),
    )
}


def discovery_document(templates: Mapping[str, str]) -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": s.hook,
                "title": s.title,
                "description": s.description,
                "id": s.id,
                "prefetch": dict(templates),
                "usageRequirements": (
                    "Send prefetch (or fhirServer with an access token allowing read of Patient, "
                    "Condition, Observation, MedicationRequest, ServiceRequest and DeviceRequest "
                    "for the patient). Cards are advisory."
                ),
            }
            for s in SERVICES.values()
        ]
    }
