"""The audit trail on the web app: one record per evaluation and one per call to a hook.

``open_app_store`` opens the app's store; ``init_app`` registers the evaluation listener
(``AuditListener``: the patient id only as an HMAC-SHA256 under AUDIT_HASH_KEY, never a token)
and the ``AccessAuditor`` after every hook call, answered or refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from flask import (
    Flask,
    g,
    has_request_context,
    request,
)
from werkzeug.wrappers import Response as BaseResponse

import places
import store
from service import auth
from service.evaluation import HookResult
from service.hookrequest import HookRequest
from service.state import AppState, app_state
from store import AccessRecord, RefusalRecord

log = logging.getLogger("iport_cds.analytics")
R = TypeVar("R", bound=BaseResponse)


def open_app_store(app: Flask) -> store.Store:
    """The app's store (DATABASE_URL, or SQLite in the instance folder), retention applied."""
    instance = Path(app.instance_path)
    url = app.config.get("DATABASE_URL") or store.sqlite_url(instance / "iport-cds.sqlite3")
    opened = store.open_store(str(url))
    retention = app.config.get("AUDIT_RETENTION_DAYS")
    opened.set_retention(int(retention) if retention else None, app.config["CLOCK"])
    opened.apply_retention()
    log.info("audit trail on %s", opened.backend)
    return opened


def hash_key_of(app: Flask) -> bytes:
    """AUDIT_HASH_KEY, or a key kept in the instance folder."""
    configured = app.config.get("AUDIT_HASH_KEY")  # str(): an all-digit env value is parsed
    return store.hash_key(str(configured) if configured else None, Path(app.instance_path))


def init_app(app: Flask, state: AppState, key: bytes) -> None:
    """Register the evaluation listener and the access auditor on the app's store."""
    clock: Callable[[], datetime] = app.config["CLOCK"]
    app.after_request(AccessAuditor(state.store, key, clock))
    state.listeners.append(AuditListener(state.store, key, clock, state.places))


@dataclass
class AuditListener:
    """Called after each evaluation: builds the record and queues it (no database work here)."""

    store: store.AuditStore
    key: bytes
    clock: Callable[[], datetime]
    places: places.PlaceDirectory = field(default_factory=places.PlaceDirectory)

    def __call__(self, service_id: str, req: HookRequest, result: HookResult) -> None:
        try:
            record = audit_record(service_id, req, result, self.key, self.clock())
            practice = places.practice_code(
                places.patient_resource(result.gathered.resources if result.gathered else ())
            )
            place = self.places.place_of(practice, _tenant())
            self.store.record(replace(record, practice_code=practice, place=place))
        except Exception as exc:  # the hook's answer must not depend on the audit trail
            log.error("could not queue an audit record: %s", type(exc).__name__)


@dataclass
class AccessAuditor:
    """After every call to a hook, answered or refused: one access audit record, queued.

    Who (issuer, subject and tenant from the validated token; the EHR user from the hook
    context), about whom (the patient id's HMAC), what happened (status, and the policy outcome
    or why the call was refused) and the request id that ties it to the log lines.
    """

    store: store.AuditStore
    key: bytes
    clock: Callable[[], datetime]

    def __call__(self, response: R) -> R:
        if request.endpoint != "cds.hook":
            return response
        status = response.status_code
        try:
            refused = status in REFUSED_UNKNOWN and g.get("principal") is None
            record = self.refusal_record(status) if refused else self.access_record(status)
            self.store.record_access(record)
        except Exception as exc:  # the answer must not depend on the audit trail
            log.error("could not queue an access record: %s", type(exc).__name__)
        return response

    def refusal_record(self, status: int) -> RefusalRecord:
        """A call refused before its caller was known: counted per client per minute."""
        address = request.remote_addr or "unknown"
        claimed = str(g.get("claimed_issuer") or "")
        tenants = app_state().tenants
        trusted = tenants is not None and any(t.issuer == claimed for t in tenants.tenants)
        service_id = (request.view_args or {}).get("service_id")
        return RefusalRecord(
            recorded_at=self.clock(),
            service_id=service_id if service_id in app_state().runtime.services else "unknown",
            status=status,
            outcome=_access_outcome(status),
            address_hash=store.patient_hash(self.key, f"client-address:{address}"),
            issuer=claimed if claimed and trusted else "",
        )

    def access_record(self, status: int) -> AccessRecord:
        principal: auth.Principal | None = g.get("principal")
        req: HookRequest | None = g.get("hook_request")
        service_id = (request.view_args or {}).get("service_id")
        runtime = app_state().runtime
        return AccessRecord(
            recorded_at=self.clock(),
            service_id=service_id if service_id in runtime.services else "unknown",
            status=status,
            outcome=_access_outcome(status),
            issuer=principal.iss if principal else None,
            subject=principal.sub if principal else None,
            tenant=principal.tenant if principal else None,
            ehr_user=req.user_id if req else None,
            patient_hash=store.patient_hash(self.key, req.patient_id) if req else None,
            request_id=str(g.get("request_id") or ""),
        )


