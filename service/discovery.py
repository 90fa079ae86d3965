"""The CDS services this deployment offers, as published at GET /cds-services."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

IPORT = "hny-iport-advance"  # policy ids, as in each policy file's metadata
PUMP = "nice-insulin-pump"


@dataclass(frozen=True)
class ServiceDef:
    """One CDS service: which hook, which policy, and what it says when."""

    id: str
    hook: str
    title: str
    description: str
    policy: str = IPORT
    companion: str | None = None  # a policy whose "meets" is mentioned first on this card


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
            companion=PUMP,
        ),
        ServiceDef(
            "iport-advance-order-sign",
            "order-sign",
            "i-Port Advance: commissioning criteria check at signing",
            _ORDER_DESCRIPTION.format(verb="about to be signed"),
            companion=PUMP,
        ),
        ServiceDef(
            "iport-advance-patient-view",
            "patient-view",
            "i-Port Advance: patient may be eligible",
            "When a patient's record is opened, says so if they meet the NHS Humber and North "
            "Yorkshire commissioning criteria for an i-Port Advance injection port and have no "
            "i-Port order yet. Silent otherwise.",
            companion=PUMP,
        ),
        ServiceDef(
            "nice-insulin-pump-patient-view",
            "patient-view",
            "Insulin pump therapy: NICE criteria",
            "When a patient's record is opened, prompts when a person with type 1 diabetes meets "
            "the NICE criteria for insulin pump therapy (TA151) and is not already on a pump, with "
            "the evidence and a suggested referral to the diabetes service. Silent otherwise.",
            policy=PUMP,
        ),
    )
}


def enabled_services(policies: Iterable[str]) -> dict[str, ServiceDef]:
    """The services whose policy this deployment has loaded."""
    loaded = set(policies)
    return {k: s for k, s in SERVICES.items() if s.policy in loaded}


def discovery_document(
    services: Mapping[str, ServiceDef], templates: Mapping[str, str]
) -> dict[str, Any]:
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
            for s in services.values()
        ]
    }
