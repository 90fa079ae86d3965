"""Validate a CDS Hooks 2.0 request body at the boundary, into a small typed object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from service.errors import BadRequest

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# A UUID in practice (CDS Hooks 2.0); it reaches logs and the audit trail, so nothing else.
_HOOK_INSTANCE = re.compile(r"[A-Za-z0-9\-._:]{1,128}")
_USER = re.compile(r"(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    patient_id: str
    user_id: str | None
    fhir_server: str | None
    access_token: str | None
    prefetch: dict[str, Any] | None
    draft_orders: list[dict[str, Any]]  # resources in context.draftOrders
    selections: tuple[str, ...]  # order-select: "Type/id" of the selected drafts

    def __repr__(self) -> str:  # never print the token or the patient id
        return f"HookRequest(hook={self.hook!r}, hookInstance={self.hook_instance!r})"


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{where}{key}' is required and must be a non-empty string")
    return value


def _draft_resources(context: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = context.get("draftOrders")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("'context.draftOrders' is required and must be a FHIR Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("'context.draftOrders.entry' must be a list")
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


def _names_another_patient(draft: dict[str, Any], patient_id: str) -> bool:
    """True when a draft's subject (or patient) is a Patient reference with another id."""
    for key in ("subject", "patient"):
        ref = draft.get(key)
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str) and "Patient/" in target:
            rid = target.rsplit("Patient/", 1)[1].split("/", 1)[0]
            if rid != patient_id:
                return True
    return False


def parse_hook_request(body: Any, expected_hook: str) -> HookRequest:
    """The validated request, or BadRequest naming the first thing wrong with it."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    hook = _require_str(body, "hook", "")
    if hook != expected_hook:
        raise BadRequest(f"this service answers the '{expected_hook}' hook, not '{hook[:40]}'")
    hook_instance = _require_str(body, "hookInstance", "")
    if not _HOOK_INSTANCE.fullmatch(hook_instance):
        raise BadRequest(
            "'hookInstance' must be a UUID (letters, digits, '-', '.', '_', ':'; 128 at most)"
        )
    context = body.get("context")
    if not isinstance(context, dict):
        raise BadRequest("'context' is required and must be an object")
    patient_id = _require_str(context, "patientId", "context.")
    if not _ID.fullmatch(patient_id):
        raise BadRequest("'context.patientId' is not a valid FHIR id")
    user_id = context.get("userId")
    if user_id is not None and not (isinstance(user_id, str) and _USER.fullmatch(user_id)):
        raise BadRequest("'context.userId' must be a reference such as 'Practitioner/123'")

    fhir_server = body.get("fhirServer")
    if fhir_server is not None and not isinstance(fhir_server, str):
        raise BadRequest("'fhirServer' must be a string URL")
    access_token = None
    auth = body.get("fhirAuthorization")
    if auth is not None:
        if not isinstance(auth, dict):
            raise BadRequest("'fhirAuthorization' must be an object")
        if fhir_server is None:
            raise BadRequest("'fhirServer' is required when 'fhirAuthorization' is present")
        access_token = _require_str(auth, "access_token", "fhirAuthorization.")
        if str(auth.get("token_type", "Bearer")).lower() != "bearer":
            raise BadRequest("'fhirAuthorization.token_type' must be 'Bearer'")

    prefetch = body.get("prefetch")
    if prefetch is not None and not isinstance(prefetch, dict):
        raise BadRequest("'prefetch' must be an object keyed by prefetch template name")

    drafts: list[dict[str, Any]] = []
    selections: tuple[str, ...] = ()
    if hook in ("order-select", "order-sign"):
        drafts = _draft_resources(context)
        if any(_names_another_patient(d, patient_id) for d in drafts):
            # The message names no id: both are patient identifiers.
            raise BadRequest("a draft order is for another patient than 'context.patientId'")
    if hook == "order-select":
        raw = context.get("selections")
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise BadRequest("'context.selections' is required and must be a list of 'Type/id'")
        selections = tuple(raw)
    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        patient_id=patient_id,
        user_id=user_id,
        fhir_server=fhir_server,
        access_token=access_token,
        prefetch=prefetch,
        draft_orders=drafts,
        selections=selections,
    )
