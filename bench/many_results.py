"""Benchmark 7: cost as one prefetch key grows — thousands of HbA1c results for one patient.

    .venv/bin/python bench/many_results.py [--sizes 1000,2000,4000,8000] [--runs 3]

A record with ``n`` HbA1c results, all 78 mmol/mol inside the 12-month lookback, so "remained
high" reads every one and the NICE criteria cite every one as evidence: the case where
comparing every result with every other would make the cost grow with n². The figure to read
is µs per result: flat means linear. Uses the real app and the functions the route calls.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine, write_table
from bench.workload import order_select
from service import create_app
from service.evaluation import run_hook
from service.hookrequest import parse_hook_request
from service.state import state_of

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def request(n: int) -> dict[str, Any]:
    body = order_select(50)
    template = next(
        r["resource"]
        for r in body["prefetch"]["hba1c"]["entry"]
        if r["resource"]["id"] == "a1c-latest"
    )
    start = date(2025, 12, 1)
    entries = []
    for i in range(n):
        r = copy.deepcopy(template)
        r["id"] = f"a1c-{i}"
        r["effectiveDateTime"] = (start + timedelta(minutes=i)).isoformat()
        entries.append({"resource": r})
    body["prefetch"]["hba1c"] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,2000,4000,8000")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    app = create_app({"REQUIRE_AUTH": False, "LOG_LEVEL": "WARNING"})
    runtime = state_of(app).runtime
    service = runtime.services["iport-advance-order-select"]
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        raw = orjson.dumps(request(n))
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            req = parse_hook_request(orjson.loads(raw), "order-select")
            result = run_hook(runtime, service, req, now=NOW, new_uuid=lambda: "u")
            orjson.dumps(result.body)
            times.append((time.perf_counter() - t0) * 1000)
        assert result.outcome == "meets-criteria", result.outcome
        p50 = statistics.median(times)
        rows.append([n, f"{len(raw) / 1024:.0f} KiB", f"{p50:.0f}", f"{p50 / n * 1000:.0f}"])
        print(f"{n:>6} HbA1c results: {p50:.0f} ms, {p50 / n * 1000:.0f} µs per result", flush=True)
    write_table(
        "many_results",
        "Cost as one prefetch key grows: n HbA1c results, every one read and cited",
        ["HbA1c results", "request size", "ms (median)", "µs per result"],
        rows,
        f"median of {args.runs} runs; `.venv/bin/python bench/many_results.py`; {machine()}",
    )


if __name__ == "__main__":
    main()
