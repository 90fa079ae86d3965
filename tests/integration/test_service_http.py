"""End to end over HTTP: a real FHIR server (sekmet), the real service (gunicorn), every hook,
with the client's prefetch and with none (the service fetches from the FHIR server itself)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.builders import (
    LIPO,
    T1DM,
    T2DM,
    condition,
    hba1c,
    insulin,
    iport_device_request,
    patient,
)
from tests.fhir_server import FhirTestServer
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.integration

MEETS_ID, INSUFFICIENT_ID, T2_ID, CHILD_ID = "it-meets", "it-insufficient", "it-type2", "it-child"


def put_transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def records() -> list[dict[str, Any]]:
    p = MEETS_ID
    meets = [
        patient("1988-02-03", pid=p),
        condition(T1DM, pid=p),
        hba1c(78, pid=p),
        insulin(text="with meals", pid=p),
        insulin(text="at night", pid=p),
        condition(text="Needle phobia", pid=p),
    ]
    p = INSUFFICIENT_ID
    insufficient = [
        patient("1975-06-01", pid=p),
        condition(T1DM, pid=p),
        hba1c(8.9, "%", code=("http://loinc.org", "4548-4", "HbA1c"), pid=p),
        insulin(text="BD", pid=p),
    ]
    p = T2_ID
    type2 = [patient("1960-01-01", pid=p), condition(T2DM, pid=p), insulin(text="BD", pid=p)]
    p = CHILD_ID
    child = [patient("2018-05-05", pid=p), condition(T1DM, pid=p), condition(LIPO, pid=p)]
    return [*meets, *insufficient, *type2, *child, iport_device_request(status="active", pid=T2_ID)]


@pytest.fixture(scope="module")
def loaded_fhir(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.load(put_transaction(records()))
    return fhir_server


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    with ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true"}) as svc:
        yield svc


def ehr_prefetch(
    service: ServiceProcess, fhir: FhirTestServer, hook: str, pid: str
) -> dict[str, Any]:
    """Fill the service's prefetch templates from the FHIR server, as an EHR would."""
    services = requests.get(f"{service.url}/cds-services", timeout=5).json()["services"]
    templates = next(s for s in services if s["hook"] == hook)["prefetch"]
    out = {}
    for key, template in templates.items():
        url = f"{fhir.base_url}/{template.replace('{{context.patientId}}', pid)}"
        resp = requests.get(url, timeout=5, headers={"Accept": "application/fhir+json"})
        assert resp.status_code == 200, (key, resp.text)
        out[key] = resp.json()
    return out


def call(service: ServiceProcess, hook: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{service.url}/cds-services/{SERVICE[hook]}", json=body, timeout=10)


def outcome(resp: requests.Response) -> str | None:
    assert resp.status_code == 200, resp.text
    cards = resp.json()["cards"]
    assert len(cards) <= 1
    return cards[0]["extension"]["iport-cds.eligibility"]["outcome"] if cards else None


def draft(pid: str) -> dict[str, Any]:
    d = iport_device_request(pid=pid)
    d["id"] = f"draft-{pid}"
    return d


CASES = [
    ("order-select", MEETS_ID, "meets-criteria"),
    ("order-sign", MEETS_ID, "meets-criteria"),
    ("patient-view", MEETS_ID, "meets-criteria"),
    ("order-sign", INSUFFICIENT_ID, "insufficient-information"),
    ("order-select", T2_ID, "insufficient-information"),
    ("patient-view", INSUFFICIENT_ID, None),  # patient-view is silent unless criteria are met
    ("order-sign", CHILD_ID, "insufficient-information"),
]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize(("hook", "pid", "expected"), CASES)
def test_hooks_end_to_end(
    service: ServiceProcess,
    loaded_fhir: FhirTestServer,
    mode: str,
    hook: str,
    pid: str,
    expected: str | None,
) -> None:
    drafts = [draft(pid)] if hook != "patient-view" else None
    if mode == "prefetch":
        body = hook_request(
            hook,
            prefetch=ehr_prefetch(service, loaded_fhir, hook, pid),
            drafts=drafts,
            patient_id=pid,
        )
    else:
        body = hook_request(
            hook,
            drafts=drafts,
            patient_id=pid,
            fhir_server=loaded_fhir.base_url,
            access_token="it-token",
        )
    assert outcome(call(service, hook, body)) == expected


def test_fetched_and_prefetched_answers_agree_criterion_by_criterion(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    pid = INSUFFICIENT_ID
    a = hook_request(
        "order-sign",
        prefetch=ehr_prefetch(service, loaded_fhir, "order-sign", pid),
        drafts=[draft(pid)],
        patient_id=pid,
    )
    b = hook_request(
        "order-sign", drafts=[draft(pid)], patient_id=pid, fhir_server=loaded_fhir.base_url
    )
    ext_a = call(service, "order-sign", a).json()["cards"][0]["extension"]
    ext_b = call(service, "order-sign", b).json()["cards"][0]["extension"]
    assert ext_a == ext_b
    hba1c_result = next(
        c
        for c in ext_a["iport-cds.eligibility"]["criteria"]
        if c["id"] == "hba1c-69-or-above-on-mdi"
    )
    assert hba1c_result["result"] == "met"  # 8.9 % = 73.8 mmol/mol, on BD insulin


def test_unreachable_fhir_server_answers_412(service: ServiceProcess) -> None:
    from tests.service_process import free_port

    body = hook_request(
        "order-sign",
        drafts=[draft(MEETS_ID)],
        patient_id=MEETS_ID,
        fhir_server=f"http://127.0.0.1:{free_port()}/fhir",
    )
    resp = call(service, "order-sign", body)
    assert resp.status_code == 412
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_every_search_is_one_the_fhir_server_supports(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    """Fetched from the real FHIR server: every search is scoped to the patient by a parameter
    the server supports, except DeviceRequest, which this server cannot search by patient at
    all; its answer is filtered here and said once, not as a warning per record."""
    body = hook_request(
        "order-sign",
        drafts=[draft(MEETS_ID)],
        patient_id=MEETS_ID,
        fhir_server=loaded_fhir.base_url,
    )
    detail = call(service, "order-sign", body).json()["cards"][0]["detail"]
    assert "search parameter" not in detail.lower()
    assert "not used: " not in detail
    lines = [line for line in detail.splitlines() if "does not support this search" in line]
    assert len(lines) == 1
    assert lines[0].startswith("- devices:")


def test_a_patient_the_fhir_server_does_not_have_is_said_as_such(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    body = hook_request(
        "order-sign",
        drafts=[draft("no-such-patient")],
        patient_id="no-such-patient",
        fhir_server=loaded_fhir.base_url,
    )
    resp = call(service, "order-sign", body)
    assert resp.status_code == 412
    diagnostics = resp.json()["issue"][0]["diagnostics"]
    assert "the FHIR server has no Patient/no-such-patient" in diagnostics
    assert "deadline" not in diagnostics


def test_the_log_holds_no_token_or_patient_id(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    body = hook_request(
        "order-sign",
        drafts=[draft(MEETS_ID)],
        patient_id=MEETS_ID,
        fhir_server=loaded_fhir.base_url,
        access_token="it-secret-token-123",
    )
    assert outcome(call(service, "order-sign", body)) == "meets-criteria"
    log = service.log
    assert '"message":"hook answered"' in log
    assert '"outcome":"meets-criteria"' in log
    assert "it-secret-token-123" not in log
    assert MEETS_ID not in log
