"""Two tenants of one integration engine whose FHIR bases are paths of one host and port,
over real gunicorn with authentication on (one worker, 8 threads): tenant A's token never
reaches tenant B's base nested under A's, and A's dripping path leaves B's hooks answered."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.builders import iport_device_request
from tests.deploy.fhir_stub import SlowFhirServer
from tests.deploy.test_security_http import ISS, bearer
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess, free_port
from tests.unit.test_auth import KEY, public_jwk

HOOK = f"/cds-services/{SERVICE['order-sign']}"


@pytest.fixture(scope="module")
def fhir() -> Iterator[SlowFhirServer]:
    # trust-a's own path drips a byte every 50 ms; trust-b's, nested under trust-a's, does not
    with SlowFhirServer(
        drip_s=0.05, drip_under="/fhir/trust-a", fast_under="/fhir/trust-a/trust-b"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def svc(fhir: SlowFhirServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("tenants")
    issuers = folder / "issuers.json"
    tenants = {
        "trust-a": {"fhir_servers": [f"{fhir.base_url}/trust-a"]},
        "trust-b": {"fhir_servers": [f"{fhir.base_url}/trust-a/trust-b"]},
    }
    issuers.write_text(
        json.dumps([{"iss": ISS, "jwks": {"keys": [public_jwk(KEY, "k1", "ES384")]},
                     "tenants": tenants}])
    )  # fmt: skip
    port = free_port()
    env = {
        "REQUIRE_AUTH": "true",
        "TRUSTED_ISSUERS_FILE": str(issuers),
        "EXTERNAL_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{Path(folder) / 'audit.sqlite3'}",
        "FHIR_DEADLINE_SECONDS": "1",
        "FHIR_BREAKER_FAILURES": "2",
        "FHIR_BREAKER_COOL_OFF_SECONDS": "30",
    }
    with ServiceProcess(env, workers=1, port=port) as service:
        yield service


def _hook(svc: ServiceProcess, tenant: str, fhir_server: str) -> requests.Response:
    body = hook_request("order-sign", drafts=[iport_device_request()], fhir_server=fhir_server,
                        access_token=f"{tenant}-access-token")  # fmt: skip
    body["hookInstance"] = str(uuid.uuid4())
    with requests.Session() as s:
        return s.post(f"{svc.url}{HOOK}", json=body, headers=bearer(f"{svc.url}{HOOK}", tenant),
                      timeout=20)  # fmt: skip


def test_a_token_never_reaches_another_tenants_base_nested_under_its_own(
    svc: ServiceProcess, fhir: SlowFhirServer
) -> None:
    before = fhir.requests
    resp = _hook(svc, "trust-a", f"{fhir.base_url}/trust-a/trust-b")
    assert resp.status_code == 412
    assert "not one of this client's FHIR servers" in resp.json()["issue"][0]["diagnostics"]
    assert fhir.requests == before  # nothing was sent, so trust-a's token went nowhere


def test_one_tenants_dripping_path_leaves_the_other_tenant_answered(
    svc: ServiceProcess, fhir: SlowFhirServer
) -> None:
    stop = time.monotonic() + 6
    a_statuses: list[int] = []

    def tenant_a() -> None:
        while time.monotonic() < stop:
            a_statuses.append(_hook(svc, "trust-a", f"{fhir.base_url}/trust-a").status_code)
            time.sleep(0.05)

    threads = [threading.Thread(target=tenant_a) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.5)  # trust-a's first reads run to the deadline; its breaker opens
    b_statuses = []
    while time.monotonic() < stop - 0.5:
        b_statuses.append(_hook(svc, "trust-b", f"{fhir.base_url}/trust-a/trust-b").status_code)
        time.sleep(0.1)
    for t in threads:
        t.join(30)
    assert len(b_statuses) >= 5
    assert Counter(b_statuses) == {200: len(b_statuses)}
    assert set(a_statuses) <= {412, 503}
    assert a_statuses.count(412) >= 4
