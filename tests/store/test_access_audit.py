"""The access audit: every hook call, answered or refused, with who asked, about which patient
(hashed) and what happened; counted on the dashboard and exported for an IG review."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.builders import iport_device_request
from tests.hooks import hook_request
from tests.store.conftest import NOW, AppFactory, Clock, store_of
from tests.store.seed import ORDER_SELECT, order_select
from tests.unit.test_auth import ISS, KEY, public_jwk, token

BASE = "https://cds.example.nhs.uk"
HOOK = f"/cds-services/{ORDER_SELECT}"
PID = "pat-access-9434765919"


def issuers(tmp_path: Path) -> str:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": ISS, "jwks": {"keys": [public_jwk(KEY, "k1", "ES384")]}}]))
    return str(path)


def test_every_hook_call_is_in_the_access_audit_answered_or_refused(
    database_url: str, make_app: AppFactory, tmp_path: Path, clock: Clock
) -> None:
    app = make_app(
        database_url,
        REQUIRE_AUTH=True,
        TRUSTED_ISSUERS_FILE=issuers(tmp_path),
        EXTERNAL_BASE_URL=BASE,
        ANALYTICS_TOKEN="ig-lead-token",
    )

    def bearer(**claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(aud=BASE + HOOK, sub='ehr-user-17', **claims)}"}

    no_data = hook_request("order-select", drafts=[iport_device_request(pid=PID)], patient_id=PID)
    requests: list[tuple[dict[str, Any], dict[str, str]]] = [
        (order_select("meets", pid=PID), bearer()),
        (order_select("meets", pid=PID), {}),  # no token
        (no_data, {**bearer(), "X-Request-ID": "ehr-req-42"}),
        ({"hook": "order-select"}, bearer()),
    ]
    with app.test_client() as client:
        statuses = []
        for body, headers in requests:
            statuses.append(client.post(HOOK, json=body, headers=headers).status_code)
            clock.advance(seconds=1)
        assert statuses == [200, 401, 412, 400]
        s = store_of(app)
        assert s.flush(10)
        rows = list(s.export("access", NOW.date()))
        refused = list(s.export("refusals", NOW.date()))
        figures = client.get(
            "/analytics.json", headers={"Authorization": "Bearer ig-lead-token"}
        ).json

    assert [(r["status"], r["outcome"]) for r in rows] == [
        (200, "meets-criteria"),
        (412, "precondition-failed: no_fhir_server"),
        (400, "bad-request"),
    ]
    # refused before the caller was known: counted per client per minute, nothing unverified
    # kept (no issuer was named, the address only as an HMAC)
    assert [(r["status"], r["outcome"], r["issuer"], r["calls"]) for r in refused] == [
        (401, "unauthorised: no bearer token", "", 1)
    ]
    assert re.fullmatch("[0-9a-f]{64}", refused[0]["address_hash"])
    answered, failed, bad = rows
    assert (answered["issuer"], answered["subject"], answered["ehr_user"]) == (
        ISS,
        "ehr-user-17",
        "Practitioner/dr-1",
    )
    assert answered["patient_hash"]
    assert answered["patient_hash"] == failed["patient_hash"]
    assert failed["request_id"] == "ehr-req-42"
    assert bad["patient_hash"] is None
    assert all(r["service_id"] == ORDER_SELECT for r in rows)
    assert PID not in repr(rows)
    assert figures["access"] == {
        "calls": 4,
        "byStatus": {"200": 1, "400": 1, "401": 1, "412": 1},
        "refusals": {
            "bad-request": 1,
            "precondition-failed: no_fhir_server": 1,
            "unauthorised: no bearer token": 1,
        },
    }


def test_the_access_audit_exports_as_csv_and_is_kept_for_the_retention_period(
    sqlite_url: str, make_app: AppFactory
) -> None:
    app = make_app(sqlite_url)
    with app.test_client() as client:
        assert client.post(HOOK, json=order_select("meets", pid=PID)).status_code == 200
    store_of(app).flush(10)
    out = app.test_cli_runner().invoke(args=["export-audit", "--access", "--since", "2026-11-01"])
    assert out.exit_code == 0, out.output
    header, row = out.stdout.strip().splitlines()
    assert header.split(",")[:4] == ["recorded_at", "service_id", "status", "outcome"]
    assert ",200,meets-criteria," in row
    assert PID not in out.stdout
    deleted = store_of(app).purge_before(NOW + timedelta(days=1))
    assert deleted[0] == 1
    assert list(store_of(app).export("access", NOW.date())) == []


def test_a_flood_of_bad_tokens_is_throttled_and_counted_per_client_per_minute(
    sqlite_url: str, make_app: AppFactory, tmp_path: Path
) -> None:
    """100 calls with a forged token from one client: the first REFUSED_CALLS_BURST are 401,
    the rest 429 with Retry-After before the token is read; the audit trail holds a count per
    client per minute, not a row per call. Another client is not held back."""
    app = make_app(
        sqlite_url,
        REQUIRE_AUTH=True,
        TRUSTED_ISSUERS_FILE=issuers(tmp_path),
        EXTERNAL_BASE_URL=BASE,
        REFUSED_CALLS_BURST=20,
        REFUSED_CALLS_PER_MINUTE=6,
    )
    forged = token(aud=BASE + HOOK, sub="ehr-user-17") + "x"  # a trusted issuer, bad signature
    body = order_select("meets", pid=PID)
    with app.test_client() as client:
        answers = [
            client.post(HOOK, json=body, headers={"Authorization": f"Bearer {forged}"})
            for _ in range(100)
        ]
        other = client.post(
            HOOK,
            json=body,
            headers={"Authorization": f"Bearer {forged}"},
            environ_base={"REMOTE_ADDR": "192.0.2.77"},
        )
    statuses = [a.status_code for a in answers]
    assert statuses == [401] * 20 + [429] * 80
    throttled = answers[-1]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 10
    assert throttled.json["issue"][0]["code"] == "throttled"
    assert other.status_code == 401
    s = store_of(app)
    assert s.flush(10)
    assert list(s.export("access", NOW.date())) == []
    counts = {
        (r["status"], r["issuer"], r["address_hash"]): r["calls"]
        for r in s.export("refusals", NOW.date())
    }
    assert sorted(counts.values()) == [1, 20, 80]  # the other client, and this one by status
    assert {issuer for _, issuer, _ in counts} == {ISS}
    assert len({address for _, _, address in counts}) == 2
