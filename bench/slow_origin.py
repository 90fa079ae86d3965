"""Benchmark 6: one FHIR server drips its answers a byte a second; does anyone else notice?

    .venv/bin/python bench/slow_origin.py [--seconds 20] [--slow-clients 16] [--healthy-clients 2]

Everything runs on loopback (the service under gunicorn with deploy/gunicorn.conf.py, two stub
FHIR servers from tests/deploy/fhir_stub.py) and stops by itself: a baseline phase with only
the healthy tenant's hooks, then ``--seconds`` with ``--slow-clients`` clients sending hooks
for the dripping server as fast as they are answered. Throughout, a probe asks /healthz every
20 ms on a new connection, as Kubernetes does.

Targets (issue: one slow party must not take the service down):

- hooks for the healthy FHIR server keep answering at their baseline latency (p95 within
  1.5 × baseline + 50 ms) and are all answered 200;
- every hook for the dripping server ends by the FHIR deadline + 0.5 s (412, or 503 at once
  when that server already has its share of the worker's hook slots);
- /healthz p99 stays under 100 ms.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fetch_path import hook_body  # noqa: E402
from bench.report import machine, write_table  # noqa: E402
from tests.deploy.fhir_stub import SlowFhirServer  # noqa: E402
from tests.service_process import ServiceProcess  # noqa: E402

DEADLINE_S = 4.0
HOOK = "/cds-services/iport-advance-order-sign"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.statuses: Counter[int] = Counter()

    def add(self, seconds: float, status: int) -> None:
        with self.lock:
            self.times.append(seconds)
            self.statuses[status] += 1

    def pct(self, q: float) -> float:
        times = sorted(self.times)
        if not times:
            return float("nan")
        return times[min(len(times) - 1, int(len(times) * q))] * 1000


def hooks(url: str, fhir: str, until: float, rec: Recorder, offset: int) -> None:
    n = offset
    with requests.Session() as session:
        while time.monotonic() < until:
            n += 1
            started = time.monotonic()
            try:
                status = session.post(
                    url, json=hook_body(f"bench-{n}", fhir, f"bench-{n}"), timeout=30
                ).status_code
            except requests.RequestException:
                status = 0
            rec.add(time.monotonic() - started, status)


def probe(url: str, until: float, rec: Recorder) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            status = requests.get(url, timeout=10).status_code  # a new connection each time
        except requests.RequestException:
            status = 0
        rec.add(time.monotonic() - started, status)
        time.sleep(0.02)


def run_phase(
    svc: ServiceProcess,
    healthy_fhir: str,
    slow_fhir: str | None,
    seconds: float,
    healthy_clients: int,
    slow_clients: int,
) -> tuple[Recorder, Recorder, Recorder]:
    healthy, slow, health = Recorder(), Recorder(), Recorder()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=hooks, args=(svc.url + HOOK, healthy_fhir, until, healthy, i * 10**6)
        )
        for i in range(healthy_clients)
    ]
    if slow_fhir:
        threads += [
            threading.Thread(
                target=hooks, args=(svc.url + HOOK, slow_fhir, until, slow, (100 + i) * 10**6)
            )
            for i in range(slow_clients)
        ]
    threads.append(threading.Thread(target=probe, args=(svc.url + "/healthz", until, health)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)  # each request has a 30 s client timeout: bounded
    return healthy, slow, health


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--baseline-seconds", type=float, default=8)
    ap.add_argument("--slow-clients", type=int, default=16)
    ap.add_argument("--healthy-clients", type=int, default=2)
    ap.add_argument("--drip-s", type=float, default=1.0)
    args = ap.parse_args()
    with (
        SlowFhirServer(drip_s=args.drip_s) as drip,
        SlowFhirServer() as healthy_fhir,
    ):
        env = {
            "FHIR_SERVER_ALLOWLIST": f'["{drip.base_url}", "{healthy_fhir.base_url}"]',
            "FHIR_DEADLINE_SECONDS": str(DEADLINE_S),
            "LOG_LEVEL": '"WARNING"',
            "ACCESS_LOG": "",
        }
        with ServiceProcess(env, workers=2) as svc:
            run_phase(svc, healthy_fhir.base_url, None, 2, args.healthy_clients, 0)  # warm up
            base, _, base_health = run_phase(
                svc, healthy_fhir.base_url, None, args.baseline_seconds, args.healthy_clients, 0
            )
            ok, slow, health = run_phase(
                svc,
                healthy_fhir.base_url,
                drip.base_url,
                args.seconds,
                args.healthy_clients,
                args.slow_clients,
            )
        time.sleep(2.5)  # the stub notices a dropped connection at its next byte
        dropped = drip.dropped
    limit_ms = 1.5 * base.pct(0.95) + 50
    slow_max = max(slow.times) * 1000 if slow.times else float("nan")
    rows = [
        ["healthy tenant's hooks, baseline", len(base.times), dict(base.statuses),
         f"{base.pct(0.5):.0f}", f"{base.pct(0.95):.0f}", f"{base.pct(0.99):.0f}",
         f"{max(base.times) * 1000:.0f}", "—"],
        ["healthy tenant's hooks, one server dripping", len(ok.times), dict(ok.statuses),
         f"{ok.pct(0.5):.0f}", f"{ok.pct(0.95):.0f}", f"{ok.pct(0.99):.0f}",
         f"{max(ok.times) * 1000:.0f}",
         "yes" if ok.pct(0.95) <= limit_ms and set(ok.statuses) == {200} else "**no**"],
        ["dripping server's hooks", len(slow.times), dict(slow.statuses),
         f"{slow.pct(0.5):.0f}", f"{slow.pct(0.95):.0f}", f"{slow.pct(0.99):.0f}",
         f"{slow_max:.0f}",
         "yes" if slow_max <= (DEADLINE_S + 0.5) * 1000 and set(slow.statuses) <= {412, 503}
         else "**no**"],
        ["/healthz, baseline", len(base_health.times), dict(base_health.statuses),
         f"{base_health.pct(0.5):.0f}", f"{base_health.pct(0.95):.0f}",
         f"{base_health.pct(0.99):.0f}", f"{max(base_health.times) * 1000:.0f}", "—"],
        ["/healthz, one server dripping", len(health.times), dict(health.statuses),
         f"{health.pct(0.5):.1f}", f"{health.pct(0.95):.1f}", f"{health.pct(0.99):.1f}",
         f"{max(health.times) * 1000:.0f}", "yes" if health.pct(0.99) < 100 else "**no**"],
    ]  # fmt: skip
    for row in rows:
        print(" | ".join(str(c) for c in row), flush=True)
    print(f"connections the service dropped at the deadline: {dropped}")
    write_table(
        "slow_origin",
        "One FHIR server dripping a byte a second, another healthy",
        ["traffic", "requests", "statuses", "p50 ms", "p95 ms", "p99 ms", "max ms", "target met?"],
        rows,
        f"service under gunicorn (deploy/gunicorn.conf.py, 2 workers × 8 threads: 6 hooks in "
        f"flight per worker, 4 per FHIR server), FHIR deadline {DEADLINE_S:.0f} s; "
        f"{args.healthy_clients} clients for the healthy server, {args.slow_clients} for the "
        f"dripping one ({args.drip_s:g} s per byte), /healthz every 20 ms on a new connection; "
        f"baseline {args.baseline_seconds:g} s, then {args.seconds:g} s; connections dropped at "
        f"the deadline: {dropped}; `.venv/bin/python bench/slow_origin.py`; {machine()}",
    )


if __name__ == "__main__":
    main()
