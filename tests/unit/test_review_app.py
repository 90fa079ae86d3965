"""The assessment app's pages at the HTTP edge: their own credential, headers, refusals.

The launch, the assessment and the confirmation against real servers are in
tests/integration/test_review_app_launch.py and tests/browser/test_review_app.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from fhirdata import read_types
from review_app import smart
from service import create_app

BASE = "https://cds.example.nhs.uk"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(
        json.dumps([{"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks"}])
    )
    return create_app(
        {"REQUIRE_AUTH": True, "TRUSTED_ISSUERS_FILE": str(issuers), "EXTERNAL_BASE_URL": BASE}
    )


def test_the_app_carries_its_own_credential_not_a_cds_client_jwt(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/cds-services").status_code == 401  # the CDS API still needs the JWT
    page = client.get("/review/")
    assert page.status_code == 401  # no SMART session yet: the app's own page says so
    assert page.mimetype == "text/html"
    assert "Open this app from the EHR" in page.get_data(as_text=True)
    for path in ("/review/static/review.css", "/review/static/vendor/nhsuk-frontend.min.css"):
        with client.get(path) as css:
            assert css.status_code == 200


def test_pages_forbid_scripts_and_framing_of_other_origins_content(app: Flask) -> None:
    page = app.test_client().get("/review/summary")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # no script at all
    assert "form-action 'self'" in csp
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    "iss",
    [
        "https://fhir.example.org/r4",  # not on the allowlist
        "http://fhir.example.org/r4",  # not https
        "https://user:pw@fhir.example.org/r4",  # credentials in the URL
    ],
)
def test_a_launch_from_a_server_not_allowed_is_refused_before_any_request(
    app: Flask, iss: str
) -> None:
    resp = app.test_client().get("/review/launch", query_string={"iss": iss, "launch": "x"})
    assert resp.status_code == 400
    assert "cannot be used" in resp.get_data(as_text=True)


def test_a_launch_names_its_fhir_server(app: Flask) -> None:
    resp = app.test_client().get("/review/launch")
    assert resp.status_code == 400
    assert "give the FHIR server" in resp.get_data(as_text=True)


def test_a_confirmation_without_a_session_writes_nothing(app: Flask) -> None:
    resp = app.test_client().post("/review/confirm", data={"criterion": "mdi-impractical"})
    assert resp.status_code == 401


def test_cards_link_the_app_at_the_external_base_url(tmp_path: Path) -> None:
    from tests.hooks import SERVICE

    golden = Path(__file__).resolve().parents[1] / "golden"
    request = json.loads((golden / "order-sign-type1-meets.request.json").read_text())
    request["prefetch"] |= {"deviceUses": None, "assignedDevices": None}  # nothing recorded
    app = create_app({"REQUIRE_AUTH": False, "EXTERNAL_BASE_URL": BASE})
    resp = app.test_client().post(f"/cds-services/{SERVICE['order-sign']}", json=request)
    (card,) = resp.json["cards"]
    (smart,) = [link for link in card["links"] if link["type"] == "smart"]
    assert smart["url"] == f"{BASE}/review/launch"


def test_the_read_types_are_each_querys_type_and_what_it_includes() -> None:
    templates = {
        "patient": "Patient/{{context.patientId}}",
        "medications": "MedicationRequest?subject=Patient/x&_include=MedicationRequest:medication",
        "deviceUses": "DeviceUseStatement?subject=Patient/x&_include=DeviceUseStatement:device",
    }
    assert read_types(templates) == (
        "Device",
        "DeviceUseStatement",
        "Medication",
        "MedicationRequest",
        "Patient",
    )
    assert smart.scopes(["Patient", "Device"]) == (
        "patient/Device.rs",
        "patient/Patient.rs",
        *smart.WRITE_AND_USER_SCOPES,
    )


def test_an_include_of_unknown_type_is_refused_rather_than_left_out_of_the_scopes() -> None:
    with pytest.raises(ValueError, match="Condition:asserter"):
        read_types({"conditions": "Condition?subject=Patient/x&_include=Condition:asserter"})


@pytest.mark.parametrize(
    ("granted", "may_update"),
    [
        (None, True),  # the token answer named no scope: all that was asked for
        ("launch patient/Observation.rs patient/Observation.cu openid fhirUser", True),
        ("patient/Observation.cruds", True),
        ("patient/Observation.write", True),  # SMART v1
        ("user/Observation.u", True),
        ("patient/*.write", True),
        ("patient/Observation.c patient/Observation.rs", False),  # create only: no withdrawal
        ("patient/Observation.read", False),
        ("patient/Condition.cu", False),
        ("system/Observation.u", False),  # a backend service's scope, not a clinician's
        ("", False),
    ],
)
def test_the_granted_scopes_say_whether_a_confirmation_can_be_withdrawn(
    granted: str | None, may_update: bool
) -> None:
    session = smart.ReviewSession("https://ehr.example.org/fhir", "t", "p1", scope=granted)
    assert session.may("u", "Observation") is may_update


def test_the_app_asks_to_create_and_to_update_observations() -> None:
    asked = " ".join(smart.scopes(["Patient"]))
    session = smart.ReviewSession("https://ehr.example.org/fhir", "t", "p1", scope=asked)
    assert session.may("c", "Observation")
    assert session.may("u", "Observation")
    assert not session.may("d", "Observation")  # nothing is ever deleted


def test_a_withdrawal_without_a_session_is_refused_before_anything_is_read(app: Flask) -> None:
    resp = app.test_client().post(
        "/review/withdraw", data={"observation": "o1", "version": "1", "csrf": "x"}
    )
    assert resp.status_code == 401
    assert resp.mimetype == "text/html"
    assert "Open this app from the EHR" in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("notes", "kept"),
    [
        ([{"text": "Faints at injections"}], [{"text": "Faints at injections"}]),
        (None, []),
        ("not a list", []),  # a malformed note is not carried into the record
    ],
)
def test_a_withdrawn_confirmation_keeps_its_reason_and_says_who_and_when(
    notes: object, kept: list[dict[str, str]]
) -> None:
    from datetime import UTC, datetime

    from facts.extract import WITHDRAWN_NOTE
    from review_app.assessment import withdrawn_observation

    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "valueBoolean": True}
    if notes is not None:
        obs["note"] = notes
    out = withdrawn_observation(
        obs, "Practitioner/p1", "Dr Asha Patel", datetime(2026, 12, 7, 17, 5, tzinfo=UTC)
    )
    assert out["status"] == "entered-in-error"
    assert out["valueBoolean"] is True  # what was confirmed stays readable
    assert out["note"] == [
        *kept,
        {
            "authorReference": {"reference": "Practitioner/p1", "display": "Dr Asha Patel"},
            "time": "2026-12-07T17:05:00+00:00",
            "text": WITHDRAWN_NOTE,
        },
    ]
    assert obs["status"] == "final"  # the resource read is not changed in place


def test_a_context_record_the_reason_already_quotes_is_not_shown_again() -> None:
    from review_app.assessment import EvidenceRow, context_not_said

    referral = EvidenceRow("Referral to diabetologist on 3 Mar 2026", None)
    other = EvidenceRow("Seen in diabetes clinic on 9 Jun 2026", None)
    reason = (
        "Needs a clinician's confirmation; it cannot be read from coded data. "
        "Supporting context: Referral to diabetologist on 3 Mar 2026."
    )
    assert context_not_said(reason, (referral, other)) == (other,)
    assert context_not_said("Needs a clinician's confirmation.", (referral,)) == (referral,)
