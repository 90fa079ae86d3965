"""Slow FHIR servers cannot take a worker's hook capacity from a healthy one: each origin's
circuit breaker opens after a few reads without an answer, and its hooks are then answered
412 at once, over real gunicorn (one worker, 8 threads: 6 hook slots, 4 per FHIR server)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import requests

from tests.builders import iport_device_request
from tests.deploy.fhir_stub import SlowFhirServer
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess

HOOK = f"/cds-services/{SERVICE['order-sign']}"


def _body(fhir: str) -> dict[str, Any]:
    body = hook_request("order-sign", drafts=[iport_device_request()], fhir_server=fhir)
    return {**body, "hookInstance": str(uuid.uuid4())}  # no prefetch: every key is read


def test_two_slow_fhir_servers_leave_a_healthy_ones_hooks_answering() -> None:
    with (
        SlowFhirServer(delay_s=30) as hang_a,
        SlowFhirServer(delay_s=30) as hang_b,
        SlowFhirServer() as healthy,
    ):
        env = {
            "FHIR_ALLOW_LOOPBACK": "true",
            "FHIR_DEADLINE_SECONDS": "1",
            "FHIR_BREAKER_FAILURES": "3",
            "FHIR_BREAKER_COOL_OFF_SECONDS": "2",
        }
        with ServiceProcess(env, workers=1) as svc:
            stop = time.monotonic() + 9
            slow: list[tuple[int, float, requests.Response]] = []

            def attacker(fhir: str) -> None:
                with requests.Session() as s:
                    while time.monotonic() < stop:
                        started = time.monotonic()
                        resp = s.post(f"{svc.url}{HOOK}", json=_body(fhir), timeout=20)
                        slow.append((resp.status_code, time.monotonic() - started, resp))
                        # EHR clients calling again and again, not a flood: a tight loop of
                        # refused calls saturates a worker's CPU by volume, whatever the server
                        time.sleep(0.05)

            threads = [
                threading.Thread(target=attacker, args=(url,))
                for url in [hang_a.base_url, hang_b.base_url] * 6
            ]
            for t in threads:
                t.start()
            time.sleep(3)  # each slow server's first reads run to the deadline and fail
            healthy_statuses, health = [], []
            with requests.Session() as s:
                while time.monotonic() < stop - 1:
                    resp = s.post(f"{svc.url}{HOOK}", json=_body(healthy.base_url), timeout=20)
                    healthy_statuses.append(resp.status_code)
                    health.append(requests.get(f"{svc.url}/healthz", timeout=5).status_code)
                    time.sleep(0.1)
            for t in threads:
                t.join(30)
    assert len(healthy_statuses) >= 10
    assert Counter(healthy_statuses) == {200: len(healthy_statuses)}
    assert set(health) == {200}
    refused_at_once = [r for status, took, r in slow if status == 412 and took < 0.5]
    assert len(refused_at_once) > 50
    answer = refused_at_once[-1]
    assert int(answer.headers["Retry-After"]) >= 1
    assert "not been answering" in answer.json()["issue"][0]["diagnostics"]
    # The cool-off ends in one trial at a time per server, not a new wave of slow reads.
    assert sum(1 for status, took, _ in slow if took >= 0.9) <= 2 * (4 + 5)
