"""Thin HTTP routes: parse, call one function, answer JSON."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, request

from service.bodies import read_body
from service.discovery import discovery_document
from service.errors import BadRequest, ServiceBusy, UnknownService, UnsupportedMediaType
from service.evaluation import Runtime, refuse_if_fhir_not_answering, run_hook
from service.hookrequest import HookRequest, parse_hook_request
from service.state import app_state
from service.tenants import FhirAccess

bp = Blueprint("cds", __name__)
log = logging.getLogger("iport_cds.request")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


JSON_TYPES = ("application/json", "application/fhir+json")


def _json_body(in_hook_slot: bool = False) -> Any:
    """The JSON body; ``in_hook_slot``: read while holding a hook slot (ServiceBusy when there
    is none), so that slow uploads hold at most HOOKS_IN_FLIGHT_MAX threads and the probes'
    stay free. The slot is given back once the bytes are in: the call takes one again for
    its evaluation, after the FHIR server's circuit breaker is asked."""
    if request.mimetype not in JSON_TYPES:
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    deadline_s = float(current_app.config["BODY_READ_SECONDS"])
    if in_hook_slot:
        admission = app_state().admission
        ticket = admission.admit(None)
        if ticket is None:
            raise ServiceBusy("the service is at capacity (this worker); retry")
        try:
            data = read_body(deadline_s)
        finally:
            admission.release(ticket)
    else:
        data = read_body(deadline_s)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the request body is not valid JSON") from exc


def _runtime() -> Runtime:
    return app_state().runtime


def _app_url() -> str | None:
    """The launch URL of the SMART assessment app, when one is registered (review_app)."""
    path = app_state().smart_launch_path
    if not path:
        return None
    base = current_app.config.get("EXTERNAL_BASE_URL") or request.host_url
    return f"{str(base).rstrip('/')}{path}"


@bp.get("/cds-services")
def discovery() -> Response:
    runtime = _runtime()
    return json_response(discovery_document(runtime.services, runtime.templates))


@bp.post("/cds-services/<service_id>")
def hook(service_id: str) -> Response:
    service = _runtime().services.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id '{service_id[:64]}'")
    req = parse_hook_request(_json_body(in_hook_slot=True), service.hook)
    g.hook_request = req  # for the access audit, whatever the answer
    access = _fhir_access()
    refuse_if_fhir_not_answering(_runtime(), req, access)
    _admit(req, access)
    result = run_hook(
        _runtime(),
        service,
        req,
        now=current_app.config["CLOCK"](),
        new_uuid=current_app.config["UUID_FACTORY"],
        access=access,
        request_id=g.request_id,
        app_url=_app_url(),
    )
    g.hook_outcome = result.outcome or "no-decision"
    for listener in app_state().listeners:
        listener(service_id, req, result)  # e.g. the audit trail; must not block or raise
    log.info(
        "hook answered",
        extra={
            "service": service_id,
            "hookInstance": req.hook_instance,
            "outcome": result.outcome,
            "pathway": result.pathway,
            "cards": len(result.body["cards"]),
            "timings_ms": result.timings_ms,
            "prefetched": result.gathered.prefetched if result.gathered else None,
            "fetched": result.gathered.fetched if result.gathered else None,
            "fhir_requests": result.gathered.fhir_requests if result.gathered else 0,
        },
    )
    return json_response(result.body)


def _fhir_access() -> FhirAccess:
    """Where this call's access token may go: the authenticated client's tenant's servers
    (``service.auth``), or with authentication off the deployment's allowlist."""
    access: FhirAccess | None = g.get("fhir_access")
    return access or FhirAccess.deployment(_runtime().server_policy)


def _admit(req: HookRequest, access: FhirAccess) -> None:
    """Take a hook slot for this call (released when it is answered), or ServiceBusy."""
    ticket = app_state().admission.admit(req.fhir_server, access.key)
    if ticket is None:
        raise ServiceBusy("the service is at capacity (this worker, or this FHIR server); retry")
    g.hook_ticket = ticket


@bp.teardown_request
def release_hook_slot(_exc: BaseException | None) -> None:
    """Teardown: give back the slot whatever happened to the call."""
    ticket = g.pop("hook_ticket", None)
    if ticket is not None:
        app_state().admission.release(ticket)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    if service_id not in _runtime().services:
        raise UnknownService(f"no CDS service with id '{service_id[:64]}'")
    body = _json_body()
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list):
        raise BadRequest("feedback must be an object with a 'feedback' list")
    handler = app_state().feedback_handler
    if handler is not None:
        handler(service_id, body)  # raises BadRequest naming the bad item
    return Response(status=200)  # CDS Hooks: 200, nothing to say
