"""Services and triggers are declared in the policy file; the service publishes what is loaded."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from policy import PolicyError, load_policy, parse_policy
from policy.loading import policy_document
from service import create_app
from service.discovery import enabled_services
from tests.builders import iport_device_request, patient
from tests.hooks import hook_request

IPORT_DOC: dict[str, Any] = policy_document("iport-advance")
PUMP_DOC: dict[str, Any] = policy_document("nice-insulin-pump")


def with_services(doc: dict[str, Any], services: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["services"] = services
    return out


ORDER_SIGN = {
    "id": "x-order-sign",
    "hook": "order-sign",
    "title": "T",
    "description": "D",
    "trigger": {"draftOrderValueSet": "iport-device"},
}


def test_each_shipped_policy_declares_its_services() -> None:
    iport = load_policy("iport-advance")
    assert [
        (s.id, s.hook, s.trigger_value_set, s.selected_only, s.speaks) for s in iport.services
    ] == [
        ("iport-advance-order-select", "order-select", "iport-device", True, "always"),
        ("iport-advance-order-sign", "order-sign", "iport-device", False, "always"),
        ("iport-advance-patient-view", "patient-view", None, False, "when-met"),
    ]
    assert iport.companions == ("nice-hybrid-closed-loop", "nice-insulin-pump")
    assert "iport-device" in iport.value_sets  # the trigger's value set must be loaded
    pump = load_policy("nice-insulin-pump")
    assert [(s.id, s.speaks) for s in pump.services] == [
        ("nice-insulin-pump-patient-view", "when-met")
    ]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({**ORDER_SIGN, "triger": {}}, "services['x-order-sign']: unknown field(s) ['triger']"),
        ({**ORDER_SIGN, "hook": "order-dispatch"}, "hook 'order-dispatch' is not one of"),
        ({**ORDER_SIGN, "trigger": None}, "an order hook needs a trigger"),
        (
            {**ORDER_SIGN, "trigger": {"draftOrderValueSet": "iport-device", "selected": True}},
            "services['x-order-sign'].trigger: unknown field(s) ['selected']",
        ),
        (
            {**ORDER_SIGN, "hook": "patient-view"},
            "services['x-order-sign']: a patient-view service has no trigger",
        ),
        ({**ORDER_SIGN, "speaks": "sometimes"}, "speaks 'sometimes' is not one of"),
        ({**ORDER_SIGN, "title": ""}, "'title' must be a non-empty string"),
    ],
)
def test_a_malformed_service_is_refused_naming_the_field(
    service: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(with_services(PUMP_DOC, [service]))
    assert message in str(exc.value)


def test_service_ids_are_unique_across_policies() -> None:
    clash = with_services(PUMP_DOC, [{**ORDER_SIGN, "id": "iport-advance-order-sign"}])
    with pytest.raises(PolicyError, match="declared by both"):
        enabled_services([parse_policy(IPORT_DOC), parse_policy(clash)])


@pytest.fixture
def custom_client(tmp_path: Path) -> Iterator[FlaskClient]:
    """A deployment whose only policy is a copy of the pump policy with an order-sign service
    triggered by i-Port drafts: nothing under service/ knows of it."""
    doc = with_services(
        PUMP_DOC,
        [{**ORDER_SIGN, "id": "pump-on-iport-sign", "speaks": "always"}],
    )
    path = tmp_path / "pump-at-signing.json"
    path.write_text(json.dumps(doc))
    app = create_app({"REQUIRE_AUTH": False, "POLICIES": [str(path)]})
    app.testing = True
    with app.test_client() as c:
        yield c


def test_discovery_and_routing_come_from_the_loaded_policy_files(
    custom_client: FlaskClient,
) -> None:
    services = custom_client.get("/cds-services").json["services"]
    assert [(s["id"], s["hook"]) for s in services] == [("pump-on-iport-sign", "order-sign")]
    assert custom_client.post("/cds-services/iport-advance-order-sign", json={}).status_code == 404


def test_usage_requirements_name_every_resource_type_the_prefetch_reads(
    custom_client: FlaskClient,
) -> None:
    (service,) = custom_client.get("/cds-services").json["services"]
    for template in service["prefetch"].values():
        assert template.split("?")[0].split("/")[0] in service["usageRequirements"]


def test_an_order_hook_answers_only_for_drafts_in_its_trigger_value_set(
    custom_client: FlaskClient,
) -> None:
    def sign(draft: dict[str, Any]) -> Any:
        body = hook_request("order-sign", resources=[patient()], drafts=[draft])
        resp = custom_client.post("/cds-services/pump-on-iport-sign", json=body)
        assert resp.status_code == 200, resp.json
        return resp.json["cards"]

    assert sign(iport_device_request(text="Insulin pen needles 4mm")) == []
    (card,) = sign(iport_device_request())
    assert "NICE" in card["summary"]


@pytest.mark.parametrize(
    ("titles", "message"),
    [
        ({"age-13-or-over": "Under 13"}, "presentation.notMetTitles names undefined criterion"),
        ({"age-12-or-over": 12}, "presentation.notMetTitles"),
    ],
)
def test_a_not_met_title_must_name_a_criterion_of_the_policy(
    titles: dict[str, Any], message: str
) -> None:
    doc = {**PUMP_DOC, "presentation": {**PUMP_DOC["presentation"], "notMetTitles": titles}}
    with pytest.raises(PolicyError) as exc:
        parse_policy(doc)
    assert message in str(exc.value)