# Refused before the caller was known: no valid token (401), or the client throttled (429).
REFUSED_UNKNOWN = frozenset({401, 429})


def _access_outcome(status: int) -> str:
    """The policy outcome of an answered call, or the class of the refusal (never free text
    from the caller)."""
    if status == 200:
        return str(g.get("hook_outcome") or "no-decision")
    if status == 401:
        return f"unauthorised: {g.get('auth_refused') or 'no token'}"[:64]
    if status == 412:
        return f"precondition-failed: {g.get('ops_precondition_reason') or 'other'}"
    return {400: "bad-request", 404: "not-found", 413: "too-large", 415: "unsupported-media",
            429: "throttled", 503: "overloaded"}.get(status, f"error {status}")  # fmt: skip


def _tenant() -> str | None:
    """The CDS client's tenant, as its validated token says (set by authentication)."""
    principal = g.get("principal") if has_request_context() else None
    tenant = getattr(principal, "tenant", None)
    return tenant if isinstance(tenant, str) else None


def _suggestion_criterion(suggestion: Mapping[str, Any]) -> str:
    """The criterion a suggestion's confirmation Observation records ('referral' for a draft
    referral): the export names accepted suggestions by it."""
    for action in suggestion.get("actions", ()):
        resource = action.get("resource") or {}
        if resource.get("resourceType") == "ServiceRequest":
            return "referral"
        for coding in (resource.get("code") or {}).get("coding", ()):
            if coding.get("code"):
                return str(coding["code"])
    return "unknown"


def audit_record(
    service_id: str, req: HookRequest, result: HookResult, key: bytes, now: datetime
) -> store.AuditRecord:
    decision = result.decision
    criteria: tuple[store.CriterionRecord, ...] = ()
    if decision is not None:
        shown = set(decision.shown_criteria)
        criteria = tuple(
            store.CriterionRecord(cid, r.result.value, cid in shown)
            for cid, r in decision.criteria.items()
        )
    issued = set(result.card_uuids)
    cards = tuple(
        store.CardRecord(
            uuid=str(card["uuid"]),
            suggestion_uuids=tuple(
                str(s["uuid"]) for s in card.get("suggestions", ()) if s.get("uuid")
            ),
            override_codes=tuple(
                (str(r.get("system", "")), str(r.get("code", "")))
                for r in card.get("overrideReasons", ())
            ),
            suggestion_criteria=tuple(
                (str(s["uuid"]), _suggestion_criterion(s))
                for s in card.get("suggestions", ())
                if s.get("uuid")
            ),
        )
        for card in result.body.get("cards", ())
        if card.get("uuid") in issued
    )
    gathered = result.gathered
    return store.AuditRecord(
        recorded_at=now,
        service_id=service_id,
        hook=req.hook,
        hook_instance=req.hook_instance,
        patient_hash=store.patient_hash(key, req.patient_id),
        outcome=result.outcome,
        pathway=result.pathway,
        policy_id=decision.policy.id if decision else None,
        policy_version=decision.policy.version if decision else None,
        cards=cards,
        criteria=criteria,
        prefetch_keys=tuple(gathered.prefetched) if gathered else (),
        fetched_keys=tuple(gathered.fetched) if gathered else (),
        fhir_requests=gathered.fhir_requests if gathered else 0,
        fetch_ms=round(gathered.fetch_ms, 2) if gathered else None,
        total_ms=float(result.timings_ms.get("total", 0.0)),
    )
