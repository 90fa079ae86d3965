"""Benchmark 10: the hook path against a bare endpoint, and the cost of each policy served.

    .venv/bin/python bench/hook_path.py [--rounds 5] [--requests 300] [--resources 160] [--detail lean]
    .venv/bin/python bench/hook_path.py --client wrk [--seconds 10]

An order-select for an i-Port draft with every prefetch key filled (``--resources``
resources), sent by 4 clients at once (Python threads on keep-alive sessions, 300 requests a
server a round; or ``--client wrk``, which needs Debian's wrk, for a fixed time) to four servers
under the production gunicorn configuration (deploy/gunicorn.conf.py): the bare endpoint
(bench/bare_app.py: parses the same body, returns a fixed card) and the service serving 1,
2 and 3 policy files (POLICY_DIR: i-Port Advance; + NICE TA151 pump; + NICE TA943 hybrid
closed loop: each added policy is a companion whose note the i-Port card may carry). The
servers are measured in turn, round after round, so each ratio compares figures taken
under the same machine noise. On this 2-core machine the Python clients take about a core
themselves, so servers and clients share the cores: the workers' CPU per request is about 1.4 ×
what it is under wrk (bench/http_overhead.py), and round-to-round figures vary by a quarter;
the note gives the per-round ratios beside their median.

Targets: service p50 ≤ 2.0 × bare p50 (three policies); service p99 ≤ 3 × its p50; each
added policy file costs ≤ 15 % of the one-policy p50.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_overhead import (  # noqa: E402
    SERVICE_PATH,
    Gunicorn,
    order_select_file,
    server_arguments,
    wrk,
)
from bench.report import machine, write_table  # noqa: E402
from bench.workload import detail_argument  # noqa: E402
from policy.loading import POLICY_DIR, policy_names  # noqa: E402

CLIENTS = 4


def policy_dirs(tmp: Path) -> list[Path]:
    """Folders serving the first 1, 2 and 3 shipped policy files (in their list order)."""
    names = policy_names(POLICY_DIR)
    out = []
    for n in range(1, len(names) + 1):
        folder = tmp / f"policies-{n}"
        folder.mkdir()
        for name in names[:n]:
            shutil.copy(POLICY_DIR / f"{name}.json", folder)
        out.append(folder)
    return out


def python_clients(url: str, body: bytes, requests_total: int) -> dict[str, float]:
    """``requests_total`` requests from CLIENTS threads, each on its own keep-alive session;
    p50 and p99 of their latencies (ms) and the rate achieved."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        for _ in range(n):
            t0 = time.perf_counter()
            answer = session.post(url, data=body, headers=headers, timeout=30)
            elapsed = (time.perf_counter() - t0) * 1000
            assert answer.status_code == 200, answer.status_code
            with lock:
                latencies.append(elapsed)

    started = time.perf_counter()
    share = requests_total // CLIENTS
    threads = [threading.Thread(target=client, args=(share,)) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[max(0, math.ceil(len(latencies) * 0.99) - 1)],
        "rps": len(latencies) / wall,
        "requests": len(latencies),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--resources", type=int, default=160)
    detail_argument(ap)
    ap.add_argument("--requests", type=int, default=300, help="per server per round (python)")
    ap.add_argument(
        "--client",
        choices=["python", "wrk"],
        default="python",
        help="4 Python clients on keep-alive sessions (as the issue's figures), or wrk -c4",
    )
    args = server_arguments(ap)
    body = order_select_file(args.resources, args.detail)
    tmp = body.parent
    targets = {"bare": Gunicorn("bench.bare_app:create_app()", args.workers, args.threads)}
    for n, folder in enumerate(policy_dirs(tmp), start=1):
        targets[f"{n} policies"] = Gunicorn(
            "service:create_app()", args.workers, args.threads, {"POLICY_DIR": str(folder)}
        )
    services = [name for name in targets if name != "bare"]
    try:
        for name in services:
            answer = requests.post(
                targets[name].url + SERVICE_PATH,
                data=body.read_bytes(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            outcome = answer.json()["cards"][0]["extension"]["iport-cds.eligibility"]["outcome"]
            assert outcome == "meets-criteria", (name, outcome)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for r in range(args.rounds):
            for name, target in targets.items():
                url = target.url + SERVICE_PATH
                cpu_before = target.worker_cpu_s()
                measured = (
                    wrk(url, body, CLIENTS, args.seconds)
                    if args.client == "wrk"
                    else python_clients(url, body.read_bytes(), args.requests)
                )
                served = measured.pop("requests")
                measured["cpu_ms"] = (target.worker_cpu_s() - cpu_before) * 1000 / served
                runs[name].append(measured)
                print(f"round {r + 1} {name}: {runs[name][-1]}", flush=True)
    finally:
        for target in targets.values():
            target.stop()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    bare, one = runs["bare"], runs[services[0]]

    def ratio(a: list[dict[str, float]], b: list[dict[str, float]], key: str = "p50") -> float:
        """The median over rounds of a's figure over b's, both from the same round."""
        return med([x[key] / y[key] for x, y in zip(a, b, strict=True)])

    rows: list[list[object]] = []
    for name, measured in runs.items():
        row: list[object] = [
            name,
            f"{med([x['p50'] for x in measured]):.2f}",
            f"{med([x['p99'] for x in measured]):.2f}",
            f"{med([x['rps'] for x in measured]):.0f}",
            f"{med([x['cpu_ms'] for x in measured]):.2f}",
            "—" if name == "bare" else f"{ratio(measured, bare):.2f}",
            "—" if name == "bare" else f"{ratio(measured, bare, 'cpu_ms'):.2f}",
            "—",
        ]
        if name in services[1:]:
            fewer = runs[services[services.index(name) - 1]]

            def added(key: str) -> float:
                """What the policy adds, over the one-policy figure (median of the rounds)."""
                return 100 * med(
                    [
                        (x[key] - y[key]) / z[key]
                        for x, y, z in zip(measured, fewer, one, strict=True)  # noqa: B023
                    ]
                )

            row[-1] = f"{added('p50'):+.0f} % ({added('cpu_ms'):+.0f} % CPU)"
        rows.append(row)
    full = runs[services[-1]]
    ratio_full = ratio(full, bare)
    each_round = ", ".join(f"{x['p50'] / y['p50']:.2f}" for x, y in zip(full, bare, strict=True))
    tail = med([x["p99"] / x["p50"] for x in full])
    clients, per_round = (
        (f"wrk -t2 -c{CLIENTS}", f"{args.seconds} s")
        if args.client == "wrk"
        else ("Python threads, a keep-alive session each", f"{args.requests} requests")
    )
    command = (
        "`.venv/bin/python bench/hook_path.py"
        + (" --client wrk" if args.client == "wrk" else "")
        + (" --detail lean" if args.detail == "lean" else "")
        + "`"
    )
    note = (
        f"order-select, {args.resources}-resource prefetch ({body.stat().st_size // 1024} KiB, "
        f"{args.detail} resources: bench/workload.py), "
        f"{CLIENTS} clients ({clients}); gunicorn {args.workers} workers × "
        f"{args.threads} threads (deploy/gunicorn.conf.py); {per_round} per server per "
        f"round, {args.rounds} rounds, servers in turn; medians of the rounds; "
        f"**3 policies / bare p50 {ratio_full:.2f}** (target ≤ 2.0; rounds: {each_round}), "
        f"**p99 / p50 {tail:.2f}** "
        f"(target ≤ 3); 1-minute load average {os.getloadavg()[0]:.1f} at the end; "
        f"{command}; {machine()}"
    )
    print(note)
    write_table(
        "hook_path"
        + ("" if args.client == "python" else "_wrk")
        + ("" if args.detail == "ehr" else "_lean"),
        "The hook path against a bare endpoint, by policies served",
        [
            "server",
            "p50 ms",
            "p99 ms",
            "requests/s",
            "worker CPU ms per request",
            "p50 / bare",
            "CPU / bare",
            "added p50 (CPU) / 1-policy p50 (CPU)",
        ],
        rows,
        note,
    )


if __name__ == "__main__":
    main()
