"""Benchmarks 2 and 4: HTTP overhead against a bare endpoint, and throughput / memory at saturation.

    .venv/bin/python bench/http_overhead.py [--runs 3] [--seconds 10]

Needs `wrk` (Debian: apt-get install wrk). Starts the real service and the bare baseline
(bench/bare_app.py) with the same production gunicorn config (deploy/gunicorn.conf.py),
alternating them in the same run so the ratio is measured under the same machine noise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_table  # noqa: E402
from bench.workload import order_select  # noqa: E402

SERVICE_PATH = "/cds-services/iport-advance-order-select"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    def __init__(
        self, app: str, workers: int, threads: int, settings: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Each server writes its audit trail to a new, empty database: the instance folder's
        # one grows with every run, and inserts into a table of millions of rows cost more.
        self.folder = Path(tempfile.mkdtemp(prefix="iport-cds-bench-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPORT_CDS_")}
        env.update(
            IPORT_CDS_BIND=f"127.0.0.1:{self.port}",
            IPORT_CDS_DATABASE_URL=f"sqlite:///{self.folder / 'audit.sqlite3'}",
            IPORT_CDS_WORKERS=str(workers),
            IPORT_CDS_THREADS=str(threads),
            IPORT_CDS_REQUIRE_AUTH="false",
            IPORT_CDS_LOG_LEVEL="WARNING",
            IPORT_CDS_ACCESS_LOG="/dev/null",
        )
        env.update({f"IPORT_CDS_{k}": v for k, v in (settings or {}).items()})
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/gunicorn.conf.py", app],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                requests.post(self.url + SERVICE_PATH, data=b"{}", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{app} did not start")

    def worker_memory_mib(self) -> tuple[float, float]:
        """(RSS, PSS) per worker in MiB: PSS shares copy-on-write pages fairly."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        rss, pss = [], []
        for pid in out.stdout.split():
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            rss.append(int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1)) / 1024)  # type: ignore[union-attr]
            pss.append(int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1)) / 1024)  # type: ignore[union-attr]
        return statistics.mean(rss), statistics.mean(pss)

    def worker_cpu_s(self) -> float:
        """CPU seconds (user + system) the workers have used so far: work per request that
        other load on the machine does not inflate, as it does latency."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        ticks = 0
        for pid in out.stdout.split():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def wrk(
    url: str, body_file: Path, connections: int, seconds: int, shed_ok: bool = False
) -> dict[str, float]:
    """wrk's p50, p99, requests/s, requests and the share of them answered other than 2xx;
    ``shed_ok``: the service may refuse (503, its admission limit), else none may fail."""
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert shed_ok or not errors, out
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    refused = int(errors.group(1)) / done if errors else 0.0
    return {"p50": ms("50"), "p99": ms("99"), "rps": rps, "requests": done, "refused": refused}


def server_arguments(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments every gunicorn benchmark takes; exits when wrk is needed and missing."""
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    if getattr(args, "client", "wrk") == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    return args


def order_select_file(resources: int, detail: str = "lean") -> Path:
    """An order-select body of ``resources`` resources (``detail``: bench/workload.py's
    ``lean`` or ``ehr``), written to a new temporary folder."""
    body = Path(tempfile.mkdtemp()) / f"order-select-{resources}-{detail}.json"
    body.write_bytes(orjson.dumps(order_select(resources, detail)))
    return body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = server_arguments(ap)
    body = order_select_file(500)
    service = Gunicorn("service:create_app()", args.workers, args.threads)
    bare = Gunicorn("bench.bare_app:create_app()", args.workers, args.threads)
    check = requests.post(
        service.url + SERVICE_PATH,
        data=body.read_bytes(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert (
        check.json()["cards"][0]["extension"]["iport-cds.eligibility"]["outcome"]
        == "meets-criteria"
    )
    try:
        results: dict[str, list[dict[str, float]]] = {
            "service": [],
            "bare": [],
            "service-sat": [],
            "bare-sat": [],
        }
        for _ in range(args.runs):
            for name, target in (("service", service), ("bare", bare)):
                results[name].append(wrk(target.url + SERVICE_PATH, body, 8, args.seconds))
                results[f"{name}-sat"].append(
                    wrk(target.url + SERVICE_PATH, body, 32, args.seconds, shed_ok=True)
                )
        mem = service.worker_memory_mib()
    finally:
        service.stop()
        bare.stop()

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    ratio = statistics.median(
        s["p50"] / b["p50"] for s, b in zip(results["service"], results["bare"], strict=True)
    )
    rows = [
        [
            "service (8 clients)",
            f"{med('service', 'p50'):.2f}",
            f"{med('service', 'p99'):.2f}",
            f"{med('service', 'rps'):.0f}",
            f"{med('service', 'refused'):.0%}",
        ],
        [
            "bare endpoint (8 clients)",
            f"{med('bare', 'p50'):.2f}",
            f"{med('bare', 'p99'):.2f}",
            f"{med('bare', 'rps'):.0f}",
            f"{med('bare', 'refused'):.0%}",
        ],
        [
            "service at saturation (32 clients)",
            f"{med('service-sat', 'p50'):.2f}",
            f"{med('service-sat', 'p99'):.2f}",
            f"{med('service-sat', 'rps'):.0f}",
            f"{med('service-sat', 'refused'):.0%}",
        ],
        [
            "bare at saturation (32 clients)",
            f"{med('bare-sat', 'p50'):.2f}",
            f"{med('bare-sat', 'p99'):.2f}",
            f"{med('bare-sat', 'rps'):.0f}",
            f"{med('bare-sat', 'refused'):.0%}",
        ],
    ]
    rss, pss = mem
    note = (
        f"order-select, 500-resource prefetch ({body.stat().st_size // 1024} KiB); gunicorn "
        f"{args.workers} workers × {args.threads} threads (deploy/gunicorn.conf.py); wrk -t2; "
        f"{args.seconds} s per run, median of {args.runs} runs, alternating; "
        f"**service/bare p50 ratio {ratio:.2f}** (median of per-run ratios); "
        f"worker memory: RSS {rss:.0f} MiB, PSS {pss:.0f} MiB → about {int(1024 // pss)} workers per GiB "
        f"(PSS, preloaded app shared copy-on-write); at 32 clients the service answers what is "
        f"beyond its admission limit (HOOKS_IN_FLIGHT_MAX per worker) 503 at once, and wrk's "
        f"figures include those answers; `.venv/bin/python bench/http_overhead.py`; {machine()}"
    )
    print(note)
    for row in rows:
        print(row)
    write_table(
        "http",
        "HTTP overhead and throughput",
        ["target", "p50 ms", "p99 ms", "requests/s", "answered 503 (admission limit)"],
        rows,
        note,
    )


if __name__ == "__main__":
    main()
