"""What an EHR does around a hook call in the integration tests: load records into the FHIR
server, fill the service's prefetch templates from it, and date records relative to today."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import requests

from tests.fhir_server import FhirTestServer
from tests.hooks import SERVICE
from tests.service_process import ServiceProcess


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


def ago(days: int) -> str:
    """A date relative to the day the suite runs: the service reads its own clock."""
    return (date.today() - timedelta(days=days)).isoformat()


def ehr_prefetch(
    service: ServiceProcess, fhir: FhirTestServer, hook: str, pid: str
) -> dict[str, Any]:
    """Fill the prefetch templates of the service ``SERVICE[hook]`` from the FHIR server, as
    an EHR would."""
    services = requests.get(f"{service.url}/cds-services", timeout=5).json()["services"]
    templates = next(s for s in services if s["id"] == SERVICE[hook])["prefetch"]
    out = {}
    for key, template in templates.items():
        url = f"{fhir.base_url}/{template.replace('{{context.patientId}}', pid)}"
        resp = requests.get(url, timeout=5, headers={"Accept": "application/fhir+json"})
        assert resp.status_code == 200, (key, resp.text)
        out[key] = resp.json()
    return out
