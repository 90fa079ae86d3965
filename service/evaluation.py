"""One hook call, end to end: request → data → facts → decision → cards.

``Runtime`` holds what is built once at start-up (value sets, policy, HTTP pool); ``run_hook``
is the whole flow for one request and knows nothing of Flask.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from cds_cards import CardContext, eligibility_card
from facts import Order, order_in
from facts.london import london_day
from fhirdata import (
    DataUnavailable,
    FetchSettings,
    FhirClient,
    FhirServerNotAllowed,
    FhirServerPolicy,
    Gathered,
    gather,
)
from fhirdata.breaker import FhirNotAnswering, OriginBreakers
from fhirdata.transport import OriginExecutors, TenantSessions
from policy import Decision, Policy
from policy.decide import (
    Core,
    Evaluations,
    Turn,
    decide,
    patient_view_turn,
    read_record,
    speaks_proactively,
)
from service.discovery import ServiceDef
from service.errors import PreconditionFailed
from service.hookrequest import HookRequest
from service.tenants import FhirAccess
from valuesets import ValueSetLibrary


@dataclass
class Runtime:
    """What the service builds once at start-up: the core (value sets, policies) and the
    HTTP side (services, prefetch templates, the FHIR allowlist, pool and bulkheads)."""

    core: Core
    services: dict[str, ServiceDef]  # the enabled ones, by service id
    templates: dict[str, str]
    server_policy: FhirServerPolicy
    fetch_settings: FetchSettings
    session: requests.Session  # for what is not a FHIR read (key sets, SMART discovery)
    # The bulkheads, each per tenant × FHIR origin: connection pools, bounded executors,
    # circuit breakers
    fhir_sessions: TenantSessions
    executors: OriginExecutors
    breakers: OriginBreakers
    one_card_per_patient: bool = True  # PATIENT_VIEW_ONE_CARD (policy.decide.patient_view_turn)

    @property
    def vsl(self) -> ValueSetLibrary:
        return self.core.vsl

    @property
    def policies(self) -> dict[str, Policy]:
        return self.core.policies


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
    runtime: Runtime, req: HookRequest, access: FhirAccess, request_id: str | None
) -> Callable[[], FhirClient] | None:
    if not req.fhir_server:
        return None
    fhir_server = req.fhir_server

    def make() -> FhirClient:
        try:
            base = access.check(fhir_server)
            # An origin that has stopped answering is not waited for: 412 at once.
            breaker_pass = runtime.breakers.for_url(base, access.key).admit()
        except FhirServerNotAllowed as exc:
            raise DataUnavailable(f"{exc}; no request was sent to it") from exc
        except FhirNotAnswering as exc:
            raise DataUnavailable(str(exc), exc.retry_after_s) from exc
        return FhirClient(
            base,
            session=runtime.fhir_sessions.for_tenant(access.key),
            executor=runtime.executors.for_url(base, access.key),
            settings=runtime.fetch_settings,
            access_token=req.access_token,
            request_id=request_id,
            breaker_pass=breaker_pass,
            foreign_bases=access.foreign_bases(base),
        )

    return make


def refuse_if_fhir_not_answering(runtime: Runtime, req: HookRequest, access: FhirAccess) -> None:
    """PreconditionFailed at once, before the hook takes a slot, when it will read from a FHIR
    server whose circuit breaker (this tenant's) is open: refusing it then holds no capacity
    at all. A hook whose prefetch has every key may need no read, so it goes on (``gather``
    asks the breaker again if it does read)."""
    if not req.fhir_server or (
        req.prefetch is not None and all(k in req.prefetch for k in runtime.templates)
    ):
        return
    wait_s = runtime.breakers.for_url(req.fhir_server, access.key).refusing()
    if wait_s is not None:
        exc = FhirNotAnswering(wait_s)
        raise _precondition_failed(DataUnavailable(str(exc), wait_s)) from exc


def _precondition_failed(exc: DataUnavailable) -> PreconditionFailed:
    failed = PreconditionFailed(str(exc))
    failed.retry_after_s = exc.retry_after_s
    return failed


def run_hook(
    runtime: Runtime,
    service: ServiceDef,
    req: HookRequest,
    *,
    now: datetime,
    new_uuid: Callable[[], str],
    access: FhirAccess | None = None,
    request_id: str | None = None,
    app_url: str | None = None,
) -> HookResult:
    """Evaluate the policy for this hook call and build its cards.

    ``access`` says which FHIR servers may be read (the authenticated client's tenant's);
    without one, the deployment's allowlist applies. ``app_url`` is the SMART assessment
    app's launch URL, linked from the card.

    Raises PreconditionFailed (412) when required data cannot be obtained.
    """
    started = time.perf_counter()
    if service.trigger_value_set and not triggering_drafts(req, service, runtime.vsl):
        return HookResult(body={"cards": []}, timings_ms={"total": _ms(started)})
    try:
        gathered = gather(
            req.prefetch,
            runtime.templates,
            req.patient_id,
            _client_factory(
                runtime, req, access or FhirAccess.deployment(runtime.server_policy), request_id
            ),
            fhir_server=req.fhir_server,
        )
    except DataUnavailable as exc:
        raise _precondition_failed(exc) from exc
    record = read_record(
        runtime.core, gathered.resources, req.patient_id, gathered.warnings, gathered.not_theirs
    )
    policy = runtime.policies[service.policy]
    companions = [runtime.policies[c] for c in policy.companions if c in runtime.policies]
    evaluations = Evaluations(record, london_day(now))  # each policy once per request
    decided = decide(record, policy, london_day(now), companions, evaluations)
    decision = decided.decision
    result = HookResult(
        body={"cards": []},
        outcome=decision.outcome.value,
        pathway=decision.pathway,
        decision=decision,
        gathered=gathered,
    )
    turn = _turn(runtime, service, decision, evaluations)
    if service.speaks == "always" or turn.speaks:
        ctx = CardContext(
            patient_id=req.patient_id,
            user_ref=req.user_id,
            now=now,
            new_uuid=new_uuid,
            note=decided.companion_note,
            app_url=app_url,
            lossless=tuple(gathered.lossless),
            also=tuple(
                str(p.info.presentation.get("shortName") or p.info.title) for p in turn.also
            ),
        )
        card = eligibility_card(decision, ctx, patient_view=service.hook == "patient-view")
        result.body = {"cards": [card]}
        result.card_uuids = [card["uuid"]]
    result.timings_ms = {"fhir": round(gathered.fetch_ms, 2), "total": _ms(started)}
    return result


def _turn(
    runtime: Runtime, service: ServiceDef, decision: Decision, evaluations: Evaluations
) -> Turn:
    """Whether a card that speaks only when met (or one judgement away) speaks: on its own, or,
    for patient-view with one card per patient, when no other technology ranks first."""
    if service.speaks == "always":
        return Turn(True)
    if service.hook != "patient-view" or not runtime.one_card_per_patient:
        return Turn(speaks_proactively(decision, evaluations.record, service.speaks))
    rivals = [
        (runtime.policies[s.policy], s.speaks)
        for s in runtime.services.values()
        if s.hook == "patient-view" and s.speaks != "always" and s.policy != service.policy
    ]
    policy = runtime.policies[service.policy]
    return patient_view_turn(
        policy,
        decision,
        evaluations.record,
        evaluations.today,
        rivals,
        service.speaks,
        evaluations,
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
