"""The one door to FHIR: concurrency, paging, typed errors, and where the token may go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import responses
from responses import matchers

from fhirdata import FetchSettings, FhirClient, FhirServerNotAllowed, FhirServerPolicy, new_session
from fhirdata.client import FhirBadResponse, FhirTimeout, FhirUnauthorised, FhirUnreachable
from tests.hooks import searchset

BASE = "https://fhir.example.nhs.uk/r4"
TOKEN = "secret-access-token"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def client(executor: ThreadPoolExecutor, **settings: object) -> FhirClient:
    return FhirClient(
        BASE,
        session=new_session(4),
        executor=executor,
        settings=FetchSettings(**settings),  # type: ignore[arg-type]
        access_token=TOKEN,
        request_id="req-1",
    )


def condition(i: int) -> dict[str, object]:
    return {"resourceType": "Condition", "id": f"c{i}"}


@responses.activate
def test_reads_every_query_with_the_bearer_token(executor: ThreadPoolExecutor) -> None:
    auth = matchers.header_matcher({"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "req-1"})
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"}, match=[auth])
    responses.get(f"{BASE}/Condition", json=searchset([condition(1)]), match=[auth])
    result = client(executor).fetch_all(
        {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}
    )
    assert [r["id"] for r in result.resources["patient"]] == ["p1"]
    assert [r["id"] for r in result.resources["conditions"]] == ["c1"]
    assert result.requests_made == 2


@responses.activate
def test_follows_next_links_and_reports_operation_outcomes(executor: ThreadPoolExecutor) -> None:
    page1 = searchset([condition(1)])
    page1["link"] = [{"relation": "next", "url": f"{BASE}/Condition?patient=p1&_page=2"}]
    page2 = searchset([condition(2)])
    page2["entry"].append(
        {
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "warning", "code": "processing", "diagnostics": "truncated"}
                ],
            },
            "search": {"mode": "outcome"},
        }
    )
    responses.get(
        f"{BASE}/Condition",
        json=page2,
        match=[matchers.query_param_matcher({"patient": "p1", "_page": "2"})],
    )
    responses.get(f"{BASE}/Condition", json=page1)
    result = client(executor).fetch_all({"conditions": "Condition?patient=p1"})
    assert [r["id"] for r in result.resources["conditions"]] == ["c1", "c2"]
    assert any("truncated" in w for w in result.warnings)


@responses.activate
def test_stops_after_max_pages_and_says_so(executor: ThreadPoolExecutor) -> None:
    page = searchset([condition(1)])
    page["link"] = [{"relation": "next", "url": f"{BASE}/Condition?patient=p1&_page=n"}]
    responses.get(f"{BASE}/Condition", json=page)
    result = client(executor, max_pages=3).fetch_all({"conditions": "Condition?patient=p1"})
    assert len(result.resources["conditions"]) == 3
    assert any("more than 3 pages" in w for w in result.warnings)


@responses.activate
def test_a_next_link_to_another_host_is_not_followed(executor: ThreadPoolExecutor) -> None:
    page = searchset([condition(1)])
    page["link"] = [{"relation": "next", "url": "https://evil.example.com/steal"}]
    responses.get(f"{BASE}/Condition", json=page)
    with pytest.raises(FhirBadResponse, match="different host"):
        client(executor).fetch_all({"conditions": "Condition?patient=p1"})
    assert all("evil" not in c.request.url for c in responses.calls)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 401, "json": {}}, FhirUnauthorised),
        ({"status": 403, "json": {}}, FhirUnauthorised),
        ({"status": 500, "json": {}}, FhirBadResponse),
        ({"status": 200, "body": "<html>login</html>"}, FhirBadResponse),
        ({"status": 200, "json": {"resourceType": "OperationOutcome"}}, FhirBadResponse),
        ({"status": 302, "headers": {"Location": "https://elsewhere.example"}}, FhirBadResponse),
        ({"body": requests.ConnectionError("refused")}, FhirUnreachable),
        ({"body": requests.ReadTimeout("slow")}, FhirTimeout),
    ],
)
@responses.activate
def test_failures_are_typed_and_never_quote_the_token(
    executor: ThreadPoolExecutor, answer: dict[str, object], error: type[Exception]
) -> None:
    responses.add(responses.GET, f"{BASE}/Condition", **answer)  # type: ignore[arg-type]
    with pytest.raises(error) as exc:
        client(executor).fetch_all({"conditions": "Condition?patient=p1"})
    assert TOKEN not in str(exc.value)
    assert len(responses.calls) == 1  # no retry, no redirect followed


@responses.activate
def test_missing_patient_read_is_a_warning_not_a_failure(executor: ThreadPoolExecutor) -> None:
    responses.get(f"{BASE}/Patient/p1", status=404, json={"resourceType": "OperationOutcome"})
    result = client(executor).fetch_all({"patient": "Patient/p1"})
    assert result.resources["patient"] == []
    assert "not found" in result.warnings[0]


@responses.activate
def test_batch_mode_sends_one_bundle(executor: ThreadPoolExecutor) -> None:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        sent = json.loads(request.body or b"{}")
        assert sent["type"] == "batch"
        assert [e["request"]["url"] for e in sent["entry"]] == [
            "Patient/p1",
            "Condition?patient=p1",
        ]
        reply = {
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [
                {
                    "resource": {"resourceType": "Patient", "id": "p1"},
                    "response": {"status": "200 OK"},
                },
                {"resource": searchset([condition(1)]), "response": {"status": "200 OK"}},
            ],
        }
        return 200, {}, json.dumps(reply)

    responses.add_callback(responses.POST, BASE, callback=answer)
    result = client(executor, mode="batch").fetch_all(
        {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}
    )
    assert result.requests_made == 1
    assert result.resources["conditions"][0]["id"] == "c1"


def test_deadline_bounds_everything(executor: ThreadPoolExecutor) -> None:
    c = client(executor, deadline_s=0.0)
    with pytest.raises(FhirTimeout):
        c.fetch_all({"conditions": "Condition?patient=p1"})


# -- which servers may be contacted ---------------------------------------------------------------
POLICY = FhirServerPolicy.from_config(
    [BASE, "https://other.example/fhir/", "http://ehr.local"], insecure_hosts=["ehr.local"]
)


@pytest.mark.parametrize(
    "url",
    [
        BASE,
        BASE + "/",
        "https://FHIR.example.nhs.uk:443/r4",
        "https://other.example/fhir",
        "http://ehr.local/fhir",
    ],
)
def test_allowed_servers(url: str) -> None:
    assert POLICY.check(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://fhir.example.nhs.uk.evil.com/r4", "allowlist"),
        ("https://fhir.example.nhs.uk/r4evil", "allowlist"),
        ("http://fhir.example.nhs.uk/r4", "https"),
        ("https://user:pw@fhir.example.nhs.uk/r4", "credentials"),
        ("file:///etc/passwd", "http"),
        ("https://fhir.example.nhs.uk/r4?x=1", "query"),
        ("http://169.254.169.254/latest", "https"),
        ("not a url", "http"),
    ],
)
def test_refused_servers(url: str, why: str) -> None:
    with pytest.raises(FhirServerNotAllowed, match=why):
        POLICY.check(url)


def test_loopback_may_use_http_but_must_still_be_allowed() -> None:
    with pytest.raises(FhirServerNotAllowed, match="allowlist"):
        POLICY.check("http://127.0.0.1:8080/fhir")
    assert FhirServerPolicy((), any_loopback=True).check("http://127.0.0.1:8080/fhir")
