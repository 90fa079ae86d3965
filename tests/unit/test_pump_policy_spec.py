"""Second policy: NICE insulin pump therapy criteria (TA151) as the i-Port policy quotes them,
prompted on patient-view — and how its card and the i-Port card speak together."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from flask.testing import FlaskClient

from policy import Decision, Outcome, PolicyError, Tri, load_policies, load_policy
from policy.loading import policy_names
from service import create_app
from tests.builders import (
    HYPO_COMA,
    PREMIXED_ASPART,
    SNOMED,
    T1DM,
    T2DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    iport_device_request,
    patient,
)
from tests.hooks import SERVICE, hook_request

Decide = Callable[..., Decision]
PUMP = load_policy("nice-insulin-pump")
MDI = (insulin(text="with meals"), insulin(text="at night"))
LOSS_OF_WARNING = (SNOMED, "170766006", "Loss of hypoglycaemic warning")


def on_pump() -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": "csii-1",
        "status": "completed",
        "subject": {"reference": "Patient/pat-1"},
        "code": {"coding": [{"system": SNOMED, "code": "180178009", "display": "CSII"}]},
        "performedDateTime": "2024-03-01",
    }


@pytest.mark.parametrize(
    ("resources", "outcome"),
    [
        ((patient(), condition(T1DM), hba1c(75), *MDI), Outcome.MEETS),
        ((patient(), condition(T1DM), hba1c(68), *MDI), Outcome.INSUFFICIENT),  # hypo unknown
        (
            (
                patient(),
                condition(T1DM),
                hba1c(68),
                *MDI,
                confirmation("disabling-hypoglycaemia", False),
            ),
            Outcome.DOES_NOT_MEET,
        ),
        ((patient("2018-01-01"), condition(T1DM), confirmation("mdi-impractical")), Outcome.MEETS),
        ((patient(), condition(T2DM), hba1c(90), *MDI), Outcome.DOES_NOT_MEET),  # type 1 only
        # both types active: a conflict, never met
        ((patient(), condition(T1DM), condition(T2DM), hba1c(80), *MDI), Outcome.INSUFFICIENT),
        # no diagnosis but insulin: the type is unknown, not "does not meet"
        ((patient(), hba1c(80), *MDI), Outcome.INSUFFICIENT),
        # a type 1 diagnosis recorded as text
        ((patient(), condition(text="Type 1 diabetes"), hba1c(80), *MDI), Outcome.MEETS),
        # premixed twice a day is not MDI; hypoglycaemia unknown
        (
            (patient(), condition(T1DM), hba1c(80), insulin(PREMIXED_ASPART, text="twice daily")),
            Outcome.INSUFFICIENT,
        ),
        # a deceased patient is never assessed
        (
            ({**patient(), "deceasedBoolean": True}, condition(T1DM), hba1c(80), *MDI),
            Outcome.INSUFFICIENT,
        ),
    ],
)
def test_nice_criteria(decide: Decide, resources: tuple[Any, ...], outcome: Outcome) -> None:
    assert decide(*resources, policy=PUMP).outcome is outcome


def test_already_on_pump_is_read_from_a_pump_record_and_absence_is_not_met(decide: Decide) -> None:
    assert (
        decide(patient(), condition(T1DM), on_pump(), policy=PUMP)
        .criteria["already-on-pump"]
        .result
        is Tri.MET
    )
    assert (
        decide(patient(), condition(T1DM), policy=PUMP).criteria["already-on-pump"].result
        is Tri.NOT_MET
    )


def test_the_two_policies_read_the_shared_nice_criteria_identically(
    decide: Decide, iport_policy: Any
) -> None:
    cases = [
        (patient(), condition(T1DM), hba1c(75), *MDI),
        (patient("2016-06-01"), condition(T1DM), hba1c(80)),
        (
            patient(),
            condition(T1DM),
            condition(("http://snomed.info/sct", "170766006", "Loss of hypo warning")),
        ),
        (patient(None), condition(T1DM), hba1c(75), *MDI),
        (patient(), condition(T1DM), hba1c(75), insulin(PREMIXED_ASPART, text="twice daily")),
        (patient(), condition(T1DM), hba1c(72, "%"), *MDI),
        (
            patient(),
            condition(T1DM),
            hba1c(55, on="2026-02-01"),
            hba1c(58, on="2026-06-01"),
            hba1c(71, on="2026-10-01"),
            *MDI,
        ),
        (patient(), condition(T1DM), condition(HYPO_COMA, onset="2026-08-01")),
        (patient(), condition(T1DM), condition(LOSS_OF_WARNING, onset="2018-01-01")),
        (patient(), condition(T1DM), condition(T2DM), hba1c(75), *MDI),
        (patient(), condition(text="Type 1 diabetes"), hba1c(75), *MDI),
        (patient(), hba1c(75), *MDI),
        (patient(), condition(T1DM), hba1c(75), *MDI, confirmation("hba1c-69-or-above-on-mdi")),
    ]
    shared = [
        "type-1-diabetes",
        "age-12-or-over",
        "disabling-hypoglycaemia",
        "hba1c-69-or-above-on-mdi",
        "mdi-impractical",
        "nice-pump-criteria",
    ]
    for resources in cases:
        a, b = decide(*resources, policy=iport_policy), decide(*resources, policy=PUMP)
        assert [a.criteria[c].result for c in shared] == [b.criteria[c].result for c in shared]


def test_a_parameter_no_policy_declares_is_refused() -> None:
    with pytest.raises(PolicyError, match="hba1cLookbackMonthz"):
        load_policies(["iport-advance", "nice-insulin-pump"], {"hba1cLookbackMonthz": 6})
    both = load_policies(["iport-advance", "nice-insulin-pump"], {"hba1cLookbackMonths": 6})
    assert {p.hba1c_lookback_months for p in both.values()} == {6}


def test_an_unknown_name_in_the_policies_setting_stops_start_up_with_the_valid_names() -> None:
    with pytest.raises(PolicyError) as raised:
        create_app({"REQUIRE_AUTH": False, "POLICIES": ["iport-advance", "nope"]})
    message = str(raised.value)
    assert message == (
        "POLICIES names 'nope', which is not a policy of this service; choose from: "
        f"{', '.join(policy_names())} "
        "(or give the path of a policy file)"
    )


# -- the patient-view service -------------------------------------------------------------------
@pytest.fixture
def client() -> Iterator[FlaskClient]:
    n = iter(range(1, 1000))
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "CLOCK": lambda: datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
            "UUID_FACTORY": lambda: f"uuid-{next(n)}",
        }
    )
    with app.test_client() as c:
        yield c


def cards(client: FlaskClient, hook: str, resources: list[Any], **kw: Any) -> list[dict[str, Any]]:
    real_hook = "patient-view" if hook.endswith("patient-view") else hook
    resp = client.post(
        f"/cds-services/{SERVICE[hook]}", json=hook_request(real_hook, resources=resources, **kw)
    )
    assert resp.status_code == 200, resp.json
    return resp.json["cards"]  # type: ignore[no-any-return]


def test_discovery_offers_the_pump_service(client: FlaskClient) -> None:
    ids = {s["id"] for s in client.get("/cds-services").json["services"]}
    assert "nice-insulin-pump-patient-view" in ids
    only_iport = create_app({"REQUIRE_AUTH": False, "POLICIES": ["iport-advance"]}).test_client()
    assert "nice-insulin-pump-patient-view" not in {
        s["id"] for s in only_iport.get("/cds-services").json["services"]
    }


def test_pump_card_when_criteria_met_and_not_on_a_pump(client: FlaskClient) -> None:
    (card,) = cards(client, "pump-patient-view", [patient(), condition(T1DM), hba1c(75), *MDI])
    assert card["indicator"] == "info"
    assert card["summary"] == "Meets NICE criteria for insulin pump therapy: consider referral"
    ext = card["extension"]["iport-cds.eligibility"]
    assert ext["policy"]["id"] == "nice-insulin-pump"
    assert ext["outcome"] == "meets-criteria"
    assert "](https://www.nice.org.uk/guidance/ta151)" in card["detail"]
    (suggestion,) = card["suggestions"]
    referral = suggestion["actions"][0]["resource"]
    ServiceRequest.model_validate(referral)
    assert referral["code"]["coding"][0]["code"] == "715159005"
    assert referral["requester"] == {"reference": "Practitioner/dr-1"}
    assert {r["code"] for r in card["overrideReasons"]} >= {"patient-declined", "already-referred"}


@pytest.mark.parametrize(
    "resources",
    [
        [patient(), condition(T1DM), hba1c(75), *MDI, on_pump()],  # already on a pump
        [patient(), condition(T1DM), hba1c(60), *MDI],  # insufficient information
        [patient(), condition(T2DM), hba1c(90), *MDI],  # does not meet
    ],
)
def test_no_pump_card_otherwise(client: FlaskClient, resources: list[Any]) -> None:
    assert cards(client, "pump-patient-view", resources) == []


def test_iport_card_defers_to_the_pump_when_both_apply(client: FlaskClient) -> None:
    record = [patient(), condition(T1DM), hba1c(75), *MDI, condition(text="Needle phobia")]
    # patient-view: one card, the pump's, naming the i-Port; the i-Port service is silent
    (pump,) = cards(client, "pump-patient-view", record)
    assert cards(client, "patient-view", record) == []
    assert (
        pump["detail"]
        .split("\n\n")[0]
        .endswith("pathway. Also meets i-Port Advance (Humber and North Yorkshire).")
    )
    # An i-Port order keeps the i-Port card, which says first that the pump applies
    drafts = [iport_device_request()]
    (iport,) = cards(client, "order-select", record, drafts=drafts)
    assert iport["detail"].startswith("> NICE TA151 (insulin pump) is also met")
    # On a pump already: no pump card and no i-Port prompt (the i-Port is an alternative to a
    # pump); an i-Port order's card says a pump is in use and nothing of TA151's prompt.
    assert cards(client, "patient-view", [*record, on_pump()]) == []
    assert cards(client, "pump-patient-view", [*record, on_pump()]) == []
    (iport_on_pump,) = cards(client, "order-select", [*record, on_pump()], drafts=drafts)
    assert "insulin pump therapy (TA151)" not in iport_on_pump["detail"]
    assert "Already on an insulin pump" in iport_on_pump["detail"]


def test_a_referral_for_pump_assessment_is_not_a_pump(decide: Decide) -> None:
    referral = {
        "resourceType": "ServiceRequest",
        "id": "ref-1",
        "status": "active",
        "subject": {"reference": "Patient/pat-1"},
        "code": {"text": "Referral for insulin pump assessment"},
        "authoredOn": "2026-10-01",
    }
    d = decide(patient(), condition(T1DM), hba1c(75), *MDI, referral, policy=PUMP)
    assert d.criteria["already-on-pump"].result is Tri.NOT_MET
    assert d.outcome is Outcome.MEETS


def test_the_i_port_policy_url_setting_does_not_move_the_nice_link() -> None:
    both = load_policies(
        ["iport-advance", "nice-insulin-pump"], {"policyUrl": "https://icb.example/iport.pdf"}
    )
    assert both["hny-iport-advance"].info.url == "https://icb.example/iport.pdf"
    assert both["nice-insulin-pump"].info.url == "https://www.nice.org.uk/guidance/ta151"


@pytest.mark.parametrize("status", ["active", "on-hold"])
@pytest.mark.parametrize("device", ["Omnipod 5", "MiniMed 780G", "CamAPS FX with mylife YpsoPump"])
def test_backup_pens_of_a_pump_user_are_not_mdi_and_give_no_iport_prompt(
    client: FlaskClient, decide: Decide, device: str, status: str
) -> None:
    """A person on (or pausing) a pump or hybrid closed loop keeps pens as back-up: their HbA1c
    was reached on the pump, not 'with MDI', so neither TA151 nor the i-Port is met from it,
    and no patient-view card speaks."""
    use = {
        "resourceType": "DeviceUseStatement",
        "id": "dus-1",
        "status": status,
        "subject": {"reference": "Patient/pat-1"},
        "device": {"display": device},
        "recordedOn": "2026-11-02",
        "timingPeriod": {"start": "2025-03-03"},
    }
    record = [patient(), condition(T1DM), hba1c(78), *MDI, condition(text="Needle phobia"), use]
    pump = decide(*record, policy=PUMP)
    assert pump.criteria["hba1c-69-or-above-on-mdi"].result is Tri.UNKNOWN
    assert "On an insulin pump" in pump.criteria["hba1c-69-or-above-on-mdi"].reason
    assert pump.outcome is not Outcome.MEETS
    assert decide(*record).outcome is not Outcome.MEETS  # the i-Port policy
    for hook in ("patient-view", "pump-patient-view", "hcl-patient-view"):
        assert cards(client, hook, record) == [], hook


def test_a_pump_record_of_two_patients_leaves_already_on_a_pump_unknown_and_no_prompt(
    client: FlaskClient, decide: Decide
) -> None:
    """A statement of use about this patient naming a pump Device assigned to someone else
    names two patients: not used, and then whether a pump is in use is not known — no prompt
    to start what the person may already have."""
    device = {
        "resourceType": "Device",
        "id": "dev-1",
        "status": "active",
        "patient": {"reference": "Patient/someone-else"},
        "deviceName": [{"name": "MiniMed 780G", "type": "user-friendly-name"}],
    }
    use = {
        "resourceType": "DeviceUseStatement",
        "id": "dus-1",
        "status": "active",
        "subject": {"reference": "Patient/pat-1"},
        "device": {"reference": "Device/dev-1"},
        "recordedOn": "2026-11-02",
    }
    record = [patient(), condition(T1DM), hba1c(78), *MDI, device, use]
    pump = decide(*record, policy=PUMP)
    assert pump.criteria["already-on-pump"].result is Tri.UNKNOWN
    assert cards(client, "pump-patient-view", record) == []
