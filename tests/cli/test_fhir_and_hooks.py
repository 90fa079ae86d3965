"""``demo load`` into a real FHIR server (sekmet), and ``hook`` as an EHR against the real
service (gunicorn) reading that server: every demo patient gets its declared outcome."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

import demo
import store
from tests import smart_server
from tests.cli.conftest import Run, one_line_error
from tests.fhir_server import FhirTestServer
from tests.service_process import ServiceProcess, free_port

pytestmark = pytest.mark.integration

Cli = Callable[..., Run]
ORDER_SIGN = "iport-advance-order-sign"
REPO = Path(__file__).resolve().parents[2]


def count(fhir: FhirTestServer, query: str) -> int:
    bundle = requests.get(f"{fhir.base_url}/{query}", timeout=10).json()
    return len(bundle.get("entry", []))


def iport_outcome(answer: dict[str, dict[str, object]], service_id: str) -> str | None:
    cards = answer[service_id]["cards"]
    assert isinstance(cards, list)
    assert len(cards) <= 1
    return cards[0]["extension"]["iport-cds.eligibility"]["outcome"] if cards else None


def test_demo_load_is_idempotent(cli: Cli, demo_fhir: FhirTestServer) -> None:
    p = demo.get_patient("t1-hypo-lipohypertrophy")
    before = count(demo_fhir, f"Condition?patient={p.patient_id}")
    assert before == 3
    run = cli("demo", "load", "--fhir-server", demo_fhir.base_url + "/", "--only", p.name)
    assert run.code == 0, run.err
    assert (
        f"Loaded 1 demo patient(s) (8 resources) and 1 demo user(s) into {demo_fhir.base_url}"
        in run.out
    )
    assert "loading into" in run.err
    assert count(demo_fhir, f"Condition?patient={p.patient_id}") == before
    run = cli(
        "demo", "load", "--fhir-server", demo_fhir.base_url, "--only", p.name, "--mode", "put"
    )
    assert run.code == 0, run.err
    assert count(demo_fhir, f"Condition?patient={p.patient_id}") == before
    assert count(demo_fhir, f"Patient?_id={p.patient_id}") == 1
    stored = requests.get(f"{demo_fhir.base_url}/Patient/{p.patient_id}", timeout=5).json()
    assert stored["identifier"][0]["value"] == "9996613186"


def test_demo_load_writes_the_clinician_the_demo_sign_in_names(demo_fhir: FhirTestServer) -> None:
    # The local SMART server signs in as this user (docs/sandbox.md): without the Practitioner
    # a confirmation and the evidence pack could not name who recorded it.
    stored = requests.get(f"{demo_fhir.base_url}/{smart_server.USER}", timeout=5)
    assert stored.status_code == 200, stored.text[:300]
    who = stored.json()
    assert who["name"][0]["text"] == "Dr Asha Patel (demo)"
    assert who["qualification"][0]["code"]["text"] == "General practitioner"
    registration = who["identifier"][0]
    assert registration["system"] == "https://fhir.hl7.org.uk/Id/gmc-number"
    assert "Not a real" in registration["assigner"]["display"]
    tag = {"system": demo.DEMO_TAG_SYSTEM, "code": demo.DEMO_TAG_CODE}
    assert tag in [{k: t[k] for k in ("system", "code")} for t in who["meta"]["tag"]]


def test_dates_are_resolved_against_today_in_london(demo_fhir: FhirTestServer) -> None:
    today = datetime.now(ZoneInfo("Europe/London")).date()
    p = demo.get_patient("t1-mdi-needle-phobia")
    bundle = p.bundle(today)
    latest = next(r for r in demo.bundle_resources(bundle) if r["id"] == f"{p.patient_id}-hba1c-3")
    stored = requests.get(f"{demo_fhir.base_url}/Observation/{latest['id']}", timeout=5).json()
    assert "@today" not in json.dumps(stored)
    assert stored["effectiveDateTime"][:10] == latest["effectiveDateTime"][:10]


@pytest.mark.parametrize("mode", ["fetch", "prefetch"])
def test_every_demo_patient_through_the_real_service(
    cli: Cli, demo_fhir: FhirTestServer, service: ServiceProcess, mode: str
) -> None:
    for p in demo.list_patients():
        argv = [
            "hook", "order-sign", "--service", service.url, "--fhir-server", demo_fhir.base_url,
            "--patient", p.patient_id, "--json",
        ]  # fmt: skip
        run = cli(*argv, *(["--prefetch"] if mode == "prefetch" else []))
        assert run.code == 0, run.err
        assert (
            iport_outcome(json.loads(run.out), ORDER_SIGN) == p.expected["iport-advance"].outcome
        ), p.name
    if mode == "prefetch":  # the service used what the CLI prefetched and fetched nothing
        lines = [json.loads(x) for x in service.log.splitlines() if '"hook answered"' in x]
        last = lines[-1]
        assert last["fetched"] == []
        assert "conditions" in last["prefetched"]
        assert "hba1c" in last["prefetched"]


def test_order_sign_cards_as_a_person_sees_them(
    cli: Cli, demo_fhir: FhirTestServer, service: ServiceProcess
) -> None:
    p = demo.get_patient("t2-no-specialist")
    run = cli(
        "hook", "order-sign", "--service", service.url + "/cds-services", "--fhir-server",
        demo_fhir.base_url, "--patient", p.patient_id, "--prefetch",
    )  # fmt: skip
    assert run.code == 0, run.err
    out = run.out
    assert "[WARNING] i-Port Advance: not enough information to confirm criteria" in out
    assert "Could change the outcome: Recommended by a diabetes specialist" in out
    assert "Suggestions (choose any):" in out
    assert "I confirm: Recommended by a diabetes specialist" in out
    assert "Links:" in out
    assert "If you do not follow this card, say why:" in out
    assert "|" not in out  # the markdown table is rendered, not shown raw
    assert "discovery: 1 order-sign service(s): iport-advance-order-sign" in run.err
    assert re.search(r"prefetch: (\d+) of \1 template\(s\) filled", run.err)


def test_order_select_and_patient_view(
    cli: Cli, demo_fhir: FhirTestServer, service: ServiceProcess
) -> None:
    meets = demo.get_patient("t1-mdi-needle-phobia")
    base = ["--service", service.url, "--fhir-server", demo_fhir.base_url]
    run = cli("hook", "order-select", *base, "--patient", meets.patient_id, "--json")
    assert iport_outcome(json.loads(run.out), "iport-advance-order-select") == "meets-criteria"
    # patient-view calls every patient-view service, as an EHR does: the i-Port one and the
    # NICE pump one (this patient meets both, so the pump card speaks and the i-Port one defers)
    run = cli("hook", "patient-view", *base, "--patient", meets.patient_id, "--prefetch")
    assert run.code == 0, run.err
    assert "iport-advance-patient-view" in run.err
    assert "nice-insulin-pump-patient-view" in run.err
    assert "Card 1 of" in run.out
    only = cli(
        "hook", "patient-view", *base, "--patient", meets.patient_id, "--json",
        "--service-id", "iport-advance-patient-view",
    )  # fmt: skip
    assert list(json.loads(only.out)) == ["iport-advance-patient-view"]
    quiet = demo.get_patient("t1-low-hba1c-no-hypos")
    run = cli("hook", "patient-view", *base, "--patient", quiet.patient_id)
    assert run.code == 0
    assert run.out.startswith("No cards: patient-view speaks only when")


def test_hook_errors(cli: Cli, demo_fhir: FhirTestServer, service: ServiceProcess) -> None:
    base = ["--fhir-server", demo_fhir.base_url, "--patient", "iport-demo-no-diabetes"]
    dead = f"http://127.0.0.1:{free_port()}"
    run = cli("hook", "order-sign", "--service", dead, *base)
    assert run.code == 1
    assert f"cannot connect to the CDS service at {dead}/cds-services" in one_line_error(run)

    run = cli(
        "hook",
        "order-sign",
        "--service",
        service.url,
        "--fhir-server",
        dead,
        "--patient",
        "x",
        "--prefetch",
    )
    assert run.code == 1
    assert "cannot connect to the FHIR server" in one_line_error(run)

    run = cli(
        "hook", "order-sign", "--service", service.url, "--fhir-server", demo_fhir.base_url,
        "--patient", "nobody-here", "--prefetch",
    )  # fmt: skip
    assert run.code == 1
    assert "the FHIR server has no such patient" in one_line_error(run)

    run = cli(
        "hook", "order-sign", "--service", service.url, "--fhir-server", dead, "--patient", "x"
    )
    assert run.code == 1  # the service could not read the record: 412 with its reason
    assert "answered the order-sign hook with HTTP 412" in one_line_error(run)

    # patient-view has a service per policy: each one's 412 is reported, none is skipped
    run = cli(
        "hook", "patient-view", "--service", service.url, "--fhir-server", dead, "--patient", "x"
    )
    assert run.code == 1
    ids = ["iport-advance-patient-view", "nice-insulin-pump-patient-view"]
    for sid in ids:
        assert f"{sid}: failed: '{sid}' answered the patient-view hook with HTTP 412" in run.err
    called = run.err.split("discovery: ", 1)[1].splitlines()[0]
    n = int(called.split(" ", 1)[0])
    assert n >= 3  # every enabled policy offers a patient-view service
    assert f"{n} of {n} patient-view service(s) failed" in one_line_error(run)

    run = cli("hook", "encounter-start", "--service", service.url, *base)
    assert run.code == 2
    assert "unknown hook 'encounter-start'" in one_line_error(run)

    run = cli("hook", "order-sign", "--service", service.url, *base, "--service-id", "nope")
    assert run.code == 1
    assert "no order-sign service with id 'nope'" in one_line_error(run)

    run = cli("hook", "order-sign", "--service", "ftp://x", *base)
    assert run.code == 2
    assert "--service must be an http:// or https:// URL" in one_line_error(run)

    run = cli("hook", "order-sign", "--service", demo_fhir.base_url, *base)
    assert run.code == 1  # a FHIR server is not a CDS service
    assert "discovery at" in one_line_error(run)


def test_demo_load_errors(cli: Cli, demo_fhir: FhirTestServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/fhir"
    run = cli("demo", "load", "--fhir-server", dead)
    assert run.code == 1
    assert f"cannot connect to the FHIR server at {dead}" in one_line_error(run)
    run = cli("demo", "load", "--fhir-server", "localhost:8080")
    assert run.code == 2
    assert "--fhir-server must be an http:// or https:// URL" in one_line_error(run)
    run = cli("demo", "load", "--fhir-server", demo_fhir.base_url, "--only", "nobody")
    assert run.code == 2
    assert "no demo patient called 'nobody'" in one_line_error(run)
    run = cli("demo", "load", "--fhir-server", demo_fhir.base_url + "/Patient/nope")
    assert run.code == 1
    assert "the transaction failed: HTTP" in one_line_error(run)


def test_the_demo_configuration_shows_places_on_the_dashboard(
    cli: Cli, demo_fhir: FhirTestServer, tmp_path: Path
) -> None:
    """What the README's first command serves (deploy/demo-config.json): the demo patients'
    checks count at the places of their practices, not at "Unknown place"."""
    env = {
        "CONFIG_FILE": str(REPO / "deploy" / "demo-config.json"),
        "DATABASE_URL": store.sqlite_url(tmp_path / "audit.sqlite3"),
    }
    patients = demo.list_patients()
    with ServiceProcess(env) as svc:
        base = ["--service", svc.url, "--fhir-server", demo_fhir.base_url]
        for p in patients:
            assert cli("hook", "order-sign", *base, "--patient", p.patient_id).code == 0
        deadline = time.monotonic() + 15
        while True:  # the audit trail is written just after each answer
            figures = requests.get(f"{svc.url}/analytics.json", timeout=10).json()
            if figures["totals"]["evaluations"] == 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert figures["totals"]["evaluations"] == 20  # 21 patients, rounded to the nearest 5
    by_place = {r["name"]: r for r in figures["evaluationsByPlace"]}
    assert {"Hull", "North Yorkshire"} <= set(by_place)
    assert "England" not in by_place
    assert by_place["Hull"]["total"] == 10  # the eleven patients at Y99901, rounded
