"""Where a population run's time goes, by phase: the same command as ``bench/population.py``
(every enabled policy, the demo lookups, the HTML report), timed phase by phase.

    .venv/bin/python bench/population_phases.py [--patients 100000] [--repeat 3] [--workers N]

Generates the synthetic export once, then runs ``iport-cds evaluate --population`` in a fresh
process ``--repeat`` times. Each run prints its wall time, the CPU time of the main process and
of its workers, and for each phase in the main process its wall and CPU seconds: ``index``
(the files indexed: in the workers, merged in the main process), ``people`` (de-duplication),
``run_population`` (index, people, evaluation and the CSV), ``report``, ``tables`` and
``measure`` (the HTML report, its tables as CSV, the MeasureReport). Evaluation is
``run_population`` less ``index`` and ``people``. Compare two versions by running this script
from each checkout in turn, interleaved.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TODAY = "2026-11-21"
# each phase's name, and the function timed for it
PHASES = {
    "index": "population.engine:build_index",
    "people": "population.engine:people_of",
    "run_population": "population.engine:run_population",
    "report": "population.report:render_report",
    "tables": "population.report:tables_csv",
    "measure": "population.measure:measure_report",
}


def timed(fn: Callable[..., Any], label: str, times: dict[str, list[float]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = times.setdefault(label, [0.0, 0.0])
            spent[0] += time.perf_counter() - wall
            spent[1] += time.process_time() - cpu

    return run


def one_run(argv: list[str]) -> None:
    """In this process: the command with its phases timed; one line to stdout."""
    import importlib

    times: dict[str, list[float]] = {}
    for label, where in PHASES.items():
        module, name = where.split(":")
        mod = importlib.import_module(module)
        setattr(mod, name, timed(getattr(mod, name), label, times))
    from cli.main import main

    started = time.perf_counter()
    code = main(argv)
    wall = time.perf_counter() - started
    me = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    phases = " ".join(f"{k} {w:.2f} s/{c:.2f} s CPU" for k, (w, c) in times.items())
    print(
        f"exit {code}; wall {wall:.2f} s; CPU main {me.ru_utime + me.ru_stime:.2f} s, "
        f"workers {workers.ru_utime + workers.ru_stime:.2f} s | {phases}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="iport-cds-bench-") as tmp:
        data, out = Path(tmp) / "export", Path(tmp) / "out"
        out.mkdir()
        subprocess.run(
            [sys.executable, "-m", "cli", "demo", "generate-population", "--patients",
             str(args.patients), "--out", str(data), "--today", TODAY],
            cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
        demo = REPO / "demo"
        argv = [
            "evaluate", "--population", str(data), "--out", str(out / "rows.csv"),
            "--report", str(out / "report.html"), "--places", str(demo / "practice-places.csv"),
            "--pcn-table", str(demo / "synthetic-practice-pcn.csv"),
            "--postcode-lsoa", str(demo / "synthetic-postcode-lsoa.csv"),
            "--lsoa-imd", str(demo / "synthetic-lsoa-imd.csv"),
            "--workers", str(args.workers), "--today", TODAY,
        ]  # fmt: skip
        print(
            f"{args.patients:,} people, {args.workers} workers, 1-minute load {os.getloadavg()[0]:.2f}"
        )
        for _ in range(max(1, args.repeat)):
            subprocess.run(
                [sys.executable, __file__, "--one-run", *argv],
                cwd=REPO, check=True, stderr=subprocess.DEVNULL,
            )  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one-run"]:
        sys.path.insert(0, str(REPO))
        one_run(sys.argv[2:])
    else:
        main()
