"""Evidence rules over HTTP: the real service (gunicorn) reading a real FHIR server (sekmet),
with the client's prefetch and with none. The same records as the pure-core spec tables
(tests/unit/test_censored_hba1c_spec.py, tests/unit/test_evidence_spec.py) must give the same
answers when they arrive as FHIR over the wire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from service import create_app
from tests.builders import (
    ASPART,
    DMD,
    GLARGINE_VTM,
    NON_ADHERENCE,
    T1DM,
    condition,
    hba1c,
    hba1c_censored,
    insulin,
    iport_device_request,
    patient,
)
from tests.fhir_server import FhirTestServer
from tests.hooks import SERVICE, hook_request
from tests.integration.ehr import ago, ehr_prefetch, put_transaction
from tests.service_process import ServiceProcess, free_port, serving
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

LIBRE_2 = (DMD, "39094611000001105", "FreeStyle Libre 2 Sensor (Abbott Laboratories Ltd)")


def result_of(value: Any, pid: str, days_ago: int) -> dict[str, Any]:
    """An HbA1c as the tables write it: 75 (mmol/mol), "%72" (72 %), ">130", "text:>130"."""
    if isinstance(value, str) and value.startswith("%"):
        return hba1c(float(value[1:]), "%", on=ago(days_ago), pid=pid)
    if isinstance(value, str):
        written = value.removeprefix("text:")
        return hba1c_censored(written, on=ago(days_ago), as_string=written != value, pid=pid)
    return hba1c(value, on=ago(days_ago), pid=pid)


def t1_on_basal_bolus(pid: str, *hba1cs: Any) -> list[dict[str, Any]]:
    """A type 1 adult on basal-bolus insulin with poor adherence recorded, and these HbA1c
    results, newest first (30 days ago, then 150)."""
    return [
        patient("1985-03-04", pid=pid),
        condition(T1DM, onset=ago(3000), pid=pid),
        condition(NON_ADHERENCE, onset=ago(40), pid=pid),
        insulin(GLARGINE_VTM, text="once daily at night", pid=pid),
        insulin(ASPART, text="with meals", pid=pid),
        *(result_of(v, pid, d) for v, d in zip(hba1cs, (30, 150), strict=False)),
    ]


def t1_on_flash(pid: str, written: str) -> list[dict[str, Any]]:
    """A type 1 adult using isCGM (TA943 1.1) whose only HbA1c is ``written``."""
    sensor = {**insulin(LIBRE_2, pid=pid), "authoredOn": ago(20), "dosageInstruction": []}
    return [
        patient("1979-04-02", pid=pid),
        condition(T1DM, onset=ago(3000), pid=pid),
        sensor,
        hba1c_censored(written, on=ago(30), pid=pid),
    ]


# (patient id, HbA1c results newest first, "≥ 69 on MDI", "> 69 with poor adherence"): rows of
# the pure-core censored-result and plausibility tables.
CENSORED = [
    ("it-cens-gt130", (">130",), "met", "met"),
    ("it-cens-gte69", (">=69",), "met", "unknown"),
    ("it-cens-gt60", (">60",), "unknown", "unknown"),
    ("it-cens-lt20", ("<20",), "not-met", "not-met"),
    ("it-cens-lte69", ("<=69",), "unknown", "not-met"),
    ("it-cens-text-gt130", ("text:>130",), "met", "met"),
    ("it-cens-gt60-older-60", (">60", 60), "not-met", "unknown"),
    ("it-cens-75-older-lt60", (75, "<60"), "not-met", "met"),
    ("it-cens-75-older-gt60", (75, ">60"), "unknown", "met"),
    # An implausible newest result: the older 60 settles "remained high", never the latest.
    ("it-implausible-newest-older-60", ("%72", 60), "not-met", "unknown"),
    ("it-implausible-newest-older-75", ("%72", 75), "unknown", "unknown"),
]
# (patient id, the only HbA1c, whether TA943's "HbA1c ≥ 58" is met, so the HCL card prompts)
CENSORED_HCL = [
    ("it-cens-hcl-gt60", ">60", True),
    ("it-cens-hcl-gte58", ">=58", True),
    ("it-cens-hcl-gt57", ">57", False),
    ("it-cens-hcl-lte58", "<=58", False),
]


def written(text: str, dosage: str, pid: str) -> dict[str, Any]:
    """A prescription recorded as free text only."""
    r = insulin(text=dosage, pid=pid)
    r["medicationCodeableConcept"] = {"text": text}
    return r


FREE_TEXT_INSULIN, STOPPED_INSULIN = "it-free-text-insulin", "it-stopped-insulin"
FUTURE_HBA1C, FUTURE_HBA1C_HCL = "it-future-hba1c", "it-future-hba1c-hcl"


def stopped_glargine(pid: str) -> dict[str, Any]:
    """Insulin glargine, stopped 50 days ago."""
    r = insulin(GLARGINE_VTM, text="once daily at night", status="stopped", pid=pid)
    r["dosageInstruction"][0]["timing"] = {"repeat": {"boundsPeriod": {"end": ago(50)}}}
    return r


def records() -> list[dict[str, Any]]:
    out = [r for pid, values, *_ in CENSORED for r in t1_on_basal_bolus(pid, *values)]
    out += [r for pid, written, _ in CENSORED_HCL for r in t1_on_flash(pid, written)]
    pid = FREE_TEXT_INSULIN
    out += [
        patient("1985-03-04", pid=pid),
        condition(T1DM, onset=ago(3000), pid=pid),
        hba1c(80, on=ago(30), pid=pid),
        written("Insulin glargine 100 units/ml pre-filled pen", "once daily at night", pid),
        written("insulin lispro", "as directed", pid),
    ]
    pid = STOPPED_INSULIN
    out += [
        patient("1985-03-04", pid=pid),
        condition(T1DM, onset=ago(3000), pid=pid),
        hba1c(80, on=ago(30), pid=pid),
        stopped_glargine(pid),
    ]
    # An HbA1c dated 100 days ahead beside one that decides (i-Port: meets; TA943: meets).
    pid = FUTURE_HBA1C
    out += [*t1_on_basal_bolus(pid, 75), hba1c(80, on=ago(-100), pid=pid)]
    out += [condition(text="Needle phobia", onset=ago(30), pid=pid)]
    pid = FUTURE_HBA1C_HCL
    out += [*t1_on_flash(pid, ">=70"), hba1c(80, on=ago(-100), pid=pid)]
    return out


@pytest.fixture(scope="module")
def loaded_fhir(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.load(put_transaction(records()))
    return fhir_server


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    with ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true"}) as svc:
        yield svc


def cards(
    service: ServiceProcess, fhir: FhirTestServer, hook: str, mode: str, pid: str
) -> list[dict[str, Any]]:
    """The cards a hook answers for ``pid``, with the EHR's prefetch or fetched by the service."""
    drafts = None
    if hook in ("order-sign", "order-select"):
        d = iport_device_request(pid=pid)
        d["id"] = f"draft-{pid}"
        drafts = [d]
    wire = "patient-view" if hook.endswith("patient-view") else hook
    if mode == "prefetch":
        prefetch = ehr_prefetch(service, fhir, hook, pid)
        body = hook_request(wire, prefetch=prefetch, drafts=drafts, patient_id=pid)
    else:
        body = hook_request(wire, drafts=drafts, patient_id=pid, fhir_server=fhir.base_url)
    resp = requests.post(f"{service.url}/cds-services/{SERVICE[hook]}", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    answer: list[dict[str, Any]] = resp.json()["cards"]
    return answer


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize(
    ("pid", "values", "mdi", "adherence"),
    CENSORED,
    ids=[c[0].removeprefix("it-") for c in CENSORED],
)
def test_a_censored_hba1c_decides_only_where_it_is_certain(
    service: ServiceProcess,
    loaded_fhir: FhirTestServer,
    mode: str,
    pid: str,
    values: tuple[Any, ...],
    mdi: str,
    adherence: str,
) -> None:
    (card,) = cards(service, loaded_fhir, "order-sign", mode, pid)
    ext = card["extension"]["iport-cds.eligibility"]
    got = {c["id"]: c["result"] for c in ext["criteria"]}
    assert got["hba1c-69-or-above-on-mdi"] == mdi, card["detail"]
    assert got["hba1c-above-69-with-poor-adherence"] == adherence, card["detail"]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize(
    ("pid", "written", "prompts"),
    CENSORED_HCL,
    ids=[c[0].removeprefix("it-") for c in CENSORED_HCL],
)
def test_a_censored_hba1c_prompts_hcl_only_when_certainly_58_or_more(
    service: ServiceProcess,
    loaded_fhir: FhirTestServer,
    mode: str,
    pid: str,
    written: str,
    prompts: bool,
) -> None:
    answer = cards(service, loaded_fhir, "hcl-patient-view", mode, pid)
    assert bool(answer) is prompts, answer


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
def test_the_card_shows_a_censored_result_as_written(
    service: ServiceProcess, loaded_fhir: FhirTestServer, mode: str
) -> None:
    (card,) = cards(service, loaded_fhir, "hcl-patient-view", mode, "it-cens-hcl-gt60")
    # The criterion's reason (on the card where it has room: tests/unit/test_concise_cards.py
    # renders its line) counts ">60" as at least 60, and nothing on the card is an entity.
    ext = card["extension"]["iport-cds.eligibility"]
    (reason,) = [c["reason"] for c in ext["criteria"] if "Latest HbA1c" in c["reason"]]
    assert "Latest HbA1c >60 mmol/mol" in reason
    assert "is ≥ 58" in reason
    assert "&gt;" not in card["detail"]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
def test_free_text_insulin_prescriptions_are_insulin_of_their_kind(
    service: ServiceProcess, loaded_fhir: FhirTestServer, mode: str
) -> None:
    (card,) = cards(service, loaded_fhir, "order-sign", mode, FREE_TEXT_INSULIN)
    got = {c["id"]: c for c in card["extension"]["iport-cds.eligibility"]["criteria"]}
    assert got["on-insulin"]["result"] == "met"
    assert got["hba1c-69-or-above-on-mdi"]["result"] == "met"
    assert "basal-bolus" in got["hba1c-69-or-above-on-mdi"]["reason"]
    assert "no active insulin prescription" not in card["detail"]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
def test_stopped_insulin_is_named_and_not_asked_for(
    service: ServiceProcess, loaded_fhir: FhirTestServer, mode: str
) -> None:
    (card,) = cards(service, loaded_fhir, "order-sign", mode, STOPPED_INSULIN)
    stopped_on = date.fromisoformat(ago(50))
    assert f"Insulin glargine stopped on {stopped_on.day} {stopped_on:%b %Y}" in card["detail"]
    assert "Settled by a current insulin prescription" not in card["detail"]
    assert "Settled by insulin prescriptions" not in card["detail"]


def future_line() -> str:
    ahead = date.fromisoformat(ago(-100))
    return f"HbA1c 80 mmol/mol ({ahead.day} {ahead:%b %Y}): dated after today, not used"


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize(
    ("hook", "pid"),
    [
        ("order-sign", FUTURE_HBA1C),
        ("order-select", FUTURE_HBA1C),
        # One patient-view card per patient: the pump's, first in precedence, speaks for them.
        ("pump-patient-view", FUTURE_HBA1C),
        ("hcl-patient-view", FUTURE_HBA1C_HCL),
    ],
)
def test_an_hba1c_dated_after_today_is_named_on_every_card(
    service: ServiceProcess, loaded_fhir: FhirTestServer, mode: str, hook: str, pid: str
) -> None:
    (card,) = cards(service, loaded_fhir, hook, mode, pid)
    assert card["detail"].count(future_line()) == 1, card["detail"]
    (named,) = card["extension"]["iport-cds.eligibility"]["notUsed"]
    assert named["reason"] == f"HbA1c 80 mmol/mol ({ago(-100)}): dated after today, not used"


def test_the_assessment_app_names_an_hba1c_dated_after_today(
    loaded_fhir: FhirTestServer, tmp_path: Path
) -> None:
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "FHIR_ALLOW_LOOPBACK": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        }
    )
    with (
        serving(app) as url,
        SmartServer(
            loaded_fhir.base_url, free_port(), standalone_patient=FUTURE_HBA1C
        ).serve() as smart,
        requests.Session() as browser,
    ):
        page = browser.get(f"{url}/review/launch", params={"iss": smart.iss})
    assert page.status_code == 200
    assert future_line() in page.text
