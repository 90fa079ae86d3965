"""The pure core's CPU per request and per person, in process: reading a record into facts and
deciding on it.

    .venv/bin/python bench/core_cost.py [--rounds 4] [--against DIR [--label TEXT]]

Hook: an order-select with a 160-resource prefetch (bench/evaluation.py's request), gathered
once; then, per request, ``read_record`` and ``decide`` for the i-Port policy with its two
companions, each on a record of its own (a request reads its own record, so what is kept
with one record is never reused by the next). Population: 2,000 synthetic patients
(``demo.population``), each read (``read_record``) and assessed for the three policies, as a
population worker does. CPU time (``time.process_time``), medians.

``--against DIR``: the same measurement of another checkout of the project (for instance a
``git archive main`` unpacked in DIR), interleaved with this one round by round in separate
processes, so that load from other work falls on both alike; the table gives both and the
ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
PATIENTS = 2000


def measure(code: Path) -> dict[str, float]:
    """One round in this process, the project's modules imported from ``code``."""
    sys.path.insert(0, str(code))
    import logging
    from dataclasses import replace
    from datetime import UTC, date, datetime

    import orjson

    logging.disable(logging.CRITICAL)
    from bench.workload import order_select
    from demo.population import generate_population
    from facts.london import london_day
    from facts.model import PatientRecord
    from fhirdata.prefetch import gather
    from policy.decide import Evaluations, decide, read_record
    from policy.engine import assess
    from service import create_app
    from service.evaluation import _client_factory
    from service.hookrequest import parse_hook_request
    from service.runtime import tune_gc
    from service.state import state_of
    from service.tenants import FhirAccess

    app = create_app({"REQUIRE_AUTH": False, "LOG_LEVEL": "ERROR"})
    tune_gc()
    rt = state_of(app).runtime
    service = rt.services["iport-advance-order-select"]
    today = london_day(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    req = parse_hook_request(orjson.loads(orjson.dumps(order_select(160))), "order-select")
    access = FhirAccess.deployment(rt.server_policy)
    client = _client_factory(rt, req, access, None)
    got = gather(req.prefetch, rt.templates, req.patient_id, client, fhir_server=req.fhir_server)
    policy = rt.policies[service.policy]
    companions = [rt.policies[c] for c in policy.companions if c in rt.policies]

    def read() -> PatientRecord:
        return read_record(rt.core, got.resources, req.patient_id, got.warnings, got.not_theirs)

    record = read()

    def decide_fresh() -> object:
        mine = replace(record)  # a record of its own, as each request has
        return decide(mine, policy, today, companions, Evaluations(mine, today))

    with tempfile.TemporaryDirectory() as tmp:
        generate_population(Path(tmp), PATIENTS, today=date(2026, 11, 21))
        patients: dict[str, dict[str, Any]] = {}
        theirs: dict[str, list[Any]] = {}
        for f in sorted(Path(tmp).glob("*.ndjson")):
            for line in f.read_bytes().splitlines():
                r = orjson.loads(line)
                if r["resourceType"] == "Patient":
                    patients[r["id"]] = r
                    continue
                ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
                theirs.setdefault(ref.rsplit("/", 1)[-1], []).append(r)
    people = [(pid, [p, *theirs.get(pid, [])]) for pid, p in patients.items()]
    policies = list(rt.core.policies.values())

    def population_read() -> None:
        for pid, resources in people:
            read_record(rt.core, resources, pid)

    def population() -> None:
        for pid, resources in people:
            one = read_record(rt.core, resources, pid)
            for p in policies:
                assess(p, one, today)

    def cpu_us(f: Callable[[], object], n: int) -> float:
        for _ in range(max(1, n // 10)):
            f()
        runs = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(n):
                f()
            runs.append((time.process_time() - started) / n * 1e6)
        return statistics.median(runs)

    return {
        "read_record": cpu_us(read, 300),
        "decide": cpu_us(decide_fresh, 300),
        "person_read": cpu_us(population_read, 1) / len(people),
        "person_read_assess": cpu_us(population, 1) / len(people),
    }


ROWS = [
    ("read_record", "hook, 160 resources: read_record, µs a request"),
    ("decide", "hook, 160 resources: decide with two companions, µs a request"),
    ("hook", "hook: read_record + decide, µs a request"),
    ("person_read", f"population ({PATIENTS:,} patients): read_record, µs a person"),
    ("person_read_assess", "population: read_record + assess × 3 policies, µs a person"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--against", type=Path, help="another checkout to compare, interleaved")
    ap.add_argument("--label", help="what the other checkout is (default: its path)")
    ap.add_argument("--one-round", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_round:
        print(json.dumps(measure(args.one_round)))
        return
    codes = {"this": HERE, **({"against": args.against.resolve()} if args.against else {})}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
    for i in range(args.rounds):
        for name, code in codes.items():
            out = subprocess.run(
                [sys.executable, __file__, "--one-round", str(code)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            figures["hook"] = figures["read_record"] + figures["decide"]
            rounds[name].append(figures)
            print(f"round {i + 1} {name}: " + ", ".join(f"{k} {v:.0f}" for k, v in figures.items()))
    med = {n: {k: statistics.median(r[k] for r in rs) for k, _ in ROWS} for n, rs in rounds.items()}
    header = ["CPU, median of rounds", "this checkout"]
    if args.against:
        header += [args.label or str(args.against), "this / that"]
    rows = []
    for key, label in ROWS:
        row: list[object] = [label, f"{med['this'][key]:.0f}"]
        if args.against:
            row += [f"{med['against'][key]:.0f}", f"{med['this'][key] / med['against'][key]:.2f}"]
        rows.append(row)
        print(" | ".join(str(c) for c in row))
    sys.path.insert(0, str(HERE))
    from bench.report import machine, write_table

    write_table(
        "core_cost",
        "The pure core's CPU per request and per person (read_record, decide, assess)",
        header,
        rows,
        f"{args.rounds} interleaved rounds, each the median of 5 runs; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end; `.venv/bin/python bench/core_cost.py"
        f"{' --against ' + str(args.against) if args.against else ''}`"
        f"{' (' + args.label + ')' if args.label else ''}; {machine()}",
    )


if __name__ == "__main__":
    main()
