"""Where an order-select's time goes, in process: a cProfile of the hook path by stage.

    .venv/bin/python bench/profile_hook.py [--resources 160] [--requests 300]

The same work as one call to the service minus Flask and gunicorn (bench/evaluation.py's
path): parse the body, gather and bind the prefetch, read the record into facts, decide the
i-Port policy with its companions (three policies), build the card, encode the answer.
Prints each stage's share of the profiled time and the functions that spend the most
themselves. Profiling slows Python calls, so shares are what to read, not milliseconds.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workload import order_select
from service import create_app
from service.evaluation import run_hook
from service.hookrequest import parse_hook_request
from service.runtime import tune_gc
from service.state import state_of

# (label, file suffix, function name) of each stage, in the order a request passes them.
STAGES = [
    ("parse the body (orjson)", "~", "orjson.loads"),
    ("hook request checks", "service/hookrequest.py", "parse_hook_request"),
    ("gather + bind the prefetch (fhirdata)", "fhirdata/prefetch.py", "gather"),
    ("read the record into facts", "policy/decide.py", "read_record"),
    ("assess the policies (criteria, pathways, outcome)", "policy/engine.py", "assess"),
    ("explain the decisions (decisive unknowns, reasons)", "policy/engine.py", "explain"),
    ("  of which decisive unknowns", "policy/decisive.py", "decisive_unknowns"),
    ("the companions, for the card's note", "policy/decide.py", "companion_note"),
    ("build the card (cds_cards)", "cds_cards/render.py", "eligibility_card"),
    ("encode the answer (orjson)", "~", "orjson.dumps"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=160)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    app = create_app({"REQUIRE_AUTH": False, "LOG_LEVEL": "WARNING"})
    tune_gc()
    runtime = state_of(app).runtime
    service = runtime.services["iport-advance-order-select"]
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    body = orjson.dumps(order_select(args.resources))

    def one() -> None:
        req = parse_hook_request(orjson.loads(body), "order-select")
        result = run_hook(runtime, service, req, now=now, new_uuid=lambda: "u")
        orjson.dumps(result.body)

    for _ in range(50):
        one()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.requests):
        one()
    profile.disable()
    stats = pstats.Stats(profile)
    raw = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"order-select, {args.resources} resources, {len(runtime.policies)} policies, "
        f"{args.requests} requests profiled"
    )
    for label, where, name in STAGES:
        cumulative = sum(
            ct
            for (file, _, fn), (_, _, _, ct, _) in raw.items()
            if file.endswith(where) and (fn == name or (file == "~" and name in fn))
        )
        print(f"{100 * cumulative / total:5.1f} %  {label}")
    print("\nfunctions that spend the most themselves (tottime):")
    stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
