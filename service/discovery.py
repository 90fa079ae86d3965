"""The CDS services this deployment offers, as published at GET /cds-services.

Every service is declared in its policy file (``services``); this module only collects them
from the loaded policies and writes the discovery document.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from policy import Policy, PolicyError
from policy.model import SPEAKS, ServiceSpec

ServiceDef = ServiceSpec  # one CDS service: which hook, which policy, when it answers


def enabled_services(
    policies: Iterable[Policy], patient_view_speaks: str | None = None
) -> dict[str, ServiceSpec]:
    """The services the loaded policies declare, by service id (unique across policies).

    ``patient_view_speaks`` (the PATIENT_VIEW_SPEAKS setting) replaces ``speaks`` of every
    patient-view service that speaks only when met or one judgement away: a deployment's
    choice of whether a patient one clinician judgement away gets a card."""
    if patient_view_speaks is not None and patient_view_speaks not in SPEAKS[1:]:
        raise PolicyError(
            f"PATIENT_VIEW_SPEAKS {patient_view_speaks!r} is not one of {list(SPEAKS[1:])}"
        )
    services: dict[str, ServiceSpec] = {}
    for policy in policies:
        for s in policy.services:
            if patient_view_speaks and s.hook == "patient-view" and s.speaks != "always":
                s = dataclasses.replace(s, speaks=patient_view_speaks)
            if s.id in services:
                raise PolicyError(
                    f"service id {s.id!r} is declared by both {services[s.id].policy!r} "
                    f"and {s.policy!r}"
                )
            services[s.id] = s
    return services


def discovery_document(
    services: Mapping[str, ServiceSpec], templates: Mapping[str, str]
) -> dict[str, Any]:
    # The resource types the templates read (each template starts with its type).
    types = sorted({t.split("?")[0].split("/")[0] for t in templates.values()})
    usage = (
        "Send prefetch (or fhirServer with an access token allowing read of "
        f"{', '.join(types[:-1])} and {types[-1]} for the patient). Cards are advisory."
        if types
        else "Cards are advisory."
    )
    return {
        "services": [
            {
                "hook": s.hook,
                "title": s.title,
                "description": s.description,
                "id": s.id,
                "prefetch": dict(templates),
                "usageRequirements": usage,
            }
            for s in services.values()
        ]
    }
