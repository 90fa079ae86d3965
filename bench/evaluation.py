"""Benchmark 1: in-process cost from request JSON to response JSON, by prefetch size.

    .venv/bin/python bench/evaluation.py [--repeat 200] [--runs 5]

Uses the real app (Flask test client bypassed: the same functions the route calls, plus
JSON parse and serialise), so what is measured is the service's own work per request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine, write_table
from bench.workload import order_select
from service import create_app
from service.evaluation import run_hook
from service.hookrequest import parse_hook_request
from service.runtime import tune_gc
from service.state import state_of

SIZES = (50, 160, 500, 5000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200, help="requests per run (fewer for 5000)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    app = create_app({"REQUIRE_AUTH": False, "LOG_LEVEL": "WARNING"})
    tune_gc()  # as deploy/gunicorn.conf.py does in the master before forking workers
    runtime = state_of(app).runtime
    service = runtime.services["iport-advance-order-select"]
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    rows = []
    for size in SIZES:
        body = orjson.dumps(order_select(size))
        repeat = max(20, args.repeat * 500 // max(size, 500))
        run_p50, run_p99, run_cpu = [], [], []
        for _ in range(args.runs):
            times, cpu = [], []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                req = parse_hook_request(orjson.loads(body), "order-select")
                result = run_hook(runtime, service, req, now=now, new_uuid=lambda: "u")
                orjson.dumps(result.body)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            assert result.outcome == "meets-criteria", result.outcome
            times.sort()
            run_p50.append(statistics.median(times))
            run_p99.append(times[int(len(times) * 0.99) - 1])
            run_cpu.append(statistics.median(cpu))
        p50, p99 = statistics.median(run_p50), statistics.median(run_p99)
        cpu_p50 = statistics.median(run_cpu)
        rows.append(
            [
                size,
                f"{len(body) / 1024:.0f} KiB",
                f"{p50:.2f}",
                f"{p99:.2f}",
                f"{cpu_p50:.2f}",
                f"{p50 / size * 1000:.1f}",
            ]
        )
        print(f"{size:>5} resources: p50 {p50:.2f} ms, p99 {p99:.2f} ms, CPU p50 {cpu_p50:.2f} ms")
    write_table(
        "evaluation",
        "In-process evaluation cost (request JSON → response JSON), order-select with an i-Port draft",
        [
            "resources in prefetch",
            "request size",
            "p50 ms",
            "p99 ms",
            "CPU ms p50",
            "µs per resource (p50)",
        ],
        rows,
        f"median over {args.runs} runs; three policies (the i-Port card reads the NICE ones for "
        f"its note); CPU: this process's CPU time, which other load on the machine inflates "
        f"less than wall time; 1-minute load average {os.getloadavg()[0]:.1f} at the end; "
        f"`.venv/bin/python bench/evaluation.py`; {machine()}",
    )


if __name__ == "__main__":
    main()
