"""End to end over HTTP: a real FHIR server (sekmet), the real service (gunicorn), every hook,
with the client's prefetch and with none (the service fetches from the FHIR server itself)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.builders import (
    GLARGINE_VTM,
    HYPO_COMA,
    IMPAIRED_AWARENESS,
    LIPO,
    PREMIXED_ASPART,
    T1DM,
    T2DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    iport_device_request,
    patient,
)
from tests.fhir_server import FhirTestServer
from tests.hooks import SERVICE, hook_request
from tests.integration.ehr import ago, ehr_prefetch, put_transaction
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.integration

MEETS_ID, INSUFFICIENT_ID, T2_ID, CHILD_ID = "it-meets", "it-insufficient", "it-type2", "it-child"


def records() -> list[dict[str, Any]]:
    p = MEETS_ID
    meets = [
        patient("1988-02-03", pid=p),
        condition(T1DM, pid=p),
        hba1c(78, pid=p),
        insulin(text="with meals", pid=p),
        insulin(text="at night", pid=p),
        condition(text="Needle phobia", pid=p),
    ]
    p = INSUFFICIENT_ID
    insufficient = [
        patient("1975-06-01", pid=p),
        condition(T1DM, pid=p),
        hba1c(8.9, "%", code=("http://loinc.org", "4548-4", "HbA1c"), pid=p),
        insulin(text="BD", pid=p),
    ]
    p = T2_ID
    type2 = [patient("1960-01-01", pid=p), condition(T2DM, pid=p), insulin(text="BD", pid=p)]
    p = CHILD_ID
    child = [patient("2018-05-05", pid=p), condition(T1DM, pid=p), condition(LIPO, pid=p)]
    why = [r for resources in why_records().values() for r in resources]
    return [
        *meets,
        *insufficient,
        *type2,
        *child,
        iport_device_request(status="active", pid=T2_ID),
        *why,
    ]


def why_records() -> dict[str, list[dict[str, Any]]]:
    """Records a clinical-safety reviewer wrote from the policy text, each once a false answer."""

    def basal_bolus(pid: str) -> list[dict[str, Any]]:
        return [
            insulin(GLARGINE_VTM, text="once daily at night", pid=pid),
            insulin(text="with meals", pid=pid),
        ]

    def t1(pid: str, *rest: dict[str, Any]) -> list[dict[str, Any]]:
        return [patient("1985-03-04", pid=pid), condition(T1DM, onset=ago(3000), pid=pid), *rest]

    dead = patient("1985-03-04", pid="it-deceased")
    dead["deceasedDateTime"] = ago(20)
    return {
        "it-stale-confirmation": t1(
            "it-stale-confirmation",
            hba1c(52, on=ago(30), pid="it-stale-confirmation"),
            *basal_bolus("it-stale-confirmation"),
            confirmation("hba1c-69-or-above-on-mdi", on="2019-05-01", pid="it-stale-confirmation"),
            confirmation("nice-pump-criteria", on="2019-05-01", pid="it-stale-confirmation"),
            condition(text="Needle phobia", onset=ago(30), pid="it-stale-confirmation"),
        ),
        "it-family-history": t1(
            "it-family-history",
            condition(
                text="Family history of needle phobia (mother)",
                onset=ago(30),
                pid="it-family-history",
            ),
        ),
        "it-hba1c-72-percent": t1(
            "it-hba1c-72-percent",
            hba1c(72, "%", on=ago(30), pid="it-hba1c-72-percent"),
            *basal_bolus("it-hba1c-72-percent"),
        ),
        "it-premix-bd": t1(
            "it-premix-bd",
            hba1c(80, on=ago(30), pid="it-premix-bd"),
            insulin(PREMIXED_ASPART, text="twice daily", pid="it-premix-bd"),
        ),
        "it-both-types": [
            *t1("it-both-types", hba1c(80, on=ago(30), pid="it-both-types")),
            condition(T2DM, onset=ago(400), pid="it-both-types"),
            *basal_bolus("it-both-types"),
            condition(text="Needle phobia", onset=ago(30), pid="it-both-types"),
        ],
        "it-deceased": [
            dead,
            condition(T1DM, onset=ago(3000), pid="it-deceased"),
            hba1c(80, on=ago(60), pid="it-deceased"),
            *basal_bolus("it-deceased"),
            condition(text="Needle phobia", onset=ago(60), pid="it-deceased"),
        ],
        "it-text-type1": [
            patient("1985-03-04", pid="it-text-type1"),
            condition(text="Type 1 diabetes", onset=ago(3000), pid="it-text-type1"),
            hba1c(80, on=ago(30), pid="it-text-type1"),
            *basal_bolus("it-text-type1"),
        ],
        "it-hypo-coma": t1("it-hypo-coma", condition(HYPO_COMA, onset=ago(40), pid="it-hypo-coma")),
        "it-old-findings": t1(
            "it-old-findings",
            condition(LIPO, onset=ago(8 * 365), pid="it-old-findings"),
            condition(IMPAIRED_AWARENESS, onset=ago(8 * 365), pid="it-old-findings"),
            *basal_bolus("it-old-findings"),
        ),
        "it-remained-high": t1(
            "it-remained-high",
            hba1c(55, on=ago(300), pid="it-remained-high"),
            hba1c(58, on=ago(150), pid="it-remained-high"),
            hba1c(71, on=ago(20), pid="it-remained-high"),
            *basal_bolus("it-remained-high"),
        ),
    }


@pytest.fixture(scope="module")
def loaded_fhir(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.load(put_transaction(records()))
    return fhir_server


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    with ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true"}) as svc:
        yield svc


def call(service: ServiceProcess, hook: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{service.url}/cds-services/{SERVICE[hook]}", json=body, timeout=10)


def outcome(resp: requests.Response) -> str | None:
    assert resp.status_code == 200, resp.text
    cards = resp.json()["cards"]
    assert len(cards) <= 1
    return cards[0]["extension"]["iport-cds.eligibility"]["outcome"] if cards else None


def draft(pid: str) -> dict[str, Any]:
    d = iport_device_request(pid=pid)
    d["id"] = f"draft-{pid}"
    return d


CASES = [
    ("order-select", MEETS_ID, "meets-criteria"),
    ("order-sign", MEETS_ID, "meets-criteria"),
    # one patient-view card per patient: the NICE pump card speaks for this patient (it ranks
    # before the i-Port) and the i-Port patient-view service is silent
    ("pump-patient-view", MEETS_ID, "meets-criteria"),
    ("patient-view", MEETS_ID, None),
    ("order-sign", INSUFFICIENT_ID, "insufficient-information"),
    ("order-select", T2_ID, "insufficient-information"),
    ("patient-view", INSUFFICIENT_ID, None),  # patient-view is silent unless criteria are met
    ("order-sign", CHILD_ID, "insufficient-information"),
]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize(("hook", "pid", "expected"), CASES)
def test_hooks_end_to_end(
    service: ServiceProcess,
    loaded_fhir: FhirTestServer,
    mode: str,
    hook: str,
    pid: str,
    expected: str | None,
) -> None:
    real_hook = "patient-view" if hook.endswith("patient-view") else hook
    drafts = [draft(pid)] if real_hook != "patient-view" else None
    if mode == "prefetch":
        body = hook_request(
            real_hook,
            prefetch=ehr_prefetch(service, loaded_fhir, real_hook, pid),
            drafts=drafts,
            patient_id=pid,
        )
    else:
        body = hook_request(
            real_hook,
            drafts=drafts,
            patient_id=pid,
            fhir_server=loaded_fhir.base_url,
            access_token="it-token",
        )
    assert outcome(call(service, hook, body)) == expected


def test_fetched_and_prefetched_answers_agree_criterion_by_criterion(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    pid = INSUFFICIENT_ID
    a = hook_request(
        "order-sign",
        prefetch=ehr_prefetch(service, loaded_fhir, "order-sign", pid),
        drafts=[draft(pid)],
        patient_id=pid,
    )
    b = hook_request(
        "order-sign", drafts=[draft(pid)], patient_id=pid, fhir_server=loaded_fhir.base_url
    )
    ext_a = call(service, "order-sign", a).json()["cards"][0]["extension"]
    ext_b = call(service, "order-sign", b).json()["cards"][0]["extension"]
    # What could not be read depends on how it was read (a server's unsupported search
    # parameter is reported only when it is searched); the decision must not.
    for ext in (ext_a, ext_b):
        ext["iport-cds.eligibility"].pop("warnings", None)
    assert ext_a == ext_b
    hba1c_result = next(
        c
        for c in ext_a["iport-cds.eligibility"]["criteria"]
        if c["id"] == "hba1c-69-or-above-on-mdi"
    )
    assert hba1c_result["result"] == "not-met"  # 8.9 % = 73.8 mmol/mol, but BD is not MDI


def test_unreachable_fhir_server_answers_412(service: ServiceProcess) -> None:
    from tests.service_process import free_port

    body = hook_request(
        "order-sign",
        drafts=[draft(MEETS_ID)],
        patient_id=MEETS_ID,
        fhir_server=f"http://127.0.0.1:{free_port()}/fhir",
    )
    resp = call(service, "order-sign", body)
    assert resp.status_code == 412
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_every_search_is_one_the_fhir_server_supports(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    """Fetched from the real FHIR server: every search is scoped to the patient by a parameter
    the server supports, except DeviceRequest and DeviceUseStatement, which this server cannot
    search by patient at all; each answer is filtered here and said once, not as a warning per
    record."""
    body = hook_request(
        "order-sign",
        drafts=[draft(MEETS_ID)],
        patient_id=MEETS_ID,
        fhir_server=loaded_fhir.base_url,
    )
    card = call(service, "order-sign", body).json()["cards"][0]
    unread = card["extension"]["iport-cds.eligibility"].get("warnings", [])
    said = [card["detail"], *unread]  # the card counts them; its extension names each
    assert not [text for text in said if "search parameter" in text.lower()]
    assert not [text for text in said if "not used: " in text]
    lines = [text for text in unread if "does not support this search" in text]
    assert sorted(line.split(":")[0] for line in lines) == ["deviceUses", "devices"]


def test_a_patient_the_fhir_server_does_not_have_is_said_as_such(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    body = hook_request(
        "order-sign",
        drafts=[draft("no-such-patient")],
        patient_id="no-such-patient",
        fhir_server=loaded_fhir.base_url,
    )
    resp = call(service, "order-sign", body)
    assert resp.status_code == 412
    diagnostics = resp.json()["issue"][0]["diagnostics"]
    assert "the FHIR server has no Patient/no-such-patient" in diagnostics
    assert "deadline" not in diagnostics


def test_the_log_holds_no_token_or_patient_id(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    body = hook_request(
        "order-sign",
        drafts=[draft(MEETS_ID)],
        patient_id=MEETS_ID,
        fhir_server=loaded_fhir.base_url,
        access_token="it-secret-token-123",
    )
    assert outcome(call(service, "order-sign", body)) == "meets-criteria"
    log = service.log
    assert '"message":"hook answered"' in log
    assert '"outcome":"meets-criteria"' in log
    assert "it-secret-token-123" not in log
    assert MEETS_ID not in log


# (patient, criterion -> expected result, outcomes the answer must not be)
WHY_CASES = [
    (
        "it-stale-confirmation",
        {"hba1c-69-or-above-on-mdi": "not-met", "nice-pump-criteria": "unknown"},
        {"meets-criteria"},
    ),
    ("it-family-history", {"needle-phobia": "unknown"}, {"meets-criteria"}),
    ("it-hba1c-72-percent", {"hba1c-69-or-above-on-mdi": "unknown"}, {"meets-criteria"}),
    ("it-premix-bd", {"hba1c-69-or-above-on-mdi": "not-met"}, {"meets-criteria"}),
    (
        "it-both-types",
        {"type-1-diabetes": "unknown", "type-2-diabetes": "unknown"},
        {"meets-criteria", "does-not-meet-criteria"},
    ),
    ("it-deceased", {}, {"meets-criteria", "does-not-meet-criteria"}),
    ("it-text-type1", {"type-1-diabetes": "met"}, {"does-not-meet-criteria"}),
    ("it-hypo-coma", {"disabling-hypoglycaemia": "unknown"}, {"meets-criteria"}),
    (
        "it-old-findings",
        {"lipohypertrophy": "unknown", "disabling-hypoglycaemia": "unknown"},
        {"meets-criteria"},
    ),
    ("it-remained-high", {"hba1c-69-or-above-on-mdi": "not-met"}, {"meets-criteria"}),
]


def order_sign(
    service: ServiceProcess,
    fhir: FhirTestServer,
    mode: str,
    pid: str,
    prefetch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one card of an order-sign call: in "prefetch" mode with ``prefetch``, else the
    EHR's prefetch filled from ``fhir``; in "fetch" mode the service fetches for itself."""
    if mode == "prefetch":
        body = hook_request(
            "order-sign",
            prefetch=prefetch or ehr_prefetch(service, fhir, "order-sign", pid),
            drafts=[draft(pid)],
            patient_id=pid,
        )
    else:
        body = hook_request(
            "order-sign", drafts=[draft(pid)], patient_id=pid, fhir_server=fhir.base_url
        )
    resp = call(service, "order-sign", body)
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    return card  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize(
    ("pid", "criteria", "never"), WHY_CASES, ids=[c[0].removeprefix("it-") for c in WHY_CASES]
)
def test_records_that_once_gave_a_false_answer(
    service: ServiceProcess,
    loaded_fhir: FhirTestServer,
    mode: str,
    pid: str,
    criteria: dict[str, str],
    never: set[str],
) -> None:
    card = order_sign(service, loaded_fhir, mode, pid)
    ext = card["extension"]["iport-cds.eligibility"]
    assert ext["outcome"] not in never, card["detail"]
    results = {c["id"]: c["result"] for c in ext["criteria"]}
    for criterion, expected in criteria.items():
        assert results[criterion] == expected, (criterion, card["detail"])


