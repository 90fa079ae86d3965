"""The CDS Hooks service over HTTP (Flask test client): discovery, hooks, cards, bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from fhir.resources.R4B.observation import Observation
from flask.testing import FlaskClient

from service import create_app
from service.state import state_of
from tests.builders import (
    IMPAIRED_AWARENESS,
    LIPO,
    PID,
    T1DM,
    T2DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    iport_device_request,
    patient,
    type1_meets,
)
from tests.hooks import PREFETCH_KEYS, SERVICE, hook_request, searchset

FHIR = "https://fhir.example.nhs.uk/r4"
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)

MEETS = type1_meets()
INSUFFICIENT = [
    patient(),
    condition(T1DM),
    hba1c(75),
    insulin(text="with meals"),
    insulin(text="at night"),
]
NO_DIABETES = [patient(), hba1c(40)]


def counter() -> Any:
    n = iter(range(1, 10_000))
    return lambda: f"00000000-0000-4000-8000-{next(n):012d}"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {
        "REQUIRE_AUTH": False,
        "FHIR_SERVER_ALLOWLIST": [FHIR],
        "CLOCK": lambda: NOW,
        "UUID_FACTORY": counter(),
    }


@pytest.fixture
def client(app_config: dict[str, Any]) -> Iterator[FlaskClient]:
    app = create_app(app_config)
    app.testing = True
    with app.test_client() as c:
        yield c


def post(client: FlaskClient, hook: str, body: Any, **kw: Any) -> Any:
    return client.post(f"/cds-services/{SERVICE[hook]}", json=body, **kw)


def card_of(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.json
    (card,) = resp.json["cards"]
    return card  # type: ignore[no-any-return]


def draft() -> dict[str, Any]:
    d = iport_device_request()
    d["id"] = "draft-iport"
    return d


# -- discovery ---------------------------------------------------------------------------------
def test_discovery_lists_three_services_with_valid_prefetch_tokens(client: FlaskClient) -> None:
    services = client.get("/cds-services").json["services"]
    assert {s["hook"] for s in services} == {"order-select", "order-sign", "patient-view"}
    for s in services:
        assert s["title"]
        assert s["description"]
        assert set(s["prefetch"]) == set(PREFETCH_KEYS)
        for template in s["prefetch"].values():
            tokens = re.findall(r"\{\{(.*?)\}\}", template)
            assert tokens
            assert set(tokens) <= {"context.patientId", "context.encounterId", "context.userId"}


def test_cors_preflight_on_every_endpoint(client: FlaskClient) -> None:
    for path in (
        "/cds-services",
        "/cds-services/iport-advance-order-select",
        "/cds-services/x/feedback",
    ):
        resp = client.options(
            path,
            headers={
                "Origin": "https://sandbox.cds-hooks.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Content-Type, Authorization",
            },
        )
        assert resp.status_code == 200
        assert resp.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "authorization" in resp.headers["Access-Control-Allow-Headers"].lower()


# -- order-select / order-sign -------------------------------------------------------------------
def test_order_select_of_an_iport_gives_one_eligibility_card(client: FlaskClient) -> None:
    card = card_of(
        post(
            client, "order-select", hook_request("order-select", resources=MEETS, drafts=[draft()])
        )
    )
    assert card["indicator"] == "info"
    assert len(card["summary"]) < 140
    assert "meets" in card["summary"]
    assert "type 1 diabetes pathway" in card["summary"]
    ext = card["extension"]["iport-cds.eligibility"]
    assert ext["outcome"] == "meets-criteria"
    assert ext["pathway"] == "type-1"
    assert ext["policy"] == {
        "id": "hny-iport-advance",
        "version": "2025-12-04",
        "reviewDue": "2028-12-31",
    }
    by_id = {c["id"]: c for c in ext["criteria"]}
    assert by_id["needle-phobia"]["result"] == "met"
    assert by_id["needle-phobia"]["evidence"]
    assert by_id["mdi-impractical"]["result"] == "unknown"
    assert "review due 31 Dec 2028" in card["source"]["label"]
    assert card["source"]["topic"]["code"] == "iport-advance-eligibility"
    assert {r["code"] for r in card["overrideReasons"]} >= {"ifr-submitted", "clinical-judgement"}


def test_order_select_of_something_else_gives_no_card(client: FlaskClient) -> None:
    other = insulin(status="draft")
    body = hook_request(
        "order-select",
        resources=MEETS,
        drafts=[other, draft()],
        selections=[f"MedicationRequest/{other['id']}"],
    )
    assert post(client, "order-select", body).json == {"cards": []}


def test_order_select_with_a_draft_that_has_no_code_yet(client: FlaskClient) -> None:
    blank = {"resourceType": "MedicationRequest", "id": "new", "status": "draft", "intent": "order"}
    body = hook_request(
        "order-select", resources=MEETS, drafts=[blank], selections=["MedicationRequest/new"]
    )
    assert post(client, "order-select", body).json == {"cards": []}


def test_order_sign_checks_every_draft(client: FlaskClient) -> None:
    body = hook_request(
        "order-sign", resources=INSUFFICIENT, drafts=[insulin(status="draft"), draft()]
    )
    card = card_of(post(client, "order-sign", body))
    assert card["indicator"] == "warning"
    assert "not enough information" in card["summary"]


def test_iport_as_a_dmd_style_medication_request_draft(client: FlaskClient) -> None:
    med = {
        "resourceType": "MedicationRequest",
        "id": "rx1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PID}"},
        "medicationCodeableConcept": {"text": "i-Port Advance injection port 6mm (Medtronic Ltd)"},
    }
    card = card_of(
        post(client, "order-sign", hook_request("order-sign", resources=MEETS, drafts=[med]))
    )
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"


def test_suggestions_create_confirmation_observations_for_unknowns(client: FlaskClient) -> None:
    card = card_of(
        post(
            client,
            "order-sign",
            hook_request("order-sign", resources=INSUFFICIENT, drafts=[draft()]),
        )
    )
    assert card["selectionBehavior"] == "any"
    codes = []
    for s in card["suggestions"]:
        assert s["uuid"]
        (action,) = s["actions"]
        assert action["type"] == "create"
        obs = action["resource"]
        Observation.model_validate(obs)  # a valid FHIR Observation
        assert obs["subject"] == {"reference": f"Patient/{PID}"}
        assert obs["performer"] == [{"reference": "Practitioner/dr-1"}]
        assert obs["valueBoolean"] is True
        codes.append(obs["code"]["coding"][0]["code"])
    assert "mdi-impractical" in codes
    assert "needle-phobia" in codes
    assert "type-1-diabetes" not in codes  # met criteria are not offered


def test_accepting_a_suggestion_then_firing_again_meets(client: FlaskClient) -> None:
    first = card_of(
        post(
            client,
            "order-sign",
            hook_request("order-sign", resources=INSUFFICIENT, drafts=[draft()]),
        )
    )
    suggestion = next(s for s in first["suggestions"] if "Needle phobia" in s["label"])
    stored = dict(
        suggestion["actions"][0]["resource"], id="stored-confirmation"
    )  # as the EHR stores it
    again = card_of(
        post(
            client,
            "order-sign",
            hook_request("order-sign", resources=[*INSUFFICIENT, stored], drafts=[draft()]),
        )
    )
    assert again["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"


def test_does_not_meet_links_the_individual_funding_request_route(client: FlaskClient) -> None:
    body = hook_request(
        "order-sign",
        resources=[
            patient(),
            condition(T2DM),
            insulin(text="BD"),
            confirmation("diabetes-specialist-recommendation", False),
        ],
        drafts=[draft()],
    )
    card = card_of(post(client, "order-sign", body))
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "does-not-meet-criteria"
    assert any("funding" in link["label"].lower() for link in card["links"])


def test_no_empty_optional_fields(client: FlaskClient) -> None:
    body = hook_request(
        "order-sign",
        resources=[patient(), condition(T1DM), condition(LIPO), condition(IMPAIRED_AWARENESS)],
        drafts=[draft()],
    )
    card = card_of(post(client, "order-sign", body))

    def walk(x: Any, path: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if not (k == "pathway" and "extension" in path):
                    assert v not in (None, "", [], {}), f"{path}.{k} is empty"
                walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")

    walk(card, "card")
    assert "suggestions" not in card  # meets: nothing to confirm
    assert "selectionBehavior" not in card


# -- patient-view -------------------------------------------------------------------------------
def test_patient_view_speaks_only_when_criteria_are_met(app_config: dict[str, Any]) -> None:
    # the i-Port service on its own (with one card per patient, a pump's card may rank first)
    client = create_app(app_config | {"PATIENT_VIEW_ONE_CARD": False}).test_client()
    card = card_of(post(client, "patient-view", hook_request("patient-view", resources=MEETS)))
    assert card["summary"].startswith("Meets i-Port Advance criteria")
    assert post(
        client, "patient-view", hook_request("patient-view", resources=INSUFFICIENT)
    ).json == {"cards": []}
    assert post(
        client, "patient-view", hook_request("patient-view", resources=NO_DIABETES)
    ).json == {"cards": []}


def test_patient_view_is_silent_when_an_iport_is_already_ordered(client: FlaskClient) -> None:
    body = hook_request("patient-view", resources=[*MEETS, iport_device_request(status="active")])
    assert post(client, "patient-view", body).json == {"cards": []}


# -- data: prefetch, null, absent, fetched ---------------------------------------------------------
def test_null_prefetch_means_nothing_there_and_no_fetch(client: FlaskClient) -> None:
    prefetch = dict.fromkeys(PREFETCH_KEYS)
    body = hook_request("order-sign", prefetch=prefetch, drafts=[draft()])
    card = card_of(post(client, "order-sign", body))  # no fhirServer: nothing was fetched
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "does-not-meet-criteria"


def fake_fhir(resources: list[dict[str, Any]], base: str = FHIR) -> None:
    """A FHIR server (via responses) at ``base`` that answers reads and patient searches from
    ``resources``."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        import json

        url = urlsplit(request.url)
        path = url.path[len(urlsplit(base).path) + 1 :]
        assert request.headers["Authorization"] == "Bearer tok"
        if "/" in path:
            rtype, rid = path.split("/")
            found = [r for r in resources if r["resourceType"] == rtype and r["id"] == rid]
            return (200, {}, json.dumps(found[0])) if found else (404, {}, "{}")
        query = parse_qs(url.query)
        assert (query.get("subject") or query["patient"]) == [f"Patient/{PID}"]
        return 200, {}, json.dumps(searchset([r for r in resources if r["resourceType"] == path]))

    responses.add_callback(responses.GET, re.compile(re.escape(base) + r"/.*"), callback=answer)


