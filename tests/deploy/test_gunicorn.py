"""The real service under gunicorn (deploy/gunicorn.conf.py): metrics summed over worker
processes, JSON log lines that hold no token or patient id, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import (
    iport_device_request,
    type1_meets,
)
from tests.deploy.fhir_stub import SlowFhirServer
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess

SECRET_PID = "pat-gunicorn-4857773456"
SECRET_TOKEN = "fhir-access-token-gunicorn-c0ffee"
SECRET_JWT = "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"
ORDER_SIGN = SERVICE["order-sign"]
MEETS = type1_meets(SECRET_PID)


def start(svc: ServiceProcess, monkeypatch: pytest.MonkeyPatch, **env: str) -> ServiceProcess:
    """Start ``svc`` with extra (non IPORT_CDS_) variables in its environment only."""
    with monkeypatch.context() as m:
        for key, val in env.items():
            m.setenv(key, val)
        return svc.__enter__()


def counters(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    snapshot: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in snapshot.items() if n == name and want <= ls)


@pytest.fixture(scope="module")
def fhir() -> Iterator[SlowFhirServer]:
    with SlowFhirServer(delay_s=0.0) as server:
        yield server


def test_metrics_sum_over_workers_and_log_lines_are_clean_json(
    fhir: SlowFhirServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # from an earlier run: wiped
    # Each worker retires after 2 requests, so the answers come from many processes.
    svc = ServiceProcess(
        {"FHIR_ALLOW_LOOPBACK": "true", "MAX_REQUESTS": "2", "MAX_REQUESTS_JITTER": "0"},
        workers=2,
    )
    start(svc, monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    try:
        url = f"{svc.url}/cds-services/{ORDER_SIGN}"
        draft = iport_device_request(pid=SECRET_PID)
        headers = {"Authorization": f"Bearer {SECRET_JWT}"}
        statuses = []
        for i in range(8):
            if i % 2:  # the service reads the (stub) FHIR server with the EHR's token
                body = hook_request(
                    "order-sign",
                    drafts=[draft],
                    patient_id=SECRET_PID,
                    fhir_server=fhir.base_url,
                    access_token=SECRET_TOKEN,
                )
            else:
                body = hook_request(
                    "order-sign",
                    resources=MEETS,
                    drafts=[draft],
                    patient_id=SECRET_PID,
                    access_token=SECRET_TOKEN,
                    fhir_server=fhir.base_url,
                )
            with requests.Session() as s:  # a new connection each time
                resp = s.post(
                    url, json=body, headers={**headers, "X-Request-ID": f"ehr-{i}"}, timeout=10
                )
                statuses.append(resp.status_code)
                assert resp.headers["X-Request-ID"] == f"ehr-{i}"
        no_data = hook_request("order-sign", drafts=[draft], patient_id=SECRET_PID)
        assert requests.post(url, json=no_data, timeout=10).status_code == 412
        query = f"{svc.url}/cds-services?access_token={SECRET_TOKEN}&patient={SECRET_PID}"
        assert requests.get(query, timeout=10).status_code == 200
        assert statuses == [200] * 8

        scrape = requests.get(f"{svc.url}/metrics", timeout=10)
        assert scrape.status_code == 200
        snapshot = counters(scrape.text)
        hooks = total(
            snapshot, "iport_cds_http_requests_total", endpoint="hook", service=ORDER_SIGN
        )
        assert hooks == 9
        assert total(snapshot, "iport_cds_http_requests_total", status="412") == 1
        assert total(snapshot, "iport_cds_evaluations_total", service=ORDER_SIGN) == 8
        assert total(snapshot, "iport_cds_fhir_fetch_duration_seconds_count") == 4
        assert total(snapshot, "iport_cds_data_keys_total", source="prefetch") > 0
        assert total(snapshot, "iport_cds_data_keys_total", source="fetched") > 0
        reason = {"reason": "no_fhir_server"}
        assert total(snapshot, "iport_cds_precondition_failed_total", **reason) == 1
        # Written by several processes (workers retire after 2 requests), summed in one scrape.
        writers = {p.name for p in metrics_dir.glob("counter_*.db")}
        assert len(writers) >= 4, writers
        assert "counter_999999.db" not in writers
        for secret in (SECRET_PID, SECRET_TOKEN, SECRET_JWT):
            assert secret not in scrape.text
        # The FHIR server got the EHR's request ids (only the calls that read from it).
        assert set(fhir.request_ids) == {"ehr-1", "ehr-3", "ehr-5", "ehr-7"}
    finally:
        svc.__exit__(None, None, None)

    lines = [line for line in svc.log.splitlines() if line.strip()]
    parsed: list[dict[str, Any]] = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line[:300]}")
    for secret in (SECRET_PID, SECRET_TOKEN, SECRET_JWT, "Bearer"):
        assert secret not in svc.log, secret
    answered = [p for p in parsed if p["message"] == "hook answered"]
    assert len(answered) == 8
    for line in answered:
        assert line["service"] == ORDER_SIGN
        assert line["hookInstance"]
        assert line["outcome"]
        assert line["timings_ms"]["total"] >= 0
        assert line["request_id"]
    access = [p for p in parsed if p["logger"] == "gunicorn.access"]
    assert {a["path"] for a in access} >= {f"/cds-services/{ORDER_SIGN}", "/cds-services"}
    assert "/metrics" not in {a["path"] for a in access}  # probes and scrapes are not logged
    ids = {a["request_id"] for a in access if a["path"] == f"/cds-services/{ORDER_SIGN}"}
    assert {line["request_id"] for line in answered} <= ids
    assert any(p["message"] == "hook precondition failed" for p in parsed)


def test_sigterm_lets_the_request_in_flight_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    with SlowFhirServer(delay_s=1.5) as slow:
        svc = ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true", "GRACEFUL_TIMEOUT": "10"})
        start(svc, monkeypatch)
        try:
            assert svc._proc is not None
            master = svc._proc.pid
            body = hook_request(
                "order-sign",
                drafts=[iport_device_request()],
                fhir_server=slow.base_url,  # no prefetch: every key is read, slowly
            )
            outcome: dict[str, Any] = {}

            def call() -> None:
                started = time.monotonic()
                try:
                    resp = requests.post(
                        f"{svc.url}/cds-services/{ORDER_SIGN}", json=body, timeout=20
                    )
                    outcome["status"] = resp.status_code
                    outcome["body"] = resp.json()
                except requests.RequestException as exc:
                    outcome["error"] = repr(exc)
                outcome["seconds"] = time.monotonic() - started

            caller = threading.Thread(target=call)
            caller.start()
            deadline = time.monotonic() + 10
            while slow.requests == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert slow.requests > 0, "the hook never reached the FHIR server"
            os.kill(master, signal.SIGTERM)  # mid-request
            caller.join(timeout=20)
            assert not caller.is_alive()
            assert "error" not in outcome, outcome
            assert outcome["status"] == 200, outcome
            assert "cards" in outcome["body"]
            assert outcome["seconds"] >= 1.4
            # And then the server stops: the master exits, new connections are refused.
            assert svc._proc.wait(timeout=15) == 0
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{svc.url}/healthz", timeout=2)
        finally:
            svc.__exit__(None, None, None)
    assert "Handling signal: term" in svc.log
