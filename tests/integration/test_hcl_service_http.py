"""The third policy over HTTP: NICE TA943 hybrid closed loop, enabled by default, served by the
real service (gunicorn) with the demo patients on a real FHIR server (sekmet); with the
client's prefetch and with none (the service fetches Device and DeviceUseStatement itself)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests

from demo import DemoPatient, bundle_resources, list_patients
from tests.builders import iport_device_request
from tests.fhir_server import FhirTestServer
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.integration

HCL = [p for p in list_patients() if p.name.startswith("t1-hcl-")]
HCL_NOTE = "NICE TA943 (hybrid closed loop) is also met"


@pytest.fixture(scope="module")
def loaded_fhir(fhir_server: FhirTestServer) -> FhirTestServer:
    for p in HCL:
        fhir_server.load(p.bundle(date.today()))
    return fhir_server


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    with ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true"}) as svc:
        yield svc


def hcl_view(service: ServiceProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"{service.url}/cds-services/{SERVICE['hcl-patient-view']}"
    resp = requests.post(url, json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    cards: list[dict[str, Any]] = resp.json()["cards"]
    return cards


def test_the_hcl_service_is_discovered_with_device_prefetch(service: ServiceProcess) -> None:
    services = requests.get(f"{service.url}/cds-services", timeout=5).json()["services"]
    (hcl,) = [s for s in services if s["id"] == SERVICE["hcl-patient-view"]]
    assert hcl["hook"] == "patient-view"
    assert hcl["prefetch"]["deviceUses"].startswith("DeviceUseStatement?subject=Patient/")
    assert hcl["prefetch"]["assignedDevices"].startswith("Device?patient=Patient/")


@pytest.mark.parametrize("demo", HCL, ids=lambda p: p.name)
def test_hcl_patient_view_with_prefetch(service: ServiceProcess, demo: DemoPatient) -> None:
    resources = bundle_resources(demo.bundle(date.today()))
    body = hook_request("patient-view", resources=resources, patient_id=demo.patient_id)
    cards = hcl_view(service, body)
    assert bool(cards) is demo.expected["nice-hybrid-closed-loop"].card
    for card in cards:
        assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"
        assert "TA943" in card["summary"]


@pytest.mark.parametrize("demo", HCL, ids=lambda p: p.name)
def test_hcl_patient_view_fetching_from_the_fhir_server(
    service: ServiceProcess, loaded_fhir: FhirTestServer, demo: DemoPatient
) -> None:
    body = hook_request(
        "patient-view", patient_id=demo.patient_id, fhir_server=loaded_fhir.base_url
    )
    cards = hcl_view(service, body)
    assert bool(cards) is demo.expected["nice-hybrid-closed-loop"].card


def test_the_iport_card_names_hcl_first_for_someone_meeting_ta943_and_not_on_it(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    (demo,) = [
        p for p in HCL if p.expected["nice-hybrid-closed-loop"].card and p.name.endswith("pregnant")
    ]
    draft = iport_device_request(pid=demo.patient_id)
    body = hook_request(
        "order-sign", drafts=[draft], patient_id=demo.patient_id, fhir_server=loaded_fhir.base_url
    )
    resp = requests.post(
        f"{service.url}/cds-services/{SERVICE['order-sign']}", json=body, timeout=10
    )
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    assert card["detail"].startswith(f"> {HCL_NOTE}")


def test_someone_already_on_hcl_is_not_told_to_consider_it(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    (demo,) = [p for p in HCL if p.name.endswith("on-omnipod-5")]
    draft = iport_device_request(pid=demo.patient_id)
    body = hook_request(
        "order-sign", drafts=[draft], patient_id=demo.patient_id, fhir_server=loaded_fhir.base_url
    )
    resp = requests.post(
        f"{service.url}/cds-services/{SERVICE['order-sign']}", json=body, timeout=10
    )
    (card,) = resp.json()["cards"]
    assert HCL_NOTE not in card["detail"]
