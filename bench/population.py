"""Benchmark: population mode (``iport-cds evaluate --population``) on a synthetic export,
with the uptake-gap report: every enabled policy, places and deprivation quintiles.

    .venv/bin/python bench/population.py [--sizes 10000,100000] [--repeat 3] [--workers N]
                                         [--keep DIR]

For each size: generate a Bulk FHIR NDJSON population (``iport-cds demo generate-population``),
evaluate it exactly as a commissioner would (the CLI in its own process, every core, every
enabled policy, the demo practice → place table and deprivation lookup, the HTML report), and
record wall time, people per second and peak resident memory of the main process and of the
largest worker. With ``--repeat N`` every size is evaluated N times, the sizes taking turns,
and the medians are shown (other work on a shared machine moves single runs). Two sizes show
whether memory stays flat as the population grows. Results go to
``bench/results/population.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import machine  # noqa: E402

RESULTS = REPO / "bench" / "results" / "population.md"
TODAY = date(2026, 11, 21)  # fixed, so every run evaluates the same data the same way


def cli(*args: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the command and its worker processes, user + system):
    CPU time varies far less than wall time with other work on the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def generate(patients: int, work: Path) -> tuple[Path, float]:
    data = work / f"population-{patients}"
    gen_s, _ = cli(
        "demo",
        "generate-population",
        "--patients",
        str(patients),
        "--out",
        str(data),
        "--today",
        TODAY.isoformat(),
    )
    return data, gen_s


def run_size(patients: int, workers: int, work: Path, data: Path) -> dict[str, Any]:
    size_mb = sum(f.stat().st_size for f in data.glob("*.ndjson")) / 1e6
    summary_file = work / f"summary-{patients}.json"
    wall, cpu = cli(
        "evaluate",
        "--population",
        str(data),
        "--out",
        str(work / f"rows-{patients}.csv"),
        "--summary-json",
        str(summary_file),
        "--report",
        str(work / f"report-{patients}.html"),
        "--places",
        str(REPO / "demo" / "practice-places.csv"),
        "--pcn-table",
        str(REPO / "demo" / "synthetic-practice-pcn.csv"),
        "--postcode-lsoa",
        str(REPO / "demo" / "synthetic-postcode-lsoa.csv"),
        "--lsoa-imd",
        str(REPO / "demo" / "synthetic-lsoa-imd.csv"),
        "--workers",
        str(workers),
        "--today",
        TODAY.isoformat(),
    )
    s: dict[str, Any] = json.loads(summary_file.read_text())
    report_kb = (work / f"report-{patients}.html").stat().st_size / 1024
    return {
        **s,
        "input_mb": size_mb,
        "process_wall_s": wall,
        "process_cpu_s": cpu,
        "report_kb": report_kb,
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose wall time is the median, with every timing replaced by its own median."""
    by_wall = sorted(runs, key=lambda r: float(r["process_wall_s"]))
    out = dict(by_wall[(len(by_wall) - 1) // 2])
    for key in ("index_seconds", "evaluate_seconds", "process_wall_s", "process_cpu_s"):
        out[key] = statistics.median(float(r[key]) for r in runs)
    for key in ("peak_rss_main_mb", "peak_rss_worker_mb"):
        out[key] = max((r[key] for r in runs if r[key] is not None), default=None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated population sizes")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each size (medians shown)")
    ap.add_argument("--keep", metavar="DIR", help="keep the generated data and CSVs here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="iport-cds-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = {n: generate(n, work) for n in sizes}
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        for _ in range(max(1, args.repeat)):
            for n in sizes:
                runs[n].append(run_size(n, args.workers, work, data[n][0]))
    load_after = os.getloadavg()[0]
    results = [{**median_run(runs[n]), "generate_s": data[n][1]} for n in sizes]
    rows = []
    for r in results:
        n = int(r["patients"])
        wall = float(r["process_wall_s"])
        rows.append(
            [
                f"{n:,}",
                f"{int(r['resources']):,}",
                f"{float(r['input_mb']):.0f} MB",
                f"{float(r['generate_s']):.1f}",
                f"{float(r['index_seconds']):.1f}",
                f"{float(r['evaluate_seconds']):.1f}",
                f"{wall:.1f}",
                f"{n / wall:,.0f}",
                f"{float(r['process_cpu_s']):.1f}",
                f"{n / float(r['process_cpu_s']):,.0f}",
                f"{r['peak_rss_main_mb']} MB",
                f"{r['peak_rss_worker_mb']} MB",
                str(r["workers"]),
            ]
        )
    header = [
        "people",
        "resources",
        "NDJSON size",
        "generate s",
        "index s",
        "evaluate s",
        "wall s (whole command)",
        "people/s",
        "CPU s (all processes)",
        "people per CPU-second",
        "peak RSS main",
        "peak RSS per worker",
        "workers",
    ]
    biggest = results[-1]
    figures: dict[str, dict[str, Any]] = biggest["figures"]
    total = int(biggest["patients"])
    lines = [
        "## Population mode: `iport-cds evaluate --population` over a Bulk FHIR NDJSON export",
        "",
        f"_{datetime.now(UTC):%Y-%m-%d %H:%M} UTC — `.venv/bin/python bench/population.py "
        f"--sizes {args.sizes} --repeat {args.repeat}`; {machine()}_",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"Each policy's cohort and outcomes among the {total:,} people (synthetic mix from "
        "`demo/population.py`, evaluated as on " + TODAY.isoformat() + "; exact counts, before "
        "disclosure control; the HTML report is "
        f"{float(biggest['report_kb']):,.0f} KB):",
        "",
        "| policy | cohort | outcome | people | share of the cohort |",
        "|---|---|---|---|---|",
        *(
            f"| {policy} | {f['cohort']:,} | {k} | {v:,} | "
            f"{100 * v / f['cohort'] if f['cohort'] else 0:.1f}% |"
            for policy, f in figures.items()
            for k, v in f["outcomes"].items()
        ),
        "",
        "Wall time is the whole command (start-up, index, de-duplication, evaluation of every "
        "enabled policy, CSV with one row per person and policy, HTML report, MeasureReport); "
        "people/s is people (Patient records de-duplicated) over that wall time; people per "
        "CPU-second is over the CPU time of the command and its workers, which other work on the "
        "machine changes far less. Index, evaluate, wall and CPU are each the median of "
        f"{max(1, args.repeat)} run(s) of each size, the sizes taking turns. Peak RSS is each "
        "process's own high-water mark (`VmHWM`): the main process, and the largest of the "
        "worker processes. Memory is bounded if these do not grow with the number of patients.",
        "",
        f"1-minute load average before / after the run: {load_before:.2f} / {load_after:.2f} "
        "(other work on the machine slows the figures above).",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
