"""Benchmark 3: the fetch path. No prefetch; the service reads everything from a real FHIR
server (sekmet) behind a proxy that adds 100 ms to every request.

    .venv/bin/python bench/fetch_path.py [--requests 30] [--latency-ms 100]

Target: the latency adds ≤ 1.1 round trips to the p50 ((p50 with latency − p50 without) /
latency), with every read the three policies need (one round trip's time, not ten). Also
measured with an HbA1c search that spans two pages (a second, unavoidable round trip).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.latency_proxy import start_proxy  # noqa: E402
from bench.report import machine, write_table  # noqa: E402
from bench.workload import PID, resources  # noqa: E402
from fhirdata.prefetch import PAGE_SIZE, fill, prefetch_templates  # noqa: E402
from policy.decide import load_core  # noqa: E402
from policy.loading import policy_names  # noqa: E402
from tests.fhir_server import DEFAULT_VENV, FhirTestServer, ensure_sekmet  # noqa: E402
from tests.service_process import ServiceProcess  # noqa: E402
from valuesets import load_value_sets  # noqa: E402


def transaction(rs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in rs
        ],
    }


def hook_body(pid: str, fhir: str, hook_instance: str = "bench") -> dict[str, Any]:
    """An order-sign request for an i-Port draft, the service to read everything from ``fhir``."""
    draft = {
        "resourceType": "DeviceRequest",
        "id": "draft",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "codeCodeableConcept": {"text": "i-Port Advance"},
    }
    return {
        "hook": "order-sign",
        "hookInstance": hook_instance,
        "fhirServer": fhir,
        "context": {
            "userId": "Practitioner/bench",
            "patientId": pid,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
        },
    }


def measure(service_url: str, body: dict[str, Any], n: int) -> list[float]:
    session = requests.Session()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = session.post(
            f"{service_url}/cds-services/iport-advance-order-sign", json=body, timeout=30
        )
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.text
        assert (
            resp.json()["cards"][0]["extension"]["iport-cds.eligibility"]["outcome"]
            == "meets-criteria"
        )
    return times


def _pages(base: str, pid: str) -> int:
    """How many pages the service's own HbA1c query takes for this patient."""
    vsl = load_value_sets()
    template = prefetch_templates(vsl, "urn:x", ())["hba1c"]
    url: str | None = f"{base}/{fill(template, pid)}"
    pages = 0
    while url:
        bundle = requests.get(url, timeout=30).json()
        pages += 1
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
    return pages


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--latency-ms", type=float, default=100)
    args = ap.parse_args()
    with FhirTestServer(ensure_sekmet(DEFAULT_VENV)) as fhir:
        one_page = resources(60)
        fhir.load(transaction(one_page))
        # A second patient whose HbA1c search spans two pages of the service's page size.
        two_pid = "bench-two-pages"
        page_size = PAGE_SIZE
        many = []
        for r in resources(5):
            r = dict(r, id=f"2p-{r['id']}")
            if r["resourceType"] == "Patient":
                r["id"] = two_pid
            else:
                r["subject"] = {"reference": f"Patient/{two_pid}"}
            many.append(r)
        for i in range(page_size + 1):
            many.append(
                {
                    "resourceType": "Observation",
                    "id": f"2p-a1c-{i}",
                    "status": "final",
                    "subject": {"reference": f"Patient/{two_pid}"},
                    "code": {
                        "coding": [{"system": "http://snomed.info/sct", "code": "999791000000106"}]
                    },
                    "effectiveDateTime": f"20{10 + i % 14:02d}-0{1 + i % 9}-01",
                    "valueQuantity": {"value": 60, "unit": "mmol/mol", "code": "mmol/mol"},
                }
            )
        fhir.load(transaction(many))
        pages = _pages(fhir.base_url, two_pid)
        rows = []
        core = load_core(policy_names())
        served = {v for p in core.policies.values() for v in p.value_sets}
        reads = len(prefetch_templates(core.vsl, core.criteria_system, served))
        base_p50: dict[str, float] = {}
        # Longer deadline and timeouts than the defaults (4 s, 3 s, 1 s): the first reads of a
        # cold sekmet on a busy machine can take longer, and a refused warm-up stops the run.
        settings = {
            "FHIR_ALLOW_LOOPBACK": "true",
            "LOG_LEVEL": '"WARNING"',
            "FHIR_DEADLINE_SECONDS": "20",
            "FHIR_READ_TIMEOUT_SECONDS": "15",
            "FHIR_CONNECT_TIMEOUT_SECONDS": "5",
        }
        with ServiceProcess(settings) as svc:
            # The same path with no added latency: what the FHIR server and the service cost.
            for latency_ms in (0.0, args.latency_ms):
                proxy, proxied = start_proxy(fhir.base_url, latency_ms / 1000)
                for label, pid in (
                    ("one page per search", PID),
                    ("HbA1c search in 2 pages", two_pid),
                ):
                    measure(svc.url, hook_body(pid, proxied), 3)  # warm up connections
                    times = sorted(measure(svc.url, hook_body(pid, proxied), args.requests))
                    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
                    added = "—"
                    if latency_ms:
                        added = f"{(p50 - base_p50[label]) / latency_ms:.2f}"
                    else:
                        base_p50[label] = p50
                    rows.append([f"{latency_ms:.0f} ms", label, f"{p50:.0f}", f"{p99:.0f}", added])
                    print(latency_ms, label, f"p50 {p50:.0f} ms p99 {p99:.0f} ms", flush=True)
                proxy.shutdown()
    write_table(
        "fetch",
        f"Fetch path: no prefetch, FHIR server + {args.latency_ms:.0f} ms per request",
        ["added latency", "case", "p50 ms", "p99 ms", "round trips added (p50)"],
        rows,
        f"order-sign, service under gunicorn (deploy/gunicorn.conf.py), sekmet behind a {args.latency_ms:.0f} ms "
        f"proxy (bench/latency_proxy.py); {reads} reads (every prefetch key of the three policies) "
        f"sent concurrently; pages in the two-page case: {pages}; "
        f"{args.requests} sequential requests; `.venv/bin/python bench/fetch_path.py`; {machine()}",
    )


if __name__ == "__main__":
    main()
