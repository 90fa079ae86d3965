"""Security over HTTP against the gunicorn-served app, authentication on, two tenants of one
integration engine each with its own FHIR server: the findings a red team made, each refused."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from tests.builders import PID, iport_device_request, type1_meets
from tests.deploy.fhir_stub import SlowFhirServer
from tests.hooks import SERVICE, full_prefetch, hook_request
from tests.service_process import ServiceProcess, free_port
from tests.unit.test_auth import KEY, public_jwk

ISS = "https://integration-engine.example.nhs.uk"
HOOK = f"/cds-services/{SERVICE['order-sign']}"
ANALYTICS_TOKEN = "dashboard-admin-token-for-the-security-tests"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(aud: str, tenant: str = "trust-a", alg_header: str | None = None) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISS, "sub": "engine", "aud": aud, "iat": now, "exp": now + 120,
              "jti": str(uuid.uuid4()), "tenant": tenant}  # fmt: skip
    token = jwt.encode(claims, KEY, algorithm="ES384", headers={"kid": "k1"})
    if alg_header:  # the same ES384 signature under a header that claims another algorithm
        _head, payload, sig = token.split(".")
        header = {"alg": alg_header, "typ": "JWT", "kid": "k1"}
        token = ".".join([_b64(json.dumps(header).encode()), payload, sig])
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fhir_a() -> Iterator[SlowFhirServer]:
    with SlowFhirServer() as server:
        yield server


@pytest.fixture(scope="module")
def fhir_b() -> Iterator[SlowFhirServer]:
    with SlowFhirServer() as server:
        yield server


@pytest.fixture(scope="module")
def svc(
    fhir_a: SlowFhirServer, fhir_b: SlowFhirServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("security")
    issuers = folder / "issuers.json"
    issuers.write_text(
        json.dumps(
            [
                {
                    "iss": ISS,
                    "jwks": {"keys": [public_jwk(KEY, "k1", "ES384")]},
                    "tenants": {
                        "trust-a": {"fhir_servers": [fhir_a.base_url]},
                        "trust-b": {"fhir_servers": [fhir_b.base_url]},
                    },
                }
            ]
        )
    )
    port = free_port()
    env = {
        "REQUIRE_AUTH": "true",
        "TRUSTED_ISSUERS_FILE": str(issuers),
        "EXTERNAL_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{folder / 'audit.sqlite3'}",
        "ANALYTICS_TOKEN": ANALYTICS_TOKEN,
        # Every worker retires after one request: consecutive requests meet different processes.
        "MAX_REQUESTS": "1",
        "MAX_REQUESTS_JITTER": "0",
    }
    with ServiceProcess(env, workers=2, port=port) as service:
        yield service


def post(svc: ServiceProcess, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    with requests.Session() as s:  # a new connection each time
        return s.post(f"{svc.url}{HOOK}", json=body, headers=headers, timeout=15)


def test_readyz_is_ready_with_the_real_store(svc: ServiceProcess) -> None:
    resp = requests.get(f"{svc.url}/readyz", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["checks"]["database"] == "ok"


def test_a_replay_on_another_worker_is_refused(svc: ServiceProcess) -> None:
    body = hook_request("order-sign", resources=type1_meets(), drafts=[iport_device_request()])
    headers = bearer(f"{svc.url}{HOOK}")
    assert post(svc, body, headers).status_code == 200
    assert post(svc, body, headers).status_code == 401  # a new worker process, same database


@pytest.mark.parametrize("alg", ["RS384", "RS256", "HS384", "PS384", "EdDSA", "none"])
def test_an_es384_signature_under_another_algorithm_is_401_not_500(
    svc: ServiceProcess, alg: str
) -> None:
    resp = requests.get(f"{svc.url}/cds-services", headers=bearer(f"{svc.url}/cds-services",
                        alg_header=alg), timeout=5)  # fmt: skip
    assert resp.status_code == 401


def test_one_tenants_token_cannot_reach_another_tenants_fhir_server(
    svc: ServiceProcess, fhir_b: SlowFhirServer
) -> None:
    before = fhir_b.requests
    body = hook_request(
        "order-sign",
        drafts=[iport_device_request()],
        fhir_server=fhir_b.base_url,
        access_token="trust-b-access-token",
    )
    resp = post(svc, body, bearer(f"{svc.url}{HOOK}", tenant="trust-a"))
    assert resp.status_code == 412
    assert "allowlist" in resp.json()["issue"][0]["diagnostics"]
    assert fhir_b.requests == before  # nothing was sent, so the token went nowhere
    # The tenant's own server is read, with its token.
    body["fhirAuthorization"]["access_token"] = "trust-b-access-token-2"
    resp = post(svc, body, bearer(f"{svc.url}{HOOK}", tenant="trust-b"))
    assert resp.status_code == 200
    assert fhir_b.authorizations[-1] == "Bearer trust-b-access-token-2"


@pytest.mark.parametrize(
    "subject",
    [
        None,
        {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}},
        {"reference": "urn:uuid:6b0d3c0e-5c1e-4a8e-9d0f-0c9f5b3e2a11"},
        {"reference": f"https://other-fhir.example/r4/Patient/{PID}"},
    ],
    ids=["no subject", "identifier only", "urn:uuid unresolved", "same id, other server"],
)
def test_loosely_bound_prefetch_is_not_used(
    svc: ServiceProcess, fhir_a: SlowFhirServer, subject: Any
) -> None:
    record = []
    for r in type1_meets():
        if r["resourceType"] != "Patient":
            r = {k: v for k, v in r.items() if k != "subject"}
            if subject is not None:
                r["subject"] = subject
        record.append(r)
    body = hook_request(
        "order-sign",
        prefetch=full_prefetch(record),
        drafts=[iport_device_request()],
        fhir_server=fhir_a.base_url,
    )
    resp = post(svc, body, bearer(f"{svc.url}{HOOK}"))
    assert resp.status_code == 200
    (card,) = resp.json()["cards"]
    assert card["indicator"] == "warning"  # would be "info" (meets) if the records were used
    # The card counts them; its extension names each.
    assert "1 result and 4 records not used: not shown to be this patient's" in card["detail"]
    unread = card["extension"]["iport-cds.eligibility"]["warnings"]
    assert sum("not used: " in w for w in unread) == 5


def test_logs_name_no_patient_and_no_token(svc: ServiceProcess) -> None:
    log = svc.log
    assert "trust-b-access-token" not in log
    assert PID not in log
    assert "Traceback" not in log


def test_dashboard_sign_in_is_throttled_across_workers(svc: ServiceProcess) -> None:
    def sign_in(token: str) -> requests.Response:
        with requests.Session() as s:  # a new connection, so (MAX_REQUESTS=1) a new worker
            return s.post(
                f"{svc.url}/analytics/login",
                data={"token": token},
                allow_redirects=False,
                timeout=15,
            )

    statuses = [sign_in(f"guess-{i}").status_code for i in range(6)]
    assert statuses == [401] * 5 + [429]
    right = sign_in(ANALYTICS_TOKEN)
    assert right.status_code == 429  # the count is shared: no worker starts afresh
    assert int(right.headers["Retry-After"]) > 0


def test_120_wrong_sign_ins_at_once_try_at_most_5_tokens(tmp_path: Path) -> None:
    """The throttle claims a try and counts it in one step in the shared store, so a race of
    120 sign-ins over two workers is tried at most 5 times; the rest are 429 unread."""
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        "ANALYTICS_TOKEN": ANALYTICS_TOKEN,
    }
    start = threading.Barrier(120)
    statuses: list[int] = []

    def sign_in(i: int) -> None:
        start.wait(30)
        with requests.Session() as s:
            resp = s.post(f"{svc.url}/analytics/login", data={"token": f"guess-{i}"}, timeout=60)
        statuses.append(resp.status_code)

    with ServiceProcess(env, workers=2) as svc:
        threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(120)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
    assert len(statuses) == 120
    assert statuses.count(401) <= 5
    assert statuses.count(401) + statuses.count(429) == 120


def test_wrong_bearer_tokens_on_the_dashboard_are_throttled_across_workers(
    tmp_path: Path,
) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        "ANALYTICS_TOKEN": ANALYTICS_TOKEN,
        "MAX_REQUESTS": "1",
        "MAX_REQUESTS_JITTER": "0",
    }

    def get(path: str, token: str) -> requests.Response:
        with requests.Session() as s:  # a new connection, so (MAX_REQUESTS=1) a new worker
            return s.get(
                f"{svc.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=15
            )

    with ServiceProcess(env, workers=2) as svc:
        assert get("/analytics.json", ANALYTICS_TOKEN).status_code == 200
        paths = ["/analytics.json", "/analytics", "/analytics/export.csv"]
        statuses = [get(paths[i % 3], f"guess-{i}").status_code for i in range(6)]
        assert statuses == [401] * 5 + [429]
        right = get("/analytics.json", ANALYTICS_TOKEN)
        assert right.status_code == 429  # the token is not looked at: it cannot be guessed
        assert int(right.headers["Retry-After"]) > 0
        assert right.json()["issue"][0]["code"] == "throttled"
        form = requests.post(
            f"{svc.url}/analytics/login", data={"token": ANALYTICS_TOKEN}, timeout=15
        )
        assert form.status_code == 429  # one count for the header and the sign-in form


def test_a_bad_jwt_flood_is_refused_cheaply_and_counted_not_logged_row_by_row(
    tmp_path: Path,
) -> None:
    """64 threads of forged JWTs for 4 s over the production server: past each worker's burst
    the flood gets 429 with Retry-After before its token is read; the probes answer all along;
    the audit trail counts refusals per client per minute instead of a row per call. Latency
    under this load is measured by bench/jwt_flood.py."""
    from tests.deploy.flood import flood, service_env

    port = free_port()
    env = service_env(tmp_path, port)
    probes: list[int | str] = []
    with ServiceProcess(env, workers=2, port=port) as svc:
        result: list[Any] = []
        flooding = threading.Thread(target=lambda: result.append(flood(svc.url, 4, 64)))
        flooding.start()
        while flooding.is_alive():
            try:
                probes.append(requests.get(f"{svc.url}/healthz", timeout=2).status_code)
            except requests.RequestException as exc:
                probes.append(type(exc).__name__)
            time.sleep(0.05)
        flooding.join()
        time.sleep(1.5)  # the audit writers' last batches
    ((statuses, retry_after),) = result
    assert set(statuses) == {401, 429}
    # each worker's burst and what refills (1 a second) while the flood lasts
    assert statuses[401] <= 2 * 20 + 2 * 8
    assert retry_after
    assert all(int(w) >= 1 for w in retry_after)
    assert set(probes) == {200}
    with sqlite3.connect(tmp_path / "audit.sqlite3") as db:
        rows = db.execute("SELECT count(*) FROM access_event").fetchone()[0]
        counted = db.execute("SELECT count(*), sum(calls) FROM access_refusal").fetchone()
    assert rows == 0
    assert counted[1] == sum(statuses.values())  # every call counted
    assert counted[0] <= 2 * 2  # one per minute (at most two) and status