@responses.activate
def test_absent_prefetch_is_fetched_from_the_fhir_server(client: FlaskClient) -> None:
    fake_fhir(MEETS)
    body = hook_request("order-sign", drafts=[draft()], fhir_server=FHIR, access_token="tok")
    card = card_of(post(client, "order-sign", body))
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"
    assert len(responses.calls) == len(PREFETCH_KEYS)


@responses.activate
def test_only_missing_keys_are_fetched(client: FlaskClient) -> None:
    fake_fhir(MEETS)
    body = hook_request(
        "order-sign", resources=MEETS, drafts=[draft()], fhir_server=FHIR, access_token="tok"
    )
    del body["prefetch"]["hba1c"]
    body["prefetch"]["medications"] = "garbage"  # unusable: fetched instead, and reported
    card = card_of(post(client, "order-sign", body))
    assert sorted(urlsplit(c.request.url).path.rsplit("/", 1)[1] for c in responses.calls) == [
        "MedicationRequest",
        "Observation",
    ]
    assert "was not a FHIR resource" in in_the_app_only(card)


@responses.activate
def test_fhir_server_not_on_the_allowlist_gets_no_request_and_412(client: FlaskClient) -> None:
    body = hook_request(
        "order-sign",
        drafts=[draft()],
        fhir_server="https://attacker.example/fhir",
        access_token="tok",
    )
    resp = post(client, "order-sign", body)
    assert resp.status_code == 412
    assert resp.json["resourceType"] == "OperationOutcome"
    assert "allowlist" in resp.json["issue"][0]["diagnostics"]
    assert len(responses.calls) == 0


