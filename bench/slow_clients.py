"""Benchmark 7: 300 clients drip their headers and 300 their bodies; does anyone else notice?

    .venv/bin/python bench/slow_clients.py [--seconds 20] [--headers 300] [--bodies 300]

Everything runs on loopback (the service under gunicorn with deploy/gunicorn.conf.py, 2
workers × 8 threads) and stops by itself: a baseline phase, then ``--seconds`` with the slow
clients connected, each sending one more byte a second (tests/deploy/slow_sockets.py). In both
phases two clients send hooks (the golden order-sign request, its prefetch complete) as fast
as they are answered, and a probe asks /healthz every 20 ms on a new connection, as
Kubernetes does.

Targets (issue 22: slow clients cannot take the service's threads at any stage of a request):

- hooks keep answering at their baseline latency (p95 within 1.5 × baseline + 50 ms), all 200;
- /healthz p99 ≤ 150 ms, all 200.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_table  # noqa: E402
from bench.slow_origin import Recorder, probe  # noqa: E402
from tests.deploy.slow_sockets import HOOK, slow_clients  # noqa: E402
from tests.service_process import ServiceProcess  # noqa: E402

BODY = json.loads((ROOT / "tests/golden/order-sign-type1-meets.request.json").read_text())


def hooks(url: str, until: float, rec: Recorder) -> None:
    with requests.Session() as session:
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                status = session.post(url, json=BODY, timeout=30).status_code
            except requests.RequestException:
                status = 0
            rec.add(time.monotonic() - started, status)


def run_phase(url: str, seconds: float, clients: int) -> tuple[Recorder, Recorder]:
    hook, health = Recorder(), Recorder()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=hooks, args=(url + HOOK, until, hook)) for _ in range(clients)
    ]
    threads.append(threading.Thread(target=probe, args=(url + "/healthz", until, health)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)  # each request has a client timeout: bounded
    return hook, health


def row(name: str, rec: Recorder, target: str) -> list[object]:
    return [name, len(rec.times), dict(rec.statuses), f"{rec.pct(0.5):.0f}",
            f"{rec.pct(0.95):.0f}", f"{rec.pct(0.99):.0f}",
            f"{max(rec.times) * 1000:.0f}" if rec.times else "—", target]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--baseline-seconds", type=float, default=8)
    ap.add_argument("--headers", type=int, default=300)
    ap.add_argument("--bodies", type=int, default=300)
    ap.add_argument("--clients", type=int, default=2)
    args = ap.parse_args()
    env = {"BODY_READ_SECONDS": str(args.seconds + 30), "LOG_LEVEL": '"WARNING"', "ACCESS_LOG": ""}
    with ServiceProcess(env, workers=2) as svc:
        run_phase(svc.url, 2, args.clients)  # warm up
        base, base_health = run_phase(svc.url, args.baseline_seconds, args.clients)
        with slow_clients(svc.port, args.headers, args.bodies):
            time.sleep(1)  # every slow client connected and sending
            loaded, health = run_phase(svc.url, args.seconds, args.clients)
    limit_ms = 1.5 * base.pct(0.95) + 50
    hooks_ok = loaded.pct(0.95) <= limit_ms and set(loaded.statuses) == {200}
    health_ok = health.pct(0.99) <= 150 and set(health.statuses) == {200}
    rows = [
        row("hooks, baseline", base, "—"),
        row(f"hooks, {args.headers} + {args.bodies} slow clients", loaded,
            "yes" if hooks_ok else "**no**"),
        row("/healthz, baseline", base_health, "—"),
        row(f"/healthz, {args.headers} + {args.bodies} slow clients", health,
            "yes" if health_ok else "**no**"),
    ]  # fmt: skip
    for r in rows:
        print(" | ".join(str(c) for c in r), flush=True)
    write_table(
        "slow_clients",
        "Slow clients: headers and bodies a byte a second",
        ["traffic", "requests", "statuses", "p50 ms", "p95 ms", "p99 ms", "max ms", "target met?"],
        rows,
        f"service under gunicorn (deploy/gunicorn.conf.py, 2 workers × 8 threads, the buffered "
        f"gthread worker); {args.headers} connections dripping their headers and {args.bodies} "
        f"their bodies, a byte a second each; {args.clients} clients sending hooks (complete "
        f"prefetch), /healthz every 20 ms on a new connection; baseline "
        f"{args.baseline_seconds:g} s, then {args.seconds:g} s; "
        f"`.venv/bin/python bench/slow_clients.py`; {machine()}",
    )


if __name__ == "__main__":
    main()
