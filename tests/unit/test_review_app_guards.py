"""The assessment app's launch is reachable without signing in: what keeps it cheap to abuse
and its pages impossible to frame. Real loopback servers play the EHR's SMART configuration
(or drip it); the app is the real one."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import responses
from flask import Flask
from sqlalchemy import func, select

from service import create_app
from service.state import state_of
from store.models import ReviewAppSession
from tests.deploy.fhir_stub import FixedAnswerServer, SlowFhirServer

SMART_JSON = {"Content-Type": "application/json"}


def _app(folder: Path, **config: object) -> Flask:
    return create_app(
        {
            "REQUIRE_AUTH": False,
            "FHIR_ALLOW_LOOPBACK": True,
            "DATABASE_URL": f"sqlite:///{folder / 'store.sqlite3'}",
            **config,
        }
    )


def _smart_configuration() -> bytes:
    return json.dumps(
        {
            "authorization_endpoint": "http://127.0.0.1:1/authorize",
            "token_endpoint": "http://127.0.0.1:1/token",
        }
    ).encode()


def _launch(app: Flask, iss: str, address: str = "192.0.2.1") -> tuple[int, dict[str, str]]:
    resp = app.test_client().get(
        "/review/launch",
        query_string={"iss": iss, "launch": "x"},
        environ_base={"REMOTE_ADDR": address},
    )
    return resp.status_code, dict(resp.headers)


def _session_rows(app: Flask) -> int:
    with state_of(app).store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ReviewAppSession)).scalar_one())


def test_no_page_of_the_app_can_be_framed(tmp_path: Path) -> None:
    app = _app(tmp_path)
    client = app.test_client()
    with FixedAnswerServer(_smart_configuration(), SMART_JSON) as ehr:
        answers = [
            client.get("/review/"),  # the error page: no session
            client.get("/review/launch", query_string={"iss": ehr.base_url}),  # a redirect
            client.get("/review/static/review.css"),
            client.post("/review/logout"),
        ]
    assert [a.status_code for a in answers] == [401, 302, 200, 200]
    for answer in answers:
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Frame-Options"] == "DENY"
        answer.close()


def test_smart_discovery_has_a_total_deadline(tmp_path: Path) -> None:
    """A server dripping its SMART configuration a byte every 50 ms never trips a read
    timeout; the deadline drops the connection and the launch fails, saying so."""
    app = _app(tmp_path, REVIEW_APP_DISCOVERY_SECONDS=0.5)
    with SlowFhirServer(drip_s=0.05) as drip:
        status, _ = _launch(app, drip.base_url)
        assert status == 502
        assert drip.requests == 1
        for _ in range(60):  # the stub notices the dropped connection at its next byte
            if drip.dropped:
                break
            time.sleep(0.05)
        assert drip.dropped == 1
    assert _session_rows(app) == 0


def test_smart_discovery_is_read_once_per_fhir_server_and_kept(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with FixedAnswerServer(_smart_configuration(), SMART_JSON) as ehr:
        statuses = [_launch(app, ehr.base_url, f"192.0.2.{i}")[0] for i in range(5)]
        assert statuses == [302] * 5
        assert ehr.requests == 1


def test_a_failed_discovery_is_kept_a_while_too(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with FixedAnswerServer(b"<html>not JSON</html>", {"Content-Type": "text/html"}) as ehr:
        statuses = [_launch(app, ehr.base_url, f"192.0.2.{i}")[0] for i in range(5)]
        assert statuses == [502] * 5
        assert ehr.requests == 1
    assert _session_rows(app) == 0


def test_launches_are_limited_per_address(tmp_path: Path) -> None:
    app = _app(tmp_path, REVIEW_APP_LAUNCHES_PER_MINUTE=3)
    with FixedAnswerServer(_smart_configuration(), SMART_JSON) as ehr:
        statuses = [_launch(app, ehr.base_url)[0] for _ in range(3)]
        status, headers = _launch(app, ehr.base_url)
        other, _ = _launch(app, ehr.base_url, address="198.51.100.7")
    assert statuses == [302] * 3
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert other == 302
    assert _session_rows(app) == 4  # the refused launch stored nothing


@responses.activate  # any request that left the service would fail here, loudly
@pytest.mark.parametrize(
    "iss", ["https://fhir.elsewhere.example/r4", "http://fhir.example.org/r4", "not a url"]
)
def test_no_row_and_no_request_before_iss_is_known_to_be_a_tenants(
    tmp_path: Path, iss: str
) -> None:
    app = _app(tmp_path, FHIR_ALLOW_LOOPBACK=False,
               FHIR_SERVER_ALLOWLIST=["https://fhir.example.org/r4"])  # fmt: skip
    status, _ = _launch(app, iss)
    assert status == 400
    assert len(responses.calls) == 0
    assert _session_rows(app) == 0


def test_launches_do_not_queue_behind_a_discovery_in_progress() -> None:
    from review_app.guards import DiscoveryCache
    from review_app.smart import LaunchError, SmartConfiguration

    cache = DiscoveryCache(300, 30)
    reading, release = threading.Event(), threading.Event()
    config = SmartConfiguration("https://a.example/authorize", "https://a.example/token")

    def slow_read() -> SmartConfiguration:
        reading.set()
        release.wait(10)
        return config

    first = threading.Thread(target=cache.get, args=("https://fhir.example/r4", slow_read))
    first.start()
    assert reading.wait(10)
    with pytest.raises(LaunchError, match="being read"):
        cache.get("https://fhir.example/r4", slow_read)  # at once, holding no thread
    release.set()
    first.join(10)
    assert cache.get("https://fhir.example/r4", slow_read) is config  # kept now