@responses.activate
def test_unreachable_fhir_server_is_412(client: FlaskClient) -> None:
    responses.add(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), status=503)
    body = hook_request("order-sign", drafts=[draft()], fhir_server=FHIR, access_token="tok")
    resp = post(client, "order-sign", body)
    assert resp.status_code == 412
    assert "tok" not in resp.get_data(as_text=True)


def test_no_prefetch_and_no_fhir_server_is_412(client: FlaskClient) -> None:
    resp = post(client, "order-sign", hook_request("order-sign", drafts=[draft()]))
    assert resp.status_code == 412
    assert resp.json["issue"][0]["code"] == "incomplete"


# -- bad input ------------------------------------------------------------------------------------
def _without(key: str) -> dict[str, Any]:
    body = hook_request("order-sign", resources=MEETS, drafts=[draft()])
    del body[key]
    return body


@pytest.mark.parametrize(
    ("instance", "status"),
    [
        ("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", 200),
        ("not-a-uuid", 200),  # lenient by choice: docs/cds-hooks-conformance.md
        ("ehr:call.42_a", 200),
        ("", 400),
        ("has space", 400),
        ("x" * 129, 400),
        ("<script>", 400),
    ],
)
def test_hook_instance_is_any_short_identifier(
    client: FlaskClient, instance: str, status: int
) -> None:
    body = {
        **hook_request("order-sign", resources=MEETS, drafts=[draft()]),
        "hookInstance": instance,
    }
    resp = client.post("/cds-services/iport-advance-order-sign", json=body)
    assert resp.status_code == status


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ("{not json", 400, "not valid JSON"),
        ("[]", 400, "JSON object"),
        (_without("hook"), 400, "'hook'"),
        (_without("hookInstance"), 400, "'hookInstance'"),
        (_without("context"), 400, "'context'"),
        (hook_request("patient-view", resources=MEETS), 400, "answers the 'order-sign' hook"),
        (
            {**hook_request("order-sign", resources=MEETS, drafts=[draft()]), "prefetch": []},
            400,
            "'prefetch'",
        ),
        (
            {
                **hook_request("order-sign", resources=MEETS),
                "fhirAuthorization": {"access_token": "x"},
            },
            400,
            "'fhirServer' is required",
        ),
        (hook_request("order-sign", resources=MEETS, patient_id="../../etc"), 400, "patientId"),
    ],
)
def test_bad_requests_get_an_operation_outcome(
    client: FlaskClient, body: Any, status: int, mentions: str
) -> None:
    data = body if isinstance(body, str) else __import__("json").dumps(body)
    resp = client.post(
        "/cds-services/iport-advance-order-sign", data=data, content_type="application/json"
    )
    assert resp.status_code == status
    assert resp.json["resourceType"] == "OperationOutcome"
    assert mentions in resp.json["issue"][0]["diagnostics"]
    assert "Traceback" not in resp.get_data(as_text=True)


