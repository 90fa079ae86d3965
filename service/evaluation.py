"""One hook call, end to end: request → data → facts → decision → cards.

``Runtime`` holds what is built once at start-up (value sets, policy, HTTP pool); ``run_hook``
is the whole flow for one request and knows nothing of Flask.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests

from cds_cards import CardContext, eligibility_card
from facts import Order, PatientRecord, extract_record, order_is_iport
from fhirdata import (
    DataUnavailable,
    FetchSettings,
    FhirClient,
    FhirServerNotAllowed,
    FhirServerPolicy,
    Gathered,
    gather,
)
from fhirdata.transport import OriginExecutors
from policy import Decision, Outcome, Policy, Tri, evaluate
from service.discovery import ServiceDef
from service.errors import PreconditionFailed
from service.hookrequest import HookRequest
from valuesets import ValueSetLibrary

LONDON = ZoneInfo("Europe/London")


@dataclass
class Runtime:
    vsl: ValueSetLibrary
    policies: dict[str, Policy]  # by policy id
    services: dict[str, ServiceDef]  # the enabled ones, by service id
    templates: dict[str, str]
    server_policy: FhirServerPolicy
    fetch_settings: FetchSettings
    session: requests.Session
    executors: OriginExecutors  # one bounded executor per FHIR origin (bulkheads)


@dataclass
class HookResult:
    """The response body, and what the audit trail and logs may know (no identifiers)."""

    body: dict[str, Any]
    outcome: str | None = None
    pathway: str | None = None
    card_uuids: list[str] = field(default_factory=list)
    decision: Decision | None = None
    gathered: Gathered | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def iport_drafts(req: HookRequest, vsl: ValueSetLibrary) -> list[Order]:
    """The draft orders this hook is about that are i-Port Advance orders.

    order-select: only the selected drafts; order-sign: every draft. Drafts with no code
    yet (the Sandbox's first order-select) are simply not i-Port orders.
    """
    drafts = req.draft_orders
    if req.hook == "order-select":
        selected = set(req.selections)
        drafts = [d for d in drafts if f"{d.get('resourceType')}/{d.get('id')}" in selected]
    return [o for o in (order_is_iport(d, vsl) for d in drafts) if o is not None]


def _client_factory(
    runtime: Runtime, req: HookRequest, server_policy: FhirServerPolicy, request_id: str | None
) -> Callable[[], FhirClient] | None:
    if not req.fhir_server:
        return None
    fhir_server = req.fhir_server

    def make() -> FhirClient:
        try:
            base = server_policy.check(fhir_server)
        except FhirServerNotAllowed as exc:
            raise DataUnavailable(f"{exc}; no request was sent to it") from exc
        return FhirClient(
            base,
            session=runtime.session,
            executor=runtime.executors.for_url(base),
            settings=runtime.fetch_settings,
            access_token=req.access_token,
            request_id=request_id,
        )

    return make


def run_hook(
    runtime: Runtime,
    service: ServiceDef,
    req: HookRequest,
    *,
    now: datetime,
    new_uuid: Callable[[], str],
    server_policy: FhirServerPolicy | None = None,
    request_id: str | None = None,
    app_url: str | None = None,
) -> HookResult:
    """Evaluate the policy for this hook call and build its cards.

    ``server_policy`` says which FHIR servers may be read (the authenticated client's own);
    without one, the deployment's allowlist applies. ``app_url`` is the SMART assessment
    app's launch URL, linked from the card.

    Raises PreconditionFailed (412) when required data cannot be obtained.
    """
    started = time.perf_counter()
    if service.hook in ("order-select", "order-sign") and not iport_drafts(req, runtime.vsl):
        return HookResult(body={"cards": []}, timings_ms={"total": _ms(started)})
    try:
        gathered = gather(
            req.prefetch,
            runtime.templates,
            req.patient_id,
            _client_factory(runtime, req, server_policy or runtime.server_policy, request_id),
            fhir_server=req.fhir_server,
        )
    except DataUnavailable as exc:
        raise PreconditionFailed(str(exc)) from exc
    policy = runtime.policies[service.policy]
    record = extract_record(
        gathered.resources,
        runtime.vsl,
        patient_id=req.patient_id,
        criteria_system=policy.info.criteria_system,
        warnings=gathered.warnings,
    )
    today = now.astimezone(LONDON).date()
    decision = evaluate(policy, record, today)
    result = HookResult(
        body={"cards": []},
        outcome=decision.outcome.value,
        pathway=decision.pathway,
        decision=decision,
        gathered=gathered,
    )
    if service.hook != "patient-view" or _speaks_proactively(decision, record):
        ctx = CardContext(
            patient_id=req.patient_id,
            user_ref=req.user_id,
            now=now,
            new_uuid=new_uuid,
            note=_companion_note(runtime, service, record, today),
            app_url=app_url,
        )
        card = eligibility_card(decision, ctx, patient_view=service.hook == "patient-view")
        result.body = {"cards": [card]}
        result.card_uuids = [card["uuid"]]
    result.timings_ms = {"fhir": round(gathered.fetch_ms, 2), "total": _ms(started)}
    return result


def _speaks_proactively(decision: Decision, record: PatientRecord) -> bool:
    """patient-view speaks only when the criteria are met and the prompt is still useful:
    not when the thing is already on order (i-Port) or already in use (a pump)."""
    words = decision.policy.presentation
    if decision.outcome is not Outcome.MEETS:
        return False
    if words.get("silenceWhenActiveOrder") and record.iport_orders:
        return False
    silencers = words.get("silenceWhenMet", [])
    return not any(decision.criteria[c].result is Tri.MET for c in silencers)


def _companion_note(
    runtime: Runtime, service: ServiceDef, record: PatientRecord, today: date
) -> str | None:
    """The i-Port card defers to the insulin pump when the patient meets the NICE pump criteria
    and is not on one: a pump is the NICE-recommended option, an i-Port the alternative."""
    companion = runtime.policies.get(service.companion or "")
    if companion is None:
        return None
    decision = evaluate(companion, record, today)
    if not _speaks_proactively(decision, record):
        return None
    note: str | None = companion.info.presentation.get("companionNote")
    return note


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
