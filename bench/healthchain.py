"""Benchmark 11: the same order-select against HealthChain, the Python CDS Hooks framework.

    .venv/bin/python bench/healthchain.py [--rounds 5] [--requests 300] [--resources 160] [--detail lean]

HealthChain (PyPI ``healthchain``, pinned below) is installed into its own virtual
environment under ``.cache/`` on first use; the project never imports it. Three servers on
the same 2 cores, each with 2 worker processes, get the same body (an order-select for an
i-Port draft, every prefetch key filled) from the same 4 Python clients as
bench/hook_path.py, in turn, round after round:

- the bare endpoint (bench/bare_app.py under the production gunicorn configuration): parse
  the body, return a fixed card;
- HealthChain 0.16.1's ``CDSHooksService`` under uvicorn (``--workers 2``), its handler
  returning a fixed card: what the framework costs before any decision is made (it validates
  the request into its pydantic models, and the card out);
- iport-cds with its three policies (production gunicorn configuration): the whole decision.

Reported: p50, p99, rate and the workers' CPU time per request, and each over the bare
endpoint's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hook_path import python_clients  # noqa: E402
from bench.http_overhead import SERVICE_PATH, Gunicorn, free_port, order_select_file  # noqa: E402
from bench.report import machine, write_table  # noqa: E402
from bench.workload import detail_argument  # noqa: E402

HEALTHCHAIN = "healthchain==0.16.1"
VENV = ROOT / ".cache" / "healthchain-venv"
HC_PATH = "/cds/cds-services/iport-advance-order-select"

HC_APP = """
from healthchain.gateway import HealthChainAPI
from healthchain.gateway.cds import CDSHooksService
from healthchain.models.requests.cdsrequest import CDSRequest
from healthchain.models.responses.cdsresponse import Card, CDSResponse

app = HealthChainAPI()
cds = CDSHooksService()


@cds.hook("order-select", id="iport-advance-order-select")
def order_select(request: CDSRequest) -> CDSResponse:
    summary = "i-Port Advance: meets commissioning criteria (type 1 diabetes pathway)"
    return CDSResponse(cards=[Card(summary=summary, indicator="info", source={"label": "bench"})])


app.register_service(cds)
"""


def healthchain_python() -> Path:
    """The Python of a virtual environment with HealthChain, made on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", HEALTHCHAIN], check=True)
    return python


class Uvicorn(Gunicorn):
    """HealthChain's app under uvicorn; the same CPU accounting and stop as ``Gunicorn``."""

    def __init__(self, python: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder = Path(tempfile.mkdtemp())
        (folder / "hc_app.py").write_text(HC_APP)
        self.proc = subprocess.Popen(
            [str(python), "-m", "uvicorn", "hc_app:app", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(300):
            try:
                requests.get(self.url + "/cds/cds-discovery", timeout=1)
                time.sleep(1)  # every worker up, not only the first
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("HealthChain did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--resources", type=int, default=160)
    detail_argument(ap)
    args = ap.parse_args()
    body = order_select_file(args.resources, args.detail)
    python = healthchain_python()
    targets = {
        "bare endpoint": (Gunicorn("bench.bare_app:create_app()", 2, 8), SERVICE_PATH),
        "HealthChain, fixed card": (Uvicorn(python, 2), HC_PATH),
        "iport-cds, three policies": (Gunicorn("service:create_app()", 2, 8), SERVICE_PATH),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    try:
        for r in range(args.rounds):
            for name, (server, path) in targets.items():
                before = server.worker_cpu_s()
                measured = python_clients(server.url + path, body.read_bytes(), args.requests)
                served = measured.pop("requests")
                measured["cpu_ms"] = (server.worker_cpu_s() - before) * 1000 / served
                runs[name].append(measured)
                print(f"round {r + 1} {name}: {measured}", flush=True)
    finally:
        for server, _ in targets.values():
            server.stop()
    bare = runs["bare endpoint"]
    rows: list[list[object]] = []
    for name, measured in runs.items():
        over = [x["p50"] / b["p50"] for x, b in zip(measured, bare, strict=True)]
        cpu_over = [x["cpu_ms"] / b["cpu_ms"] for x, b in zip(measured, bare, strict=True)]
        rows.append(
            [
                name,
                f"{statistics.median(x['p50'] for x in measured):.2f}",
                f"{statistics.median(x['p99'] for x in measured):.2f}",
                f"{statistics.median(x['rps'] for x in measured):.0f}",
                f"{statistics.median(x['cpu_ms'] for x in measured):.2f}",
                f"{statistics.median(over):.2f}",
                f"{statistics.median(cpu_over):.2f}",
            ]
        )
    note = (
        f"order-select, {args.resources}-resource prefetch ({body.stat().st_size // 1024} KiB, "
        f"{args.detail} resources: bench/workload.py); "
        f"4 Python clients, {args.requests} requests per server per round, {args.rounds} rounds, "
        f"servers in turn; 2 worker processes each; {HEALTHCHAIN} under uvicorn; medians of the "
        f"rounds; 1-minute load average {os.getloadavg()[0]:.1f} at the end; "
        f"`.venv/bin/python bench/healthchain.py"
        f"{' --detail lean' if args.detail == 'lean' else ''}`; {machine()}"
    )
    print(note)
    write_table(
        "healthchain" if args.detail == "ehr" else "healthchain_lean",
        "The same order-select: bare endpoint, HealthChain (fixed card), iport-cds",
        ["server", "p50 ms", "p99 ms", "requests/s", "worker CPU ms per request",
         "p50 / bare", "CPU / bare"],
        rows,
        note,
    )  # fmt: skip


if __name__ == "__main__":
    main()