def test_order_select_without_draft_orders_is_400(client: FlaskClient) -> None:
    body = hook_request("order-select", resources=MEETS, drafts=[draft()])
    del body["context"]["draftOrders"]
    assert post(client, "order-select", body).status_code == 400


@pytest.mark.parametrize(
    "subject",
    [{"reference": "Patient/someone-else"}, {"reference": "https://ehr.example/fhir/Patient/zzz"}],
)
def test_a_draft_order_for_another_patient_is_400_and_names_no_id(
    client: FlaskClient, subject: dict[str, str]
) -> None:
    order = draft()
    order["subject"] = subject
    resp = post(client, "order-sign", hook_request("order-sign", resources=MEETS, drafts=[order]))
    assert resp.status_code == 400
    assert resp.json["resourceType"] == "OperationOutcome"
    text = resp.get_data(as_text=True)
    assert "another patient" in text
    assert "someone-else" not in text
    assert "zzz" not in text


def test_a_draft_order_for_this_patient_by_absolute_reference_is_answered(
    client: FlaskClient,
) -> None:
    order = draft()
    order["subject"] = {"reference": f"https://ehr.example/fhir/Patient/{PID}"}
    resp = post(client, "order-sign", hook_request("order-sign", resources=MEETS, drafts=[order]))
    assert resp.status_code == 200


