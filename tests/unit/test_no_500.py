"""Inputs that once reached a 500: each is answered with a 4xx or a 200 (the hook path) and
an OperationOutcome or cards, never a traceback."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from service import create_app
from tests.builders import iport_device_request, type1_meets
from tests.hooks import SERVICE, hook_request


@pytest.mark.parametrize("rtype", [["Condition"], {"resourceType": "Condition"}, 7])
@pytest.mark.parametrize("subject", [None, {"reference": "Patient/elsewhere"}])
def test_a_prefetch_entry_whose_resource_type_is_not_a_string_is_set_aside(
    rtype: Any, subject: Any
) -> None:
    body = hook_request("order-sign", resources=type1_meets(), drafts=[iport_device_request()])
    entry: dict[str, Any] = {"resourceType": rtype, "id": "odd"}
    if subject is not None:
        entry["subject"] = subject
    body["prefetch"]["conditions"]["entry"].append({"resource": entry})
    app = create_app({"REQUIRE_AUTH": False})
    resp = app.test_client().post(f"/cds-services/{SERVICE['order-sign']}", json=body)
    assert resp.status_code == 200
    assert len(resp.json["cards"]) == 1


TOKEN_URL = "https://auth.ehr.example.nhs.uk/token"


def _pending() -> Any:
    from review_app import smart

    config = smart.SmartConfiguration("https://auth.ehr.example.nhs.uk/authorize", TOKEN_URL)
    return smart.PendingLaunch("https://fhir.ehr.example.nhs.uk/r4", config, "v" * 64,
                               "https://cds.example.nhs.uk/review/callback", "state")  # fmt: skip


def _token_answer(expires_in: str) -> None:
    responses.post(
        TOKEN_URL,
        body=f'{{"access_token": "t", "token_type": "Bearer", "patient": "p1", '
        f'"expires_in": {expires_in}}}',
        content_type="application/json",
    )


@responses.activate
@pytest.mark.parametrize("expires_in", ["1e400", "-Infinity", "Infinity", "NaN"])
def test_a_token_answer_with_an_infinite_lifetime_is_a_launch_error(expires_in: str) -> None:
    """The authorization server is a third party: its JSON may hold numbers Python reads as
    infinite, which Authlib cannot add to a time; the launch fails saying so (a 502 page)."""
    from fhirdata import new_session
    from review_app import smart

    _token_answer(expires_in)
    with pytest.raises(smart.LaunchError, match="did not grant access"):
        smart.exchange_code(_pending(), "code", "client", new_session(1))


@responses.activate
@pytest.mark.parametrize("expires_in", ["-5", "0", "true"])
def test_a_token_lifetime_that_is_not_one_is_not_kept(expires_in: str) -> None:
    from fhirdata import new_session
    from review_app import smart

    _token_answer(expires_in)
    session = smart.exchange_code(_pending(), "code", "client", new_session(1))
    assert session.expires_in_s is None


@responses.activate
@pytest.mark.parametrize("status", [302, 307, 308])
def test_a_token_endpoint_that_redirects_is_not_followed(status: int) -> None:
    """A redirect from the token endpoint would re-send the authorization code and its PKCE
    verifier (307, 308) to any host: it is a launch error, and nothing is sent there."""
    from fhirdata import new_session
    from review_app import smart

    elsewhere = "http://127.0.0.1:9/steal"
    responses.post(TOKEN_URL, status=status, headers={"Location": elsewhere})
    stolen = responses.post(elsewhere, json={"access_token": "t", "patient": "p1"})
    with pytest.raises(smart.LaunchError, match="did not grant access"):
        smart.exchange_code(_pending(), "code", "client", new_session(1))
    assert stolen.call_count == 0
