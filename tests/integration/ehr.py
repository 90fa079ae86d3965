"""What an EHR does around a hook call in the integration tests: load records into the FHIR
server, fill the service's prefetch templates from it, and date records relative to today."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from demo import DemoPatient
from tests.fhir_server import FhirTestServer
from tests.hooks import SERVICE
from tests.service_process import ServiceProcess, free_port, serving
from tests.smart_server import USER as SMART_USER
from tests.smart_server import SmartServer


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


def order_sign_card(service_url: str, fhir_base: str, patient_id: str) -> dict[str, Any]:
    """The card an EHR receives when an i-Port order is signed (the service reads the record
    from ``fhir_base``)."""
    draft = {
        "resourceType": "DeviceRequest",
        "id": "draft-iport",
        "status": "draft",
        "intent": "order",
        "codeCodeableConcept": {"text": "i-Port Advance injection port"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    body = {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": fhir_base,
        "context": {
            "userId": "Practitioner/demo-clinician",
            "patientId": patient_id,
            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": draft}]},
        },
    }  # fmt: skip
    resp = requests.post(
        f"{service_url}/cds-services/iport-advance-order-sign", json=body, timeout=30
    )
    resp.raise_for_status()
    (card,) = resp.json()["cards"]
    return dict(card)


@contextmanager
def review_service(folder: Path, **config: Any) -> Iterator[str]:
    """The service with its assessment app on a loopback port, as the demo set-up runs it
    (no CDS client JWT, FHIR servers on this machine allowed), its database in ``folder``,
    with any other ``config``; yields its base URL."""
    from service import create_app

    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "FHIR_ALLOW_LOOPBACK": True,
            "DATABASE_URL": f"sqlite:///{folder / 'audit.sqlite3'}",
            **config,
        }
    )
    with serving(app) as url:
        yield url


def demo_as(patient: DemoPatient, pid: str) -> dict[str, Any]:
    """A demo patient's transaction with its dates filled in, under patient id ``pid`` (and
    resource ids made from it): a test module's own patient on the session's FHIR server."""
    text = json.dumps(patient.bundle(date.today())).replace(patient.patient_id, pid)
    bundle: dict[str, Any] = json.loads(text)
    return bundle


def put_resource(fhir: FhirTestServer, resource: dict[str, Any]) -> None:
    """Write ``resource`` to the FHIR server under its own id (an update, or a create)."""
    url = f"{fhir.base_url}/{resource['resourceType']}/{resource['id']}"
    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
    requests.put(url, json=resource, headers=headers, timeout=10).raise_for_status()


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def launch_app(browser: requests.Session, service_url: str, iss: str) -> tuple[str, str]:
    """A standalone launch of the assessment app on the i-Port policy: the page's HTML and
    its form token."""
    page = browser.get(
        f"{service_url}/review/launch",
        params={"iss": iss, "policy": "iport-advance"},
        timeout=20,
    )
    assert page.status_code == 200, page.text[:500]
    csrf = _CSRF.search(page.text)
    assert csrf, page.text[:500]
    return page.text, csrf.group(1)


def confirm(
    browser: requests.Session, service_url: str, csrf: str, criterion: str, reason: str = ""
) -> str:
    """Record a confirmation of ``criterion`` in the app; the assessment page shown after."""
    done = browser.post(
        f"{service_url}/review/confirm",
        data={"csrf": csrf, "policy": "iport-advance", "criterion": criterion, "reason": reason},
        timeout=20,
    )
    assert done.status_code == 200, done.text[:500]
    return done.text


@contextmanager
def smart_for(
    fhir: FhirTestServer,
    patient: DemoPatient,
    pid: str,
    *resources: dict[str, Any],
    user: str = SMART_USER,
) -> Iterator[SmartServer]:
    """The local SMART server in front of ``fhir`` holding ``patient`` under id ``pid`` (and
    ``resources``, the clinician's Practitioner), launching standalone for that patient and
    signing everyone in as ``user``."""
    fhir.load(demo_as(patient, pid))
    for resource in resources:
        put_resource(fhir, resource)
    with SmartServer(fhir.base_url, free_port(), standalone_patient=pid, user=user).serve() as s:
        yield s
