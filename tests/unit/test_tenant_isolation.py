"""Two tenants of one integration engine whose FHIR bases share a host and port (one nested
under the other, or side by side): a token reaches only its own tenant's server, by the
longest matching base, and one tenant's dripping path holds none of the other's capacity.
The real app with authentication on, a real FHIR stub on loopback."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from service import create_app
from tests.builders import iport_device_request
from tests.deploy.fhir_stub import SlowFhirServer
from tests.hooks import hook_request
from tests.unit.test_auth import KEY, public_jwk, token

ENGINE = "https://integration-engine.example.nhs.uk"
HOOK = "/cds-services/iport-advance-order-sign"
AUD = f"http://localhost{HOOK}"


def _app(tmp_path: Path, tenants: dict[str, str], **config: Any) -> Flask:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(
        json.dumps(
            [
                {
                    "iss": ENGINE,
                    "jwks": {"keys": [public_jwk(KEY, "k1", "ES384")]},
                    "tenants": {t: {"fhir_servers": [base]} for t, base in tenants.items()},
                }
            ]
        )
    )
    return create_app(
        {
            "REQUIRE_AUTH": True,
            "TRUSTED_ISSUERS_FILE": str(issuers),
            "EXTERNAL_BASE_URL": "http://localhost",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
            **config,
        }
    )


def _hook(app: Flask, tenant: str, fhir_server: str, access_token: str) -> tuple[int, Any]:
    body = hook_request(
        "order-sign",
        drafts=[iport_device_request()],
        fhir_server=fhir_server,
        access_token=access_token,
    )
    body["hookInstance"] = str(uuid.uuid4())
    bearer = token(iss=ENGINE, tenant=tenant, aud=AUD)
    with app.test_client() as c:
        resp = c.post(HOOK, json=body, headers={"Authorization": f"Bearer {bearer}"})
        return resp.status_code, resp.json


@pytest.mark.parametrize("suffix", ["", "/", "/Patient"])
def test_a_token_never_reaches_another_tenants_base_nested_under_its_own(
    tmp_path: Path, suffix: str
) -> None:
    with SlowFhirServer() as fhir:
        a_base, b_base = fhir.base_url, f"{fhir.base_url}/trust-b"
        app = _app(tmp_path, {"trust-a": a_base, "trust-b": b_base})
        status, body = _hook(app, "trust-a", b_base + suffix, "trust-a-access-token")
        assert status == 412
        assert "not one of this client's FHIR servers" in body["issue"][0]["diagnostics"]
        assert fhir.requests == 0  # nothing was sent, so the token went nowhere
        # Each tenant still reads its own server, by the longest matching base.
        assert _hook(app, "trust-b", b_base, "trust-b-access-token")[0] == 200
        assert _hook(app, "trust-a", f"{a_base}/trust-bx", "trust-a-access-token")[0] == 200
        assert set(fhir.authorizations) == {
            "Bearer trust-b-access-token",
            "Bearer trust-a-access-token",
        }
        assert all(p.startswith("/fhir/trust-b/") for p in fhir.paths[:6])


def test_one_tenants_dripping_path_leaves_another_tenant_on_the_same_host_and_port_answered(
    tmp_path: Path,
) -> None:
    """The breaker, the hook slots, the executor and the connection pool are all per tenant ×
    origin: tenant A's path drips until its breaker opens and its slots are full, and every
    hook of tenant B, whose base is on the same host and port, is answered."""
    with SlowFhirServer(drip_s=0.05, drip_under="/fhir/trust-a") as fhir:
        app = _app(
            tmp_path,
            {"trust-a": f"{fhir.base_url}/trust-a", "trust-b": f"{fhir.base_url}/trust-b"},
            FHIR_DEADLINE_SECONDS=0.6,
            FHIR_BREAKER_FAILURES=2,
            FHIR_BREAKER_COOL_OFF_SECONDS=30,
            HOOKS_IN_FLIGHT_MAX=6,
            FHIR_SERVER_HOOKS_MAX=4,
            FHIR_POOL_SIZE=2,
        )
        a_statuses: list[int] = []
        stop = threading.Event()

        def tenant_a() -> None:
            while not stop.is_set():
                a_statuses.append(_hook(app, "trust-a", f"{fhir.base_url}/trust-a", "a")[0])
                stop.wait(0.05)

        threads = [threading.Thread(target=tenant_a) for _ in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: a_statuses.count(412) >= 4)  # A's breaker is open
        b_statuses = [_hook(app, "trust-b", f"{fhir.base_url}/trust-b", "b")[0] for _ in range(8)]
        stop.set()
        for t in threads:
            t.join(10)
    assert Counter(b_statuses) == {200: 8}
    assert set(a_statuses) <= {412, 503}


def wait_for(condition: Callable[[], bool], limit_s: float = 10) -> None:
    done = threading.Event()
    for _ in range(int(limit_s / 0.05)):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError("the condition did not come true")