def test_unknown_service_is_404(client: FlaskClient) -> None:
    resp = client.post("/cds-services/nope", json=hook_request("order-sign"))
    assert resp.status_code == 404
    assert resp.json["issue"][0]["code"] == "not-found"


def test_body_over_the_size_limit_is_413(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "MAX_CONTENT_LENGTH": 1000})
    resp = app.test_client().post(
        "/cds-services/iport-advance-order-sign", data="x" * 2000, content_type="application/json"
    )
    assert resp.status_code == 413
    assert resp.json["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("hops", [-1, "two", 1.5, True])
def test_trusted_proxy_hops_must_be_a_whole_number(app_config: dict[str, Any], hops: Any) -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXY_HOPS"):
        create_app({**app_config, "TRUSTED_PROXY_HOPS": hops})


def test_unexpected_errors_are_500_without_a_traceback(client: FlaskClient) -> None:
    app = client.application

    def failing_listener(*_args: Any) -> None:  # an extension that breaks its contract
        raise RuntimeError(f"secret detail for {PID}")

    state_of(app).listeners.append(failing_listener)
    resp = post(client, "order-sign", hook_request("order-sign", resources=MEETS, drafts=[draft()]))
    assert resp.status_code == 500
    assert PID not in resp.get_data(as_text=True)
    assert resp.json["resourceType"] == "OperationOutcome"


def test_malformed_resources_in_prefetch_are_reported_on_the_card(client: FlaskClient) -> None:
    broken = {
        "resourceType": "Condition",
        "id": "broken",
        "subject": {"reference": f"Patient/{PID}"},
        "code": ["not", "an", "object"],
    }
    body = hook_request("order-sign", resources=[*MEETS, broken], drafts=[draft()])
    card = card_of(post(client, "order-sign", body))
    assert "Condition/broken skipped" in unread(card)


def test_feedback_accepts_well_formed_feedback(client: FlaskClient) -> None:
    resp = client.post("/cds-services/iport-advance-order-sign/feedback", json={"feedback": []})
    assert resp.status_code == 200
    assert (
        client.post("/cds-services/iport-advance-order-sign/feedback", json={}).status_code == 400
    )


def test_record_text_cannot_inject_html_or_links_into_the_card(client: FlaskClient) -> None:
    # The latest needle phobia record is the one the card quotes.
    evil = condition(
        text="Needle phobia <img src=x onerror=alert(1)> [click](javascript:alert(1))",
        onset="2026-07-01",
    )
    card = card_of(
        post(
            client,
            "order-sign",
            hook_request("order-sign", resources=[*MEETS, evil], drafts=[draft()]),
        )
    )
    # Escaped the markdown way where a line quotes it: never an element nor a link (the
    # escaping of every line that quotes record text: tests/unit/test_concise_cards.py).
    assert not re.search(r"(?<!\\)<img", card["detail"])
    assert "[click](javascript:" not in card["detail"]


@responses.activate
def test_a_prefetch_that_is_an_operation_outcome_is_fetched_not_trusted(
    app_config: dict[str, Any],
) -> None:
    # A FHIR server of this test's own: a late read left by another test is not counted here.
    own = "https://fhir-own.example.nhs.uk/r4"
    client = create_app(app_config | {"FHIR_SERVER_ALLOWLIST": [own]}).test_client()
    fake_fhir(MEETS, own)
    body = hook_request(
        "order-sign", resources=MEETS, drafts=[draft()], fhir_server=own, access_token="tok"
    )
    body["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    card = card_of(post(client, "order-sign", body))
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"
    ours = [c for c in responses.calls if c.request.url.startswith(own)]
    assert [urlsplit(c.request.url).path.rsplit("/", 1)[1] for c in ours] == ["Condition"]
    assert "error report" in in_the_app_only(card)


def _failed_search(*resources: dict[str, Any], severity: str = "error") -> dict[str, Any]:
    """A searchset whose server says, in an OperationOutcome entry, that the search failed."""
    bundle = searchset(list(resources))
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": severity, "code": "incomplete", "diagnostics": "timed out"}],
            },
            "search": {"mode": "outcome"},
        }
    )
    return bundle


