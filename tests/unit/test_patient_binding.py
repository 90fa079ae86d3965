"""Patient binding: a resource is this patient's only when its subject says so exactly.

Each loose binding below once produced a "meets" card from records that need not be this
patient's; now such records are not used and are listed as not read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirdata.binding import binding_problem
from service import create_app
from tests.builders import PID, iport_device_request, type1_meets
from tests.hooks import SERVICE, full_prefetch, hook_request

FHIR = "https://fhir.example.nhs.uk/r4"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
URN = "urn:uuid:6b0d3c0e-5c1e-4a8e-9d0f-0c9f5b3e2a11"


@pytest.fixture
def client() -> FlaskClient:
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "FHIR_SERVER_ALLOWLIST": [FHIR],
            "CLOCK": lambda: datetime(2026, 11, 21, 10, 30, tzinfo=UTC),
        }
    )
    return app.test_client()


def rebound(subject: Callable[[], Any]) -> list[dict[str, Any]]:
    """The record that meets the criteria, with every clinical resource's subject replaced
    (``subject()`` returning None removes it)."""
    out = []
    for r in copy.deepcopy(type1_meets()):
        if r["resourceType"] != "Patient":
            value = subject()
            if value is None:
                del r["subject"]
            else:
                r["subject"] = value
        out.append(r)
    return out


def warnings(shown: dict[str, Any]) -> list[str]:
    """The records a card could not use, each with why (the card's detail counts them)."""
    return list(shown["extension"]["iport-cds.eligibility"].get("warnings", []))


def card(client: FlaskClient, prefetch: dict[str, Any]) -> dict[str, Any]:
    body = hook_request(
        "order-sign",
        prefetch=prefetch,
        drafts=[iport_device_request()],
        fhir_server=FHIR,
    )
    resp = client.post(f"/cds-services/{SERVICE['order-sign']}", json=body)
    assert resp.status_code == 200, resp.json
    (only,) = resp.json["cards"]
    return only  # type: ignore[no-any-return]


def with_patient_urn(prefetch: dict[str, Any]) -> dict[str, Any]:
    """Each searchset Bundle also carries the Patient under ``URN`` (as a client's
    transaction-style Bundle would)."""
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            value["entry"].append({"fullUrl": URN, "resource": prefetch["patient"]})
    return prefetch


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        pytest.param(lambda: None, "it names no patient", id="no subject"),
        pytest.param(
            lambda: {"identifier": {"system": NHS_NUMBER, "value": "1"}},
            "NHS number is not valid",
            id="identifier only, not an NHS number",
        ),
        pytest.param(
            lambda: {"identifier": {"system": NHS_NUMBER, "value": "9434765919"}},
            "identifiers are not known",
            id="identifier only, no Patient identifiers to compare",
        ),
        pytest.param(
            lambda: {"reference": URN}, "does not resolve to this patient", id="urn:uuid unresolved"
        ),
        pytest.param(
            lambda: {"reference": f"https://other-fhir.example/r4/Patient/{PID}"},
            "on another FHIR server",
            id="same id on another server",
        ),
    ],
)
def test_loosely_bound_records_are_not_used_and_are_listed(
    client: FlaskClient, subject: Callable[[], Any], reason: str
) -> None:
    shown = card(client, full_prefetch(rebound(subject)))
    assert shown["indicator"] == "warning"  # not "meets": nothing about this patient was used
    # The card counts them; its extension (and the assessment app) names each and why.
    assert "1 result and 4 records not used: not shown to be this patient's" in shown["detail"]
    assert "warnings from reading the record" not in shown["detail"]
    unread = warnings(shown)
    assert sum("not used: " in w for w in unread) == 5  # each clinical record, named
    assert all(reason in w for w in unread if "not used: " in w)


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param(lambda: {"reference": f"Patient/{PID}"}, id="relative"),
        pytest.param(lambda: {"reference": f"{FHIR}/Patient/{PID}"}, id="absolute on fhirServer"),
        pytest.param(
            lambda: {"reference": f"HTTPS://FHIR.example.nhs.uk:443/r4/Patient/{PID}"},
            id="absolute, another spelling of the same base",
        ),
        pytest.param(lambda: {"reference": URN}, id="urn:uuid resolved in the Bundle"),
    ],
)
def test_exactly_bound_records_are_used(client: FlaskClient, subject: Callable[[], Any]) -> None:
    shown = card(client, with_patient_urn(full_prefetch(rebound(subject))))
    assert shown["indicator"] == "info"
    assert "not used" not in shown["detail"]


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        ({"resourceType": "Patient", "id": "someone-else"}, "another Patient"),
        ({"resourceType": "Condition", "subject": {"reference": "Patient/other"}}, "another"),
        ({"resourceType": "Condition", "subject": {"reference": "#p1"}}, "another"),
        ({"resourceType": "Condition", "subject": "Patient/p1"}, "neither as a reference"),
        (
            {
                "resourceType": "Observation",
                "subject": {"reference": "Patient/p1"},
                "focus": [{"reference": "RelatedPerson/mother"}],
            },
            "its focus is someone or something other than the patient",
        ),
        (
            {
                "resourceType": "Observation",
                "subject": {"reference": "Patient/p1"},
                "patient": {"reference": "Patient/q"},
            },
            "name different patients",
        ),
        # Judged where the Patient's identifiers are known (facts.attribution)
        ({"resourceType": "Condition", "subject": {"identifier": {"value": "1"}}}, None),
        (
            {"resourceType": "Condition", "subject": {"reference": f"{FHIR}/Patient/p1?x=1"}},
            "another FHIR server",
        ),
        ({"resourceType": "Observation", "patient": {"reference": "Patient/p1"}}, None),
        ({"resourceType": "Medication", "id": "m1"}, None),
        ({"resourceType": "Practitioner", "id": "dr"}, None),
    ],
)
def test_binding_rules(resource: dict[str, Any], problem: str | None) -> None:
    found = binding_problem(resource, "p1", FHIR)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in " ".join(found)


