"""Hook calls and feedback as an EHR sends them, for the storage and dashboard tests."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.builders import (
    T1DM,
    condition,
    hba1c,
    insulin,
    iport_device_request,
    patient,
)
from tests.hooks import SERVICE, hook_request

ORDER_SELECT = SERVICE["order-select"]


ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def registered(pid: str, practice: str | None) -> dict[str, Any]:
    """The Patient, registered at ``practice`` (an ODS code) when one is given."""
    p = patient(pid=pid)
    if practice:
        p["generalPractitioner"] = [
            {"type": "Organization", "identifier": {"system": ODS, "value": practice}}
        ]
    return p


def resources(kind: str, pid: str, practice: str | None = None) -> list[dict[str, Any]]:
    """A record that meets the criteria, lacks one piece of information, or does not meet."""
    if kind == "does-not-meet":
        return [registered(pid, practice), hba1c(40, pid=pid)]
    base = [
        registered(pid, practice),
        condition(T1DM, pid=pid),
        hba1c(75, pid=pid),
        insulin(text="with meals", pid=pid),
        insulin(text="at night", pid=pid),
    ]
    if kind == "meets":
        base.append(condition(text="Needle phobia", pid=pid))
    return base


def order_select(
    kind: str, pid: str = "pat-1", hook_instance: str = "h-1", practice: str | None = None
) -> dict[str, Any]:
    draft = iport_device_request(pid=pid)
    draft["id"] = "draft-iport"
    return hook_request(
        "order-select",
        resources=resources(kind, pid, practice),
        drafts=[draft],
        patient_id=pid,
        hook_instance=hook_instance,
    )


def post_hook(
    client: FlaskClient,
    kind: str,
    pid: str = "pat-1",
    hook_instance: str = "h-1",
    practice: str | None = None,
) -> dict[str, Any]:
    """The card the service answered with."""
    resp = client.post(
        f"/cds-services/{ORDER_SELECT}", json=order_select(kind, pid, hook_instance, practice)
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (card,) = resp.json["cards"]
    return card  # type: ignore[no-any-return]


def overridden(
    card: dict[str, Any],
    reason: int = 0,
    at: str = "2026-11-21T10:31:00Z",
    comment: str | None = None,
) -> dict[str, Any]:
    override: dict[str, Any] = {"reason": card["overrideReasons"][reason]}
    if comment is not None:
        override["userComment"] = comment
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": override,
        "outcomeTimestamp": at,
    }


def accepted(card: dict[str, Any], at: str = "2026-11-21T10:31:00Z") -> dict[str, Any]:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": at,
    }


def post_feedback(client: FlaskClient, *items: dict[str, Any], service: str = ORDER_SELECT) -> Any:
    return client.post(f"/cds-services/{service}/feedback", json={"feedback": list(items)})