@pytest.mark.parametrize(
    "conditions",
    [
        pytest.param(_failed_search(), id="error OperationOutcome, no entries"),
        pytest.param(_failed_search(severity="fatal"), id="fatal OperationOutcome"),
        pytest.param({**searchset([]), "link": 5}, id="link is a number"),
        pytest.param({**searchset([]), "entry": 5}, id="entry is a number"),
        pytest.param(
            {
                **searchset([]),
                "entry": [{"resource": {"resourceType": "OperationOutcome", "issue": 7}}],
            },
            id="OperationOutcome issue is a number",
        ),
        pytest.param(
            {**searchset([]), "link": [{"relation": "next", "url": 5}]}, id="next url a number"
        ),
    ],
)
@responses.activate
def test_a_failed_or_malformed_prefetch_search_is_fetched_not_trusted(
    client: FlaskClient, conditions: dict[str, Any]
) -> None:
    fake_fhir(MEETS)
    body = hook_request(
        "order-sign", resources=MEETS, drafts=[draft()], fhir_server=FHIR, access_token="tok"
    )
    body["prefetch"]["conditions"] = conditions
    card = card_of(post(client, "order-sign", body))
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"
    assert [urlsplit(c.request.url).path.rsplit("/", 1)[1] for c in responses.calls] == [
        "Condition"
    ]
    assert "fetched instead" in in_the_app_only(card)


def test_a_failed_prefetch_search_without_a_fhir_server_is_412(client: FlaskClient) -> None:
    body = hook_request("order-sign", resources=MEETS, drafts=[draft()])
    body["prefetch"]["conditions"] = _failed_search(condition(T1DM))
    resp = post(client, "order-sign", body)
    assert resp.status_code == 412
    assert "conditions" in resp.json["issue"][0]["diagnostics"]


def test_a_warning_outcome_in_a_prefetch_search_is_a_card_warning(client: FlaskClient) -> None:
    body = hook_request("order-sign", resources=MEETS, drafts=[draft()])
    conditions = [r for r in MEETS if r["resourceType"] == "Condition"]
    body["prefetch"]["conditions"] = _failed_search(*conditions, severity="warning")
    card = card_of(post(client, "order-sign", body))
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"
    assert "timed out" in unread(card)


@responses.activate
def test_a_fetched_search_the_server_says_failed_is_412(client: FlaskClient) -> None:
    responses.get(f"{FHIR}/Condition", json=_failed_search())  # matched before fake_fhir's
    fake_fhir(MEETS)
    body = hook_request("order-sign", drafts=[draft()], fhir_server=FHIR, access_token="tok")
    resp = post(client, "order-sign", body)
    assert resp.status_code == 412
    assert "conditions" in resp.json["issue"][0]["diagnostics"]
    assert "timed out" not in resp.get_data(as_text=True)