def test_the_card_explains_what_it_did_not_use(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    detail = order_sign(service, loaded_fhir, "fetch", "it-hba1c-72-percent")["detail"]
    assert "implausible, not used" in detail
    detail = order_sign(service, loaded_fhir, "fetch", "it-old-findings")["detail"]
    assert "last recorded on" in detail
    card = order_sign(service, loaded_fhir, "fetch", "it-remained-high")
    # met, so on the card only where it has room; its reason is in the extension and the app
    reasons = [c["reason"] for c in card["extension"]["iport-cds.eligibility"]["criteria"]]
    assert any("3 results read" in r for r in reasons)


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
def test_a_search_the_fhir_server_cannot_filter_is_not_called_unreadable_records(
    service: ServiceProcess, loaded_fhir: FhirTestServer, mode: str
) -> None:
    """sekmet ignores ``subject`` on DeviceRequest searches (as the CDS Hooks Sandbox's local
    FHIR server does): every patient's device requests come back, and the service keeps this
    patient's. Nothing of this patient went unread, and the card must not say otherwise: it
    cannot change the outcome, so it is named in the extension and the app, not on the card."""
    card = order_sign(service, loaded_fhir, mode, MEETS_ID)
    warnings = card["extension"]["iport-cds.eligibility"]["warnings"]
    assert any("devices: the FHIR server does not support this search" in w for w in warnings)
    assert not any("not used: " in w for w in warnings)
    assert "could not be read" not in card["detail"]
    assert "from reading the record" not in card["detail"]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
def test_a_deceased_patient_is_not_assessed(
    service: ServiceProcess, loaded_fhir: FhirTestServer, mode: str
) -> None:
    pid = "it-deceased"
    card = order_sign(service, loaded_fhir, mode, pid)
    assert card["indicator"] == "warning"
    assert "recorded as deceased" in card["summary"]
    if mode == "prefetch":
        body = hook_request(
            "patient-view",
            prefetch=ehr_prefetch(service, loaded_fhir, "patient-view", pid),
            patient_id=pid,
        )
    else:
        body = hook_request("patient-view", patient_id=pid, fhir_server=loaded_fhir.base_url)
    assert outcome(call(service, "patient-view", body)) is None
