"""A FHIR server answering with gzip bombs (300 KB that inflate to 300 MiB each) cannot grow a
worker: over real gunicorn, 20 hooks reading from it are answered 412 naming the byte budget,
and the worker's memory afterwards is within 50 MiB of what it was before."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.builders import iport_device_request
from tests.deploy.fhir_stub import FixedAnswerServer, SlowFhirServer, gzip_bomb
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess

HOOK = f"/cds-services/{SERVICE['order-sign']}"
GZIP = {"Content-Type": "application/fhir+json", "Content-Encoding": "gzip"}


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert found
    return int(found.group(1)) / 1024


def _worker(master: int) -> int:
    children = [
        int(c)
        for task in Path(f"/proc/{master}/task").iterdir()
        if (task / "children").exists()
        for c in (task / "children").read_text().split()
    ]
    assert len(children) == 1
    return children[0]


def _hook(svc: ServiceProcess, fhir: str) -> requests.Response:
    body = hook_request("order-sign", drafts=[iport_device_request()], fhir_server=fhir)
    body["hookInstance"] = str(uuid.uuid4())
    return requests.post(f"{svc.url}{HOOK}", json=body, timeout=30)


def test_twenty_gzip_bombs_leave_the_worker_within_50_mib() -> None:
    env = {"FHIR_ALLOW_LOOPBACK": "true", "FHIR_BREAKER_FAILURES": "0"}
    with (
        FixedAnswerServer(gzip_bomb(300), GZIP) as bomb,
        SlowFhirServer() as healthy,
        ServiceProcess(env, workers=1) as svc,
    ):
        assert svc._proc is not None
        worker = _worker(svc._proc.pid)
        for _ in range(5):  # warm: every module loaded, the pools made
            assert _hook(svc, healthy.base_url).status_code == 200
        before = _rss_mib(worker)
        with ThreadPoolExecutor(4) as clients:
            answers = list(clients.map(lambda _: _hook(svc, bomb.base_url), range(20)))
        after = _rss_mib(worker)
        assert _hook(svc, healthy.base_url).status_code == 200
    assert [a.status_code for a in answers] == [412] * 20
    assert all("MAX_BYTES" in a.json()["issue"][0]["diagnostics"] for a in answers)
    assert bomb.requests >= 20
    assert after - before <= 50, f"worker RSS {before:.0f} → {after:.0f} MiB"