# -- patient state -------------------------------------------------------------------------
def deceased(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [dict(r) for r in resources]
    out[0]["deceasedDateTime"] = "2026-09-14"
    return out


def test_a_deceased_patient_gets_no_patient_view_card(client: FlaskClient) -> None:
    body = hook_request("patient-view", resources=deceased(MEETS))
    assert post(client, "patient-view", body).json == {"cards": []}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_order_for_a_deceased_patient_gets_a_warning_and_no_assessment(
    client: FlaskClient, hook: str
) -> None:
    body = hook_request(hook, resources=deceased(MEETS), drafts=[draft()])
    card = card_of(post(client, hook, body))
    assert card["indicator"] == "warning"
    assert "recorded as deceased" in card["summary"]
    assert "no eligibility is assessed" in card["detail"]
    assert "| Criterion |" not in card["detail"]  # no criteria table
    assert "suggestions" not in card
    ext = card["extension"]["iport-cds.eligibility"]
    assert ext["outcome"] != "meets-criteria"
    assert ext["deceased"] is True
    assert ext["criteria"] == []


def died_tomorrow(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A date of death after today (the app's clock): a record error, alive or dead unknown."""
    out = [dict(r) for r in resources]
    out[0]["deceasedDateTime"] = "2026-11-22"  # the day after NOW
    return out


def test_a_patient_whose_date_of_death_is_after_today_gets_no_patient_view_card(
    client: FlaskClient,
) -> None:
    body = hook_request("patient-view", resources=died_tomorrow(MEETS))
    assert post(client, "patient-view", body).json == {"cards": []}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_order_for_a_patient_whose_date_of_death_is_after_today_asks_for_a_correction(
    client: FlaskClient, hook: str
) -> None:
    card = card_of(
        post(client, hook, hook_request(hook, resources=died_tomorrow(MEETS), drafts=[draft()]))
    )
    assert card["indicator"] == "warning"
    assert "Date of death in the record is not plausible" in card["summary"]
    assert "is after today" in card["detail"]
    assert "whether the patient is alive is unknown" in card["detail"]
    assert "suggestions" not in card
    assert not [link for link in card.get("links", []) if link["type"] == "smart"]
    ext = card["extension"]["iport-cds.eligibility"]
    assert ext["outcome"] == "insufficient-information"
    assert ext["deceased"] is True
    assert "after today" in ext["deceasedImplausible"]
    assert ext["criteria"] == []


def test_the_iport_card_says_when_a_pump_is_already_in_use(client: FlaskClient) -> None:
    pump = condition(("http://snomed.info/sct", "180178009", "Continuous subcutaneous infusion"))
    body = hook_request("order-sign", resources=[*MEETS, pump], drafts=[draft()])
    card = card_of(post(client, "order-sign", body))
    assert (
        "Already on an insulin pump: Continuous subcutaneous infusion (insulin pump (CSII)) in use"
        in card["detail"]
    )


def unread(card: dict[str, Any]) -> str:
    """The records a card says were not used (its detail counts the warnings; the extension and
    the assessment app say which)."""
    assert "from reading the record" in card["detail"]
    return " ".join(card["extension"]["iport-cds.eligibility"]["warnings"])


def in_the_app_only(card: dict[str, Any]) -> str:
    """Warnings that lost nothing of the record (a prefetch fetched again): they cannot change
    the outcome, so the card does not count them; the extension and the app name them."""
    assert "from reading the record" not in card["detail"]
    return " ".join(card["extension"]["iport-cds.eligibility"]["warnings"])


def test_a_card_after_the_policy_review_date_warns_that_it_may_be_out_of_date(
    app_config: dict[str, Any],
) -> None:
    app = create_app(app_config | {"CLOCK": lambda: datetime(2029, 1, 2, 12, tzinfo=UTC)})
    with app.test_client() as late:
        card = card_of(
            post(
                late,
                "order-select",
                hook_request("order-select", resources=MEETS, drafts=[draft()]),
            )
        )
    assert "This policy was due for review on 31 Dec 2028" in card["detail"]
    on_time = card_of(
        post(
            create_app(app_config).test_client(),
            "order-select",
            hook_request("order-select", resources=MEETS, drafts=[draft()]),
        )
    )
    assert "was due for review" not in on_time["detail"]


def test_only_judgement_criteria_are_offered_for_confirmation(client: FlaskClient) -> None:
    # No HbA1c: the HbA1c criteria and the derived NICE criteria are unknown, yet data-derived.
    card = card_of(
        post(
            client,
            "order-sign",
            hook_request(
                "order-sign",
                resources=[patient(), condition(T1DM), insulin(text="with meals")],
                drafts=[draft()],
            ),
        )
    )
    by_id = {c["id"]: c for c in card["extension"]["iport-cds.eligibility"]["criteria"]}
    assert by_id["hba1c-69-or-above-on-mdi"]["result"] == "unknown"
    assert by_id["nice-pump-criteria"]["result"] == "unknown"
    offered = {
        s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"]
    }
    assert offered
    assert offered <= {
        "mdi-impractical",
        "diabetes-specialist-recommendation",
        "needle-phobia",
        "lipohypertrophy",
        "disabling-hypoglycaemia",
        "hba1c-above-69-with-poor-adherence",
    }
