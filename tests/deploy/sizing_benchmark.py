"""Sizing benchmark: the real service under gunicorn, driven from this machine's loopback.

    .venv/bin/python -m tests.deploy.sizing_benchmark [--requests 2000] [--concurrency 16]

Two scenarios, both order-sign for a patient who meets the criteria:

- ``prefetch``: the EHR sends every prefetch key, so the service only computes (CPU-bound).
- ``fetch``: no prefetch; the service reads 7 searches from a loopback FHIR server that answers
  each after ``--fhir-delay`` seconds (latency-bound: threads wait, cores idle).

Prints throughput, latency percentiles and worker memory; docs/deploying.md quotes the figures.
The load generator shares the machine's cores with the service, so figures are a lower bound.
Bounded in count and time; talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests.builders import (
    iport_device_request,
    type1_meets,
)
from tests.deploy.fhir_stub import SlowFhirServer
from tests.hooks import SERVICE, hook_request
from tests.service_process import ServiceProcess

MEETS = type1_meets()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            out += [int(c) for c in children.read_text().split()]
    return out


def drive(
    url: str, body: Callable[[], dict[str, Any]], total: int, concurrency: int, budget_s: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + budget_s
    local = threading.local()

    def one(_: int) -> None:
        nonlocal errors
        if time.monotonic() > deadline:
            return
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        try:
            ok = session.post(url, json=body(), timeout=30).status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            errors += 0 if ok else 1

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / wall,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--fhir-delay", type=float, default=0.05)
    parser.add_argument("--fhir-pool", type=int, default=16)
    parser.add_argument("--budget-seconds", type=float, default=120)
    args = parser.parse_args(argv)
    draft = iport_device_request()
    env = {
        "FHIR_ALLOW_LOOPBACK": "true",
        "THREADS": str(args.threads),
        "FHIR_POOL_SIZE": str(args.fhir_pool),
        "LOG_LEVEL": "WARNING",
    }
    with (
        SlowFhirServer(delay_s=args.fhir_delay) as fhir,
        ServiceProcess(env, workers=args.workers) as svc,
    ):
        url = f"{svc.url}/cds-services/{SERVICE['order-sign']}"
        scenarios = {
            "prefetch": lambda: hook_request("order-sign", resources=MEETS, drafts=[draft]),
            "fetch": lambda: hook_request("order-sign", drafts=[draft], fhir_server=fhir.base_url),
        }
        print(
            f"gunicorn: {args.workers} workers x {args.threads} threads; "
            f"{args.concurrency} concurrent clients; FHIR delay {args.fhir_delay * 1000:.0f} ms, "
            f"pool {args.fhir_pool}"
        )
        for name, body in scenarios.items():
            drive(url, body, min(200, args.requests), args.concurrency, 30)  # warm up
            result = drive(url, body, args.requests, args.concurrency, args.budget_seconds)
            print(
                f"{name:9s} {result['requests']:6.0f} req  {result['errors']:3.0f} errors  "
                f"{result['throughput_rps']:7.1f} req/s  p50 {result['p50_ms']:6.1f} ms  "
                f"p95 {result['p95_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms"
            )
        master = svc._proc.pid if svc._proc else 0
        workers = _children(master)
        rss = [_rss_mib(pid) for pid in workers]
        print(
            f"memory: master {_rss_mib(master):.0f} MiB RSS, workers "
            + ", ".join(f"{r:.0f}" for r in rss)
            + " MiB RSS"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