def test_a_search_the_server_could_not_filter_is_said_once_not_per_record(
    client: FlaskClient,
) -> None:
    prefetch = full_prefetch(type1_meets())
    ignored = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "not-supported",
                "diagnostics": "Unknown search parameter 'subject' for DeviceRequest; ignored",
            }
        ],
    }
    others = [iport_device_request(pid=f"someone-else-{i}") for i in range(3)]
    prefetch["devices"]["entry"] = [{"resource": r} for r in [ignored, *others]]
    shown = card(client, prefetch)
    said = " ".join(warnings(shown))
    # Nothing of this patient's record went unread: named in the app, not counted on the card
    assert "from reading the record" not in shown["detail"]
    assert "not used: " not in said
    assert "Unknown search parameter" not in said
    assert said.count("does not support this search as asked") == 1
    assert "3 other record(s) set aside" in said


def about_mother(prefetch: dict[str, Any]) -> dict[str, Any]:
    """The HbA1c made the patient's mother's: its focus names her."""
    (result,) = [e["resource"] for e in prefetch["hba1c"]["entry"]]
    result["focus"] = [{"reference": "RelatedPerson/mother", "display": "Mother"}]
    return prefetch


def two_patients(prefetch: dict[str, Any]) -> dict[str, Any]:
    """The HbA1c names this patient as subject and another as patient."""
    (result,) = [e["resource"] for e in prefetch["hba1c"]["entry"]]
    result["patient"] = {"reference": "Patient/someone-else"}
    return prefetch


def husband(prefetch: dict[str, Any]) -> dict[str, Any]:
    """The needle phobia is written as the husband's."""
    for e in prefetch["conditions"]["entry"]:
        if e["resource"]["code"].get("text") == "Needle phobia":
            e["resource"]["code"]["text"] = "Needle phobia - husband"
    return prefetch


@pytest.mark.parametrize(
    ("change", "said"),
    [
        pytest.param(about_mother, "1 result not used: about another person", id="focus mother"),
        pytest.param(two_patients, "1 result not used: names two different patients", id="two"),
        pytest.param(husband, "1 record not used: about another person", id="husband's"),
    ],
)
def test_evidence_about_another_person_is_not_used_and_the_card_says_so(
    client: FlaskClient, change: Callable[[dict[str, Any]], dict[str, Any]], said: str
) -> None:
    shown = card(client, change(full_prefetch(type1_meets())))
    assert shown["indicator"] == "warning"
    assert said in shown["detail"]
    assert "warnings from reading the record" not in shown["detail"]
    (why,) = [w for w in warnings(shown) if "not used: " in w]
    assert said.split(": ", 1)[1] in why


def test_the_card_counts_results_and_records_not_used_for_each_reason(
    client: FlaskClient,
) -> None:
    shown = card(client, husband(about_mother(full_prefetch(type1_meets()))))
    assert "1 result and 1 record not used: about another person" in shown["detail"]


def test_entries_sharing_one_urn_uuid_are_not_used(client: FlaskClient) -> None:
    """Two entries share one urn:uuid fullUrl, one this patient and one another: which one a
    record naming that urn:uuid is about cannot be told, so neither it nor they are used."""
    prefetch = full_prefetch(rebound(lambda: {"reference": URN}))
    someone_else = {"resourceType": "Patient", "id": "someone-else", "birthDate": "1950-01-01"}
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            value["entry"] += [
                {"fullUrl": URN, "resource": prefetch["patient"]},
                {"fullUrl": URN, "resource": someone_else},
            ]
    shown = card(client, prefetch)
    assert shown["indicator"] == "warning"
    assert "1 result and 4 records not used: its Bundle entry is ambiguous" in shown["detail"]
    unread = warnings(shown)
    assert sum("urn:uuid is the fullUrl of two different entries" in w for w in unread) == 5


def test_entries_repeating_one_resource_under_one_full_url_are_used(client: FlaskClient) -> None:
    prefetch = with_patient_urn(full_prefetch(rebound(lambda: {"reference": URN})))
    prefetch["conditions"]["entry"] += [
        {"fullUrl": URN, "resource": copy.deepcopy(prefetch["patient"])}
    ]
    assert card(client, prefetch)["indicator"] == "info"
