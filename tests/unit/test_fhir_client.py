"""The one door to FHIR: concurrency, paging, typed errors, and where the token may go."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import responses
from responses import matchers

from fhirdata import FetchSettings, FhirClient, FhirServerNotAllowed, FhirServerPolicy, new_session
from fhirdata.client import (
    FhirBadResponse,
    FhirConflict,
    FhirNotFound,
    FhirTimeout,
    FhirUnauthorised,
    FhirUnreachable,
)
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
    "nxt",
    [
        "https://fhir.example.nhs.uk/tenantB/Condition?patient=p1",  # same host, another base
        "https://fhir.example.nhs.uk/r4other/Condition?patient=p1",  # a prefix, not a parent
        "https://fhir.example.nhs.uk/r4/../tenantB/Condition?patient=p1",
        "https://fhir.example.nhs.uk/r4/%2e%2e/tenantB/Condition",
        "https://fhir.example.nhs.uk/r4/%2E%2E/tenantB/Condition",
        "https://fhir.example.nhs.uk/r4/./Condition?patient=p1",
        "https://fhir.example.nhs.uk/r4/..%2ftenantB/Condition",
        "https://fhir.example.nhs.uk/r4/..%2FtenantB/Condition",
        "../tenantB/Condition?patient=p1",  # relative, resolved against the base
        "/tenantB/Condition?patient=p1",
        "http://fhir.example.nhs.uk/r4/Condition?patient=p1",  # same host, plain http
    ],
)
@responses.activate
def test_a_next_link_outside_the_base_url_is_not_followed(
    executor: ThreadPoolExecutor, nxt: str
) -> None:
    page = searchset([condition(1)])
    page["link"] = [{"relation": "next", "url": nxt}]
    responses.get(f"{BASE}/Condition", json=page)
    with pytest.raises(FhirBadResponse, match="not followed"):
        client(executor).fetch_all({"conditions": "Condition?patient=p1"})
    assert len(responses.calls) == 1  # the token went nowhere else


@pytest.mark.parametrize("nxt", ["trust-b/Condition?patient=p1", f"{BASE}/trust-b"])
@responses.activate
def test_a_next_link_into_another_tenants_nested_base_is_not_followed(
    executor: ThreadPoolExecutor, nxt: str
) -> None:
    page = searchset([condition(1)])
    page["link"] = [{"relation": "next", "url": nxt}]
    responses.get(f"{BASE}/Condition", json=page)
    fhir = FhirClient(
        BASE,
        session=new_session(4),
        executor=executor,
        settings=FetchSettings(),
        access_token=TOKEN,
        foreign_bases=[f"{BASE}/trust-b"],
    )
    with pytest.raises(FhirBadResponse, match="not followed"):
        fhir.fetch_all({"conditions": "Condition?patient=p1"})
    assert len(responses.calls) == 1  # trust-b's server never saw this tenant's token


@responses.activate
def test_a_next_link_to_the_base_url_itself_is_followed(executor: ThreadPoolExecutor) -> None:
    """HAPI pages at the base: ``[base]?_getpages=…``; query values may hold encoded slashes."""
    page1 = searchset([condition(1)])
    page1["link"] = [
        {"relation": "self", "url": f"{BASE}/Condition?patient=p1"},
        {"relation": "next", "url": f"{BASE}?_getpages=abc&code=http%3A%2F%2Fx%7C1"},
    ]
    responses.get(f"{BASE}/Condition", json=page1)
    responses.get(BASE, json=searchset([condition(2)]))
    result = client(executor).fetch_all({"conditions": "Condition?patient=p1"})
    assert [r["id"] for r in result.resources["conditions"]] == ["c1", "c2"]


def _outcome(severity: str) -> dict[str, object]:
    issue = {"severity": severity, "code": "incomplete", "diagnostics": "DB shard 3 down"}
    return {"resource": {"resourceType": "OperationOutcome", "issue": [issue]}}


@pytest.mark.parametrize(
    "page",
    [
        pytest.param({**searchset([condition(1)]), "link": 5}, id="link is a number"),
        pytest.param({**searchset([condition(1)]), "link": {"relation": "next"}}, id="link dict"),
        pytest.param({**searchset([]), "entry": 5}, id="entry is a number"),
        pytest.param({**searchset([]), "entry": {"resource": condition(1)}}, id="entry is a dict"),
        pytest.param(
            {
                **searchset([]),
                "entry": [{"resource": {"resourceType": "OperationOutcome", "issue": 7}}],
            },
            id="OperationOutcome issue is a number",
        ),
        pytest.param(
            {**searchset([condition(1)]), "entry": [{"resource": condition(1)}, _outcome("error")]},
            id="OperationOutcome error: the search failed",
        ),
        pytest.param(
            {**searchset([condition(1)]), "entry": [{"resource": condition(1)}, _outcome("fatal")]},
            id="OperationOutcome fatal",
        ),
    ],
)
@responses.activate
def test_a_hostile_or_failed_searchset_is_a_bad_response(
    executor: ThreadPoolExecutor, page: dict[str, object]
) -> None:
    responses.get(f"{BASE}/Condition", json=page)
    with pytest.raises(FhirBadResponse) as exc:
        client(executor).fetch_all({"conditions": "Condition?patient=p1"})
    assert "shard" not in str(exc.value)  # the server's text is not echoed in the 412


@responses.activate
def test_a_failed_later_page_is_a_bad_response(executor: ThreadPoolExecutor) -> None:
    page1 = searchset([condition(1)])
    page1["link"] = [{"relation": "next", "url": f"{BASE}/Condition?patient=p1&_page=2"}]
    page2 = {**searchset([]), "entry": [_outcome("error")]}
    responses.get(
        f"{BASE}/Condition",
        json=page2,
        match=[matchers.query_param_matcher({"patient": "p1", "_page": "2"})],
    )
    responses.get(f"{BASE}/Condition", json=page1)
    with pytest.raises(FhirBadResponse, match="conditions"):
        client(executor).fetch_all({"conditions": "Condition?patient=p1"})


@pytest.mark.parametrize("severity", ["warning", "information"])
@responses.activate
def test_a_warning_outcome_is_not_a_failure(executor: ThreadPoolExecutor, severity: str) -> None:
    page = {**searchset([condition(1)]), "entry": [{"resource": condition(1)}, _outcome(severity)]}
    responses.get(f"{BASE}/Condition", json=page)
    result = client(executor).fetch_all({"conditions": "Condition?patient=p1"})
    assert [r["id"] for r in result.resources["conditions"]] == ["c1"]
    assert any("shard" in w for w in result.warnings) == (severity == "warning")  # as before


@pytest.mark.parametrize(
    "second",
    [
        pytest.param([{"response": {"status": "200 OK"}}], id="entry is a list"),
        pytest.param({"resource": searchset([]), "response": "200 OK"}, id="response a string"),
        pytest.param("200 OK", id="entry a string"),
        pytest.param(
            {"resource": searchset([]), "response": {"status": ["200"]}}, id="status list"
        ),
    ],
)
@responses.activate
def test_a_hostile_batch_answer_is_a_bad_response(
    executor: ThreadPoolExecutor, second: object
) -> None:
    reply = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1"}, "response": {"status": "200"}},
            second,
        ],
    }
    responses.post(BASE, json=reply)
    with pytest.raises(FhirBadResponse):
        client(executor, mode="batch").fetch_all(
            {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}
        )


@responses.activate
def test_a_search_that_404s_in_a_batch_is_a_failure_not_no_records(
    executor: ThreadPoolExecutor,
) -> None:
    reply = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"response": {"status": "404 Not Found"}},
            {"response": {"status": "404 Not Found"}},
        ],
    }
    responses.post(BASE, json=reply)
    with pytest.raises(FhirBadResponse, match="404"):
        client(executor, mode="batch").fetch_all(
            {"conditions": "Condition?patient=p1", "patient": "Patient/p1"}
        )
    responses.replace(responses.POST, BASE, json={**reply, "entry": reply["entry"][:1]})
    result = client(executor, mode="batch").fetch_all({"medication": "Medication/m1"})
    assert result.resources["medication"] == []  # a missing read is a warning, as in parallel
    assert "not found" in result.warnings[0]
    # ... except the context patient: the EHR and the FHIR server disagree about who it is.
    with pytest.raises(FhirNotFound, match="the FHIR server has no Patient/p1"):
        client(executor, mode="batch").fetch_all({"patient": "Patient/p1"})


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
def test_a_refused_token_is_reported_as_such_while_other_reads_are_under_way(
    executor: ThreadPoolExecutor,
) -> None:
    def slow(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        time.sleep(1.0)
        return 200, {}, json.dumps(searchset([]))

    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=slow)
    responses.get(f"{BASE}/Condition", status=401, json={})
    with pytest.raises(FhirUnauthorised):
        client(executor).fetch_all(
            {"observations": "Observation?patient=p1", "conditions": "Condition?patient=p1"}
        )


@responses.activate
def test_an_unknown_patient_is_said_as_such_not_as_a_timeout(executor: ThreadPoolExecutor) -> None:
    """The Patient 404 does not end the wait for the searches, which are not timeouts."""
    responses.get(f"{BASE}/Patient/p1", status=404, json={"resourceType": "OperationOutcome"})
    responses.get(f"{BASE}/Condition", json=searchset([]))
    responses.get(f"{BASE}/Medication/m1", status=404)
    with pytest.raises(FhirNotFound, match=r"^the FHIR server has no Patient/p1$"):
        client(executor).fetch_all({"patient": "Patient/p1", "conditions": "Condition?patient=p1"})
    result = client(executor).fetch_all({"medication": "Medication/m1"})
    assert result.resources["medication"] == []
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
        ("https://fhir.example.nhs.uk/r4/../tenantB", "path"),
        ("https://fhir.example.nhs.uk/r4/..", "path"),
        ("https://fhir.example.nhs.uk/r4/./x", "path"),
        ("https://fhir.example.nhs.uk/r4/%2e%2e/tenantB", "path"),
        ("https://fhir.example.nhs.uk/r4/%2E%2E/tenantB", "path"),
        ("https://fhir.example.nhs.uk/r4/.%2e/tenantB", "path"),
        ("https://fhir.example.nhs.uk/r4/%2e/x", "path"),
        ("https://fhir.example.nhs.uk/r4/..%2ftenantB", "path"),
        ("https://fhir.example.nhs.uk/r4/x%2F..%2F..%2FtenantB", "path"),
        ("https://fhir.example.nhs.uk/r4/..%5ctenantB", "path"),
    ],
)
def test_refused_servers(url: str, why: str) -> None:
    with pytest.raises(FhirServerNotAllowed, match=why):
        POLICY.check(url)


def test_loopback_may_use_http_but_must_still_be_allowed() -> None:
    with pytest.raises(FhirServerNotAllowed, match="allowlist"):
        POLICY.check("http://127.0.0.1:8080/fhir")
    assert FhirServerPolicy((), any_loopback=True).check("http://127.0.0.1:8080/fhir")


@pytest.mark.parametrize(
    ("status", "body", "answer"),
    [
        (201, "<html>created</html>", None),  # acknowledged, but not JSON: still written
        (201, "[1, 2]", [1, 2]),
        (200, '{"resourceType": "Observation", "id": "o1"}', {"resourceType": "Observation",
                                                             "id": "o1"}),
    ],
)  # fmt: skip
@responses.activate
def test_a_create_is_conditional_and_takes_any_acknowledgement(
    executor: ThreadPoolExecutor, status: int, body: str, answer: object
) -> None:
    sent = matchers.header_matcher({"If-None-Exist": "identifier=urn:ietf:rfc:3986|urn:uuid:1"})
    responses.post(f"{BASE}/Observation", body=body, status=status, match=[sent])
    fhir = client(executor)
    assert fhir.create(
        {"resourceType": "Observation"}, "identifier=urn:ietf:rfc:3986|urn:uuid:1"
    ) == (answer)


@pytest.mark.parametrize(("status", "error"), [(401, FhirUnauthorised), (412, FhirBadResponse)])
@responses.activate
def test_a_create_refused_is_a_typed_error(
    executor: ThreadPoolExecutor, status: int, error: type[Exception]
) -> None:
    responses.post(f"{BASE}/Observation", body="no", status=status)
    with pytest.raises(error):
        client(executor).create({"resourceType": "Observation"}, "identifier=x|y")


@responses.activate
def test_a_read_for_update_gives_the_version_its_etag_names(executor: ThreadPoolExecutor) -> None:
    body = {"resourceType": "Observation", "id": "o1", "meta": {"versionId": "3"}}
    responses.get(f"{BASE}/Observation/o1", json=body, headers={"ETag": 'W/"4"'})
    found = client(executor).read("Observation/o1")
    assert found.resource == body
    assert found.version == "4"  # the ETag is the server's word on the version


@responses.activate
def test_a_read_without_an_etag_takes_the_resources_version(executor: ThreadPoolExecutor) -> None:
    body = {"resourceType": "Observation", "id": "o1", "meta": {"versionId": "3"}}
    responses.get(f"{BASE}/Observation/o1", json=body)
    assert client(executor).read("Observation/o1").version == "3"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, "", FhirNotFound),
        (200, '{"resourceType": "Bundle"}', FhirBadResponse),  # not the resource asked for
        (200, '{"resourceType": "Observation", "id": "o2"}', FhirBadResponse),
        (200, '{"resourceType": "Observation", "id": "o1"}', FhirBadResponse),  # no version
    ],
)
@responses.activate
def test_a_read_for_update_is_the_resource_asked_for_with_a_version(
    executor: ThreadPoolExecutor, status: int, body: str, error: type[Exception]
) -> None:
    responses.get(f"{BASE}/Observation/o1", body=body, status=status)
    with pytest.raises(error):
        client(executor).read("Observation/o1")


@responses.activate
def test_an_update_names_the_version_it_changes(executor: ThreadPoolExecutor) -> None:
    sent = matchers.header_matcher({"If-Match": 'W/"4"', "Authorization": f"Bearer {TOKEN}"})
    responses.put(f"{BASE}/Observation/o1", status=200, body="{}", match=[sent])
    client(executor).update({"resourceType": "Observation", "id": "o1"}, "4")
    assert len(responses.calls) == 1


@pytest.mark.parametrize("status", [409, 412])
@responses.activate
def test_an_update_of_a_changed_resource_is_a_conflict(
    executor: ThreadPoolExecutor, status: int
) -> None:
    responses.put(f"{BASE}/Observation/o1", status=status, body="{}")
    with pytest.raises(FhirConflict):
        client(executor).update({"resourceType": "Observation", "id": "o1"}, "4")


@pytest.mark.parametrize("resource", [{"resourceType": "Observation"}, {"id": "o1"}])
def test_an_update_needs_a_type_and_an_id(
    executor: ThreadPoolExecutor, resource: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="type and id"):
        client(executor).update(resource, "1")
