"""The i-Port policy document and the individual funding request (IFR) route are linked where
the deployment sets their addresses (``POLICY_PARAMETERS``: ``policyUrl``,
``fundingRequestUrl``): the commissioning policy gives none, and a card never links a home page
in their place. Unset, the card says so plainly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policy.expr import PolicyError
from policy.loading import load_policies
from service import create_app
from tests.hooks import SERVICE

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
POLICY_URL = "https://icb.example.nhs.uk/policies/iport-advance.pdf"
IFR_URL = "https://icb.example.nhs.uk/individual-funding-requests"
SET = {"policyUrl": POLICY_URL, "fundingRequestUrl": IFR_URL}


def card(case: str, parameters: dict[str, str]) -> dict[str, Any]:
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "POLICY_PARAMETERS": parameters,
            "CLOCK": lambda: datetime(2026, 11, 21, 10, 30, tzinfo=UTC),
        }
    )
    request = json.loads((GOLDEN / f"{case}.request.json").read_text())
    resp = app.test_client().post(f"/cds-services/{SERVICE[request['hook']]}", json=request)
    assert resp.status_code == 200
    (only,) = resp.json["cards"]
    return only  # type: ignore[no-any-return]


def test_unset_the_card_says_the_links_are_not_configured_and_links_no_home_page() -> None:
    shown = card("order-sign-type2-does-not-meet", {})  # does not meet: the IFR route too
    assert (
        "Policy document and IFR route links not configured for this deployment."
        in (shown["detail"])
    )
    assert "](" not in shown["detail"]  # no link at all
    assert "url" not in shown["source"]
    assert [link["type"] for link in shown["links"]] == ["smart"]


def test_set_the_card_links_the_deployments_policy_document_and_ifr_route() -> None:
    shown = card("order-sign-type2-does-not-meet", SET)
    assert f"[Commissioning policy]({POLICY_URL})." in shown["detail"]
    assert f"[IFR route]({IFR_URL})." in shown["detail"]
    assert "not configured" not in shown["detail"]
    assert shown["source"]["url"] == POLICY_URL


@pytest.mark.parametrize(("parameters", "said"), [({}, "Policy document link not"), (SET, "")])
def test_a_card_that_meets_names_no_ifr_route(parameters: dict[str, str], said: str) -> None:
    shown = card("order-sign-type1-meets", parameters)
    assert "IFR" not in shown["detail"]
    assert said in shown["detail"]


def test_the_nice_guidance_keeps_its_own_address() -> None:
    policies = load_policies(["iport-advance", "nice-insulin-pump"], SET)
    assert policies["nice-insulin-pump"].info.url == "https://www.nice.org.uk/guidance/ta151"
    assert not policies["nice-insulin-pump"].info.funding_route
    assert policies["hny-iport-advance"].info.funding_route


@pytest.mark.parametrize(
    "address",
    [
        "javascript:alert(1)",
        "http://icb.example.nhs.uk/policy.pdf",
        "https://icb.example.nhs.uk/a policy.pdf",
        "https://icb.example.nhs.uk/x)[y](https://evil.example",
        "icb.example.nhs.uk/policy.pdf",
    ],
)
@pytest.mark.parametrize("name", ["policyUrl", "fundingRequestUrl"])
def test_an_address_that_is_not_a_plain_https_link_stops_start_up(name: str, address: str) -> None:
    with pytest.raises(PolicyError, match=name):
        load_policies(["iport-advance"], {name: address})
