"""One hook call, end to end: request → data → facts → decision → cards.

``Engine`` holds what is built once at start-up (value sets, policy, HTTP pool); ``run_hook``
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
from facts import Order, PatientRecord, extract_record, order_in
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
class Engine:
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


def triggering_drafts(req: HookRequest, service: ServiceDef, vsl: ValueSetLibrary) -> list[Order]:
    """The draft orders of this hook call coded in the service's trigger value set.

    With ``selected_only`` (order-select), only the drafts the clinician selected. Drafts with
    no code yet (the Sandbox's first order-select) are in no value set. A service with no
    trigger (patient-view) has none.
    """
    if service.trigger_value_set is None:
        return []
    drafts = req.draft_orders
    if service.selected_only:
        selected = set(req.selections)
        drafts = [d for d in drafts if f"{d.get('resourceType')}/{d.get('id')}" in selected]
    value_set = service.trigger_value_set
    return [o for o in (order_in(d, vsl, value_set) for d in drafts) if o is not None]


def _client_factory(
    engine: Engine, req: HookRequest, server_policy: FhirServerPolicy, request_id: str | None
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
            session=engine.session,
            executor=engine.executors.for_url(base),
            settings=engine.fetch_settings,
            access_token=req.access_token,
            request_id=request_id,
        )

    return make


def run_hook(
    engine: Engine,
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
    if service.trigger_value_set and not triggering_drafts(req, service, engine.vsl):
        return HookResult(body={"cards": []}, timings_ms={"total": _ms(started)})
    try:
        gathered = gather(
            req.prefetch,
            engine.templates,
            req.patient_id,
            _client_factory(engine, req, server_policy or engine.server_policy, request_id),
            fhir_server=req.fhir_server,
        )
    except DataUnavailable as exc:
        raise PreconditionFailed(str(exc)) from exc
    policy = engine.policies[service.policy]
    record = extract_record(
        gathered.resources,
        engine.vsl,
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
    if service.speaks == "always" or _speaks_proactively(decision, record):
        ctx = CardContext(
            patient_id=req.patient_id,
            user_ref=req.user_id,
            now=now,
            new_uuid=new_uuid,
            note=_companion_note(engine, service, record, today),
            app_url=app_url,
        )
        card = eligibility_card(decision, ctx, patient_view=service.hook == "patient-view")
        result.body = {"cards": [card]}
        result.card_uuids = [card["uuid"]]
    result.timings_ms = {"fhir": round(gathered.fetch_ms, 2), "total": _ms(started)}
    return result


def _speaks_proactively(decision: Decision, record: PatientRecord) -> bool:
    """A "when-met" service speaks only when the criteria are met and the prompt is still
    useful: not when an order in the presentation's ``silenceWhenOrdered`` value set is
    active, nor when a criterion in its ``silenceWhenMet`` is met (already in use)."""
    words = decision.policy.presentation
    if decision.outcome is not Outcome.MEETS:
        return False
    ordered = words.get("silenceWhenOrdered")
    if ordered and record.orders_in(ordered["valueSet"]):
        return False
    silencers = words.get("silenceWhenMet", [])
    return not any(decision.criteria[c].result is Tri.MET for c in silencers)


def _companion_note(
    engine: Engine, service: ServiceDef, record: PatientRecord, today: date
) -> str | None:
    """The note of the first of the policy's companions (in the order its file lists them)
    whose criteria the patient meets and whose technology they are not already using.
    Companions not loaded are skipped."""
    for companion_id in engine.policies[service.policy].companions:
        companion = engine.policies.get(companion_id)
        if companion is None:
            continue
        if _speaks_proactively(evaluate(companion, record, today), record):
            note: str | None = companion.info.presentation.get("companionNote")
            return note
    return None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
