"""Technology in use over HTTP: the real service (gunicorn), the real FHIR server (sekmet), the
client's prefetch and the service's own fetch. A person already using, or holding (paused), a
pump or a hybrid closed loop gets no prompt to start one, and the i-Port card names it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from tests.builders import T1DM, condition, hba1c, insulin, iport_device_request, patient
from tests.fhir_server import FhirTestServer
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess
from tests.technology_builders import DEXCOM_G7, device, device_use, supply

pytestmark = pytest.mark.integration

OMNIPOD, HELD_HCL, MINIMED, PLANNED_CGM = "it-omnipod", "it-held-hcl", "it-minimed", "it-planned"


def days_ago(n: int) -> str:
    return (date.today() - timedelta(days=n)).isoformat()


def meets_pump_criteria(pid: str) -> list[dict[str, Any]]:
    """A type 1 adult with HbA1c 78 on basal-bolus MDI and a needle phobia: meets the NICE
    pump criteria and the i-Port criteria, and TA943 once a technology is in use."""
    return [
        patient("1988-02-03", pid=pid),
        condition(T1DM, onset=days_ago(900), pid=pid),
        hba1c(78, on=days_ago(40), pid=pid),
        {**insulin(text="with meals", pid=pid), "authoredOn": days_ago(30)},
        {**insulin(text="at night", pid=pid), "authoredOn": days_ago(30)},
        condition(text="Needle phobia", onset=days_ago(60), pid=pid),
    ]


def people() -> dict[str, list[dict[str, Any]]]:
    return {
        # Omnipod 5 pods prescribed by their dm+d name only: a pump and HCL in use
        OMNIPOD: [
            *meets_pump_criteria(OMNIPOD),
            supply(text="Omnipod 5 Pods (Insulet Ltd) 5 pod", on=days_ago(20), pid=OMNIPOD),
        ],
        # Omnipod 5 pods on hold (a skin reaction): held, not absent
        HELD_HCL: [
            *meets_pump_criteria(HELD_HCL),
            supply(text="Omnipod 5 Pods", status="on-hold", on=days_ago(25), pid=HELD_HCL),
        ],
        # MiniMed 780G recorded as a Device typed "insulin pump", with its statement of use
        MINIMED: [
            *meets_pump_criteria(MINIMED),
            device(type_text="Insulin pump", name="MiniMed 780G", rid="it-mm780", pid=MINIMED),
            device_use(device_ref="Device/it-mm780", start=days_ago(400), pid=MINIMED),
        ],
        # real-time CGM planned for next month, and cancelled / entered-in-error sensors
        PLANNED_CGM: [
            *meets_pump_criteria(PLANNED_CGM),
            device_use(
                display="Dexcom G7", status="intended", start=days_ago(-30), pid=PLANNED_CGM
            ),
            supply(DEXCOM_G7, status="cancelled", on=days_ago(10), pid=PLANNED_CGM),
            supply(DEXCOM_G7, status="entered-in-error", on=days_ago(10), pid=PLANNED_CGM),
        ],
    }


def put_transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.fixture(scope="module")
def loaded_fhir(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.load(put_transaction([r for rs in people().values() for r in rs]))
    return fhir_server


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    with ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true"}) as svc:
        yield svc


def cards(service: ServiceProcess, key: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = requests.post(f"{service.url}/cds-services/{SERVICE[key]}", json=body, timeout=15)
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["cards"]
    return found


def by_fetch(loaded_fhir: FhirTestServer, pid: str, hook: str = "patient-view") -> dict[str, Any]:
    drafts = [iport_device_request(pid=pid)] if hook == "order-sign" else None
    return hook_request(hook, patient_id=pid, fhir_server=loaded_fhir.base_url, drafts=drafts)


def by_prefetch(pid: str) -> dict[str, Any]:
    return hook_request("patient-view", resources=people()[pid], patient_id=pid)


@pytest.mark.parametrize("pid", [OMNIPOD, HELD_HCL])
def test_fetched_omnipod_5_in_use_or_held_gets_no_pump_or_hcl_prompt(
    service: ServiceProcess, loaded_fhir: FhirTestServer, pid: str
) -> None:
    assert cards(service, "pump-patient-view", by_fetch(loaded_fhir, pid)) == []
    assert cards(service, "hcl-patient-view", by_fetch(loaded_fhir, pid)) == []


@pytest.mark.parametrize(
    ("pid", "line"),
    [
        (OMNIPOD, "> Already on an insulin pump: Omnipod 5 Pods (Insulet Ltd) 5 pod (hybrid "
         "closed loop, so insulin pump (CSII)) in use since "),
        (HELD_HCL, "> Already on an insulin pump: Omnipod 5 Pods (hybrid closed loop, so insulin "
         "pump (CSII)) paused since "),
    ],
)  # fmt: skip
def test_the_fetched_iport_card_names_the_pump_in_use_or_paused(
    service: ServiceProcess, loaded_fhir: FhirTestServer, pid: str, line: str
) -> None:
    (card,) = cards(service, "order-sign", by_fetch(loaded_fhir, pid, "order-sign"))
    assert card["detail"].startswith(line)
    assert "meets the NICE criteria for a hybrid closed loop" not in card["detail"]


def test_a_prefetched_minimed_780g_device_is_hcl_in_use_no_prompt(service: ServiceProcess) -> None:
    assert cards(service, "hcl-patient-view", by_prefetch(MINIMED)) == []
    assert cards(service, "pump-patient-view", by_prefetch(MINIMED)) == []
    # the same person without the device is prompted: the device is what silences it
    without = [r for r in people()[MINIMED] if not r["resourceType"].startswith("Device")]
    body = hook_request("patient-view", resources=without, patient_id=MINIMED)
    assert cards(service, "pump-patient-view", body)


def test_prefetched_planned_and_cancelled_cgm_is_not_cgm_in_use(service: ServiceProcess) -> None:
    assert cards(service, "hcl-patient-view", by_prefetch(PLANNED_CGM)) == []
    # the pump prompt still speaks: nothing here is a pump
    (card,) = cards(service, "pump-patient-view", by_prefetch(PLANNED_CGM))
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"
