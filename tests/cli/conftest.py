"""Fixtures for the command-line tests: run ``cli.main.main(argv)`` and capture what it prints;
the real FHIR server (re-exported from the integration fixtures) and the real service."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from population.engine import Lookups
from tests.fhir_server import FhirTestServer
from tests.integration.conftest import fhir_server
from tests.service_process import ServiceProcess

__all__ = ["fhir_server"]

TODAY = date(2026, 11, 21)
DEMO = Path(__file__).resolve().parents[2] / "demo"
# The demo population's synthetic lookups, as a deployment gives them to a population run.
DEMO_PCN = str(DEMO / "synthetic-practice-pcn.csv")
DEMO_POSTCODE_LSOA = str(DEMO / "synthetic-postcode-lsoa.csv")
DEMO_LSOA_IMD = str(DEMO / "synthetic-lsoa-imd.csv")
DEMO_LOOKUPS = Lookups(DEMO_PCN, DEMO_POSTCODE_LSOA, DEMO_LSOA_IMD)
DEMO_LOOKUP_OPTIONS = (
    "--pcn-table", DEMO_PCN, "--postcode-lsoa", DEMO_POSTCODE_LSOA, "--lsoa-imd", DEMO_LSOA_IMD,
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """``cli("evaluate", "x.json")``: the exit code and everything printed."""
    from cli.main import main

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    """The real service (gunicorn), JWT checks off, allowed to read loopback FHIR servers."""
    with ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true"}) as svc:
        yield svc


@pytest.fixture(scope="module")
def demo_fhir(fhir_server: FhirTestServer) -> FhirTestServer:
    """The FHIR server with every demo patient loaded through ``iport-cds demo load``."""
    from cli.main import main

    assert main(["demo", "load", "--fhir-server", fhir_server.base_url]) == 0
    return fhir_server


def one_line_error(run: Run) -> str:
    """The error a failed command printed: exactly one line, no traceback."""
    lines = run.err.strip().splitlines()
    assert "Traceback" not in run.err
    assert lines, "no error message"
    assert lines[-1].startswith("iport-cds"), run.err
    assert "error:" in lines[-1]
    return lines[-1]


def generate_population(tmp_path_factory: pytest.TempPathFactory, patients: int, seed: int) -> Path:
    """A synthetic Bulk FHIR export written by ``iport-cds demo generate-population``."""
    from cli.main import main

    out = tmp_path_factory.mktemp("population")
    argv = ["demo", "generate-population", "--patients", str(patients), "--out", str(out)]
    assert main([*argv, "--seed", str(seed), "--today", TODAY.isoformat()]) == 0
    return out


def by_patient(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """The export's resources, grouped by the patient they belong to."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(directory.glob("*.ndjson")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            pid = r["id"] if r["resourceType"] == "Patient" else r["subject"]["reference"][8:]
            grouped.setdefault(pid, []).append(r)
    return grouped
