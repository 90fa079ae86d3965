"""Smoke tests: the real FHIR server (sekmet) answers the searches the service relies on."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.fhir_server import DEFAULT_VENV, FhirTestServer, ensure_sekmet

pytestmark = pytest.mark.integration

LOINC_HBA1C = "4548-4"
SNOMED_HBA1C = "999791000000106"
HBA1C_CODES = f"http://loinc.org|{LOINC_HBA1C},http://snomed.info/sct|{SNOMED_HBA1C}"


def _observation(pid: str, system: str, code: str, when: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "mmol/mol",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/mol",
        },
    }


def _medication_request(pid: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "325072002"}]
        },
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": "2024-02-01",
    }


def _post(resource: dict[str, Any]) -> dict[str, Any]:
    rtype = resource["resourceType"]
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {"method": "POST", "url": rtype},
    }


def patient_bundle(pid: str) -> dict[str, Any]:
    """Patient (PUT with id), Condition, 2 HbA1c + 1 other Observation, active + stopped MedReq."""
    resources = [
        {
            "resourceType": "Condition",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            "subject": {"reference": f"Patient/{pid}"},
        },
        _observation(pid, "http://loinc.org", LOINC_HBA1C, "2024-01-10", 58),
        _observation(pid, "http://snomed.info/sct", SNOMED_HBA1C, "2024-06-10", 62),
        _observation(pid, "http://loinc.org", "2339-0", "2024-03-10", 7.1),  # glucose: no match
        _medication_request(pid, "active"),
        _medication_request(pid, "stopped"),
    ]
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": "Smoke", "given": ["Test"]}],
        "birthDate": "1970-01-01",
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
            *(_post(r) for r in resources),
        ],
    }


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """Resources with search.mode == match (sekmet appends OperationOutcome 'outcome' entries)."""
    return [
        e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"
    ]


def search(server: FhirTestServer, path: str, **params: str) -> dict[str, Any]:
    r = requests.get(f"{server.base_url}/{path}", params=params, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "searchset"
    return body


@pytest.fixture(scope="module")
def patient_id(fhir_server: FhirTestServer) -> str:
    pid = f"smoke-{uuid.uuid4().hex[:12]}"
    response = fhir_server.load(patient_bundle(pid))
    assert response["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses[0].startswith("201")  # Patient created by PUT
    assert all(s.startswith("201") for s in statuses), statuses
    return pid


def test_base_url_shape(fhir_server: FhirTestServer) -> None:
    assert fhir_server.base_url.startswith("http://127.0.0.1:")
    assert fhir_server.base_url.endswith("/fhir")
    r = requests.get(f"{fhir_server.base_url}/metadata", timeout=10)
    assert r.status_code == 200
    assert r.json()["fhirVersion"] == "4.0.1"


def test_patient_read(fhir_server: FhirTestServer, patient_id: str) -> None:
    r = requests.get(f"{fhir_server.base_url}/Patient/{patient_id}", timeout=10)
    assert r.status_code == 200
    assert r.json()["id"] == patient_id


@pytest.mark.parametrize("ref_form", ["{pid}", "Patient/{pid}"])
def test_condition_by_patient(fhir_server: FhirTestServer, patient_id: str, ref_form: str) -> None:
    body = search(fhir_server, "Condition", patient=ref_form.format(pid=patient_id))
    found = matches(body)
    assert body["total"] == 1
    assert [c["resourceType"] for c in found] == ["Condition"]
    assert found[0]["subject"]["reference"] == f"Patient/{patient_id}"


def test_observation_by_patient_and_code_or(fhir_server: FhirTestServer, patient_id: str) -> None:
    body = search(fhir_server, "Observation", patient=patient_id, code=HBA1C_CODES)
    codes = sorted(o["code"]["coding"][0]["code"] for o in matches(body))
    assert body["total"] == 2
    assert codes == sorted([LOINC_HBA1C, SNOMED_HBA1C])


def test_medication_request_active(fhir_server: FhirTestServer, patient_id: str) -> None:
    body = search(fhir_server, "MedicationRequest", patient=patient_id, status="active")
    found = matches(body)
    assert body["total"] == 1
    assert found[0]["status"] == "active"


def test_batch_of_searches(fhir_server: FhirTestServer, patient_id: str) -> None:
    urls = [
        f"Condition?patient={patient_id}",
        f"Observation?patient={patient_id}&code={HBA1C_CODES}",
        f"MedicationRequest?patient={patient_id}&status=active",
        f"Patient/{patient_id}",
    ]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": u}} for u in urls],
    }
    r = requests.post(
        fhir_server.base_url,
        json=batch,
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "batch-response"
    entries = body["entry"]
    assert len(entries) == len(urls)
    assert all(e["response"]["status"].startswith("200") for e in entries)
    searchsets = [e["resource"] for e in entries[:3]]
    assert all(b["resourceType"] == "Bundle" and b["type"] == "searchset" for b in searchsets)
    assert [b["total"] for b in searchsets] == [1, 2, 1]
    assert entries[3]["resource"]["id"] == patient_id


def test_paging_next_link(fhir_server: FhirTestServer, patient_id: str) -> None:
    body = search(fhir_server, "Observation", patient=patient_id, _count="1")
    assert body["total"] == 3
    seen = [o["id"] for o in matches(body)]
    assert len(seen) == 1
    pages = 1
    while True:
        nxt = [link["url"] for link in body["link"] if link["relation"] == "next"]
        if not nxt:
            break
        assert nxt[0].startswith(fhir_server.base_url + "/Observation?")
        r = requests.get(nxt[0], timeout=10)
        assert r.status_code == 200
        body = r.json()
        seen += [o["id"] for o in matches(body)]
        pages += 1
        assert pages <= 5
    assert pages == 3
    assert len(set(seen)) == 3


def test_unknown_read_is_404_operation_outcome(fhir_server: FhirTestServer) -> None:
    r = requests.get(f"{fhir_server.base_url}/Patient/does-not-exist", timeout=10)
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"


def test_server_stops_on_exit(fhir_server: FhirTestServer) -> None:
    # Own short-lived instance: context exit must stop the process and free the port.
    with FhirTestServer(ensure_sekmet(DEFAULT_VENV)) as other:
        base = other.base_url
        assert base != fhir_server.base_url
        assert requests.get(f"{base}/metadata", timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/metadata", timeout=2)
