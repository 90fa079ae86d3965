"""The assessment app's SMART launch over HTTP, without a browser: standalone launch, PKCE,
the allowlist, the CSRF check, and that no token or patient id reaches the log.

Real parts: sekmet with a demo patient, the local Authlib authorization server in front of
it (tests/smart_server.py), and the service on a loopback port; ``requests`` follows the
redirects a browser would.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

import demo
from review_app import smart
from store.db import make_engine
from store.models import ReviewAppSession
from tests.deploy.fhir_stub import SlowFhirServer
from tests.fhir_server import FhirTestServer
from tests.integration.ehr import review_service
from tests.service_process import ServiceProcess, free_port
from tests.smart_server import SmartServer
from tests.store.pgserver import PostgresServer
from tests.unit.test_auth import KEY as JWT_KEY
from tests.unit.test_auth import public_jwk

pytestmark = pytest.mark.integration

PATIENT = "t1-no-iport-criterion"
KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def patient_id(fhir_server: FhirTestServer) -> str:
    p = demo.get_patient(PATIENT)
    fhir_server.load(p.bundle(date.today()))
    return p.patient_id


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer, patient_id: str) -> Iterator[SmartServer]:
    with SmartServer(fhir_server.base_url, free_port(), standalone_patient=patient_id).serve() as s:
        yield s


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with review_service(tmp_path_factory.mktemp("launch")) as url:
        yield url


def test_standalone_launch_asks_for_a_patient_with_pkce_and_narrow_scopes(
    service_url: str, smart_server: SmartServer
) -> None:
    resp = requests.get(
        f"{service_url}/review/launch", params={"iss": smart_server.iss}, allow_redirects=False
    )
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}".endswith("/auth/authorize")
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    assert query["aud"] == smart_server.iss
    assert "launch" not in query
    scopes = query["scope"].split()
    assert "launch/patient" in scopes
    assert "launch" not in scopes
    assert "patient/Observation.cu" in scopes  # confirm, and withdraw a confirmation
    assert all(s.endswith((".rs", ".cu")) for s in scopes if s.startswith("patient/"))
    assert not [s for s in scopes if s.startswith("user/") or s.endswith((".*", ".write"))]


def test_standalone_launch_opens_the_assessment_and_logs_no_token_or_patient(
    service_url: str,
    smart_server: SmartServer,
    patient_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG), requests.Session() as browser:
        page = browser.get(f"{service_url}/review/launch", params={"iss": smart_server.iss})
        assert page.status_code == 200
        assert 'data-outcome="insufficient-information"' in page.text
        assert "Record that I confirm" in page.text
        cookie = browser.cookies.get("iport_review")
    assert cookie
    tokens = list(smart_server.tokens)
    assert tokens
    # In no log line, the client libraries' included (the test authorization server's own
    # grant code logs the tokens it issues at DEBUG: it is the EHR's, not ours).
    lines = [
        r.getMessage()
        for r in caplog.records
        if not r.name.startswith(
            ("authlib.oauth2.rfc6749.grants", "authlib.oauth2.rfc6749.authorization_server")
        )
    ]
    for secret in [*tokens, cookie]:
        assert not [line for line in lines if secret in line]
    ours = [r.getMessage() + str(r.__dict__) for r in caplog.records if r.name.startswith("iport")]
    assert ours  # the service did log the launch and the evaluation
    assert not [line for line in ours if patient_id in line]


def test_the_scopes_asked_for_cover_every_read_of_the_assessment(
    service_url: str, smart_server: SmartServer
) -> None:
    """The test EHR enforces scopes as a real one does: a type read without a scope is 403,
    and the app would end the session as if the token were revoked."""
    before, refused = len(smart_server.interactions), len(smart_server.refused)
    with requests.Session() as browser:
        page = browser.get(f"{service_url}/review/launch", params={"iss": smart_server.iss})
        assert page.status_code == 200
        assert 'data-outcome="insufficient-information"' in page.text
    read = {i.split()[1] for i in smart_server.interactions[before:]}
    assert {"Patient", "Condition", "Device", "DeviceUseStatement"} <= read
    assert smart_server.refused[refused:] == []


def test_the_test_ehr_refuses_a_type_outside_the_tokens_scopes(
    smart_server: SmartServer, patient_id: str
) -> None:
    token = f"narrow-{uuid.uuid4()}"
    smart_server.tokens[token] = {
        "expires": time.time() + 60,
        "scope": "launch/patient patient/Condition.rs patient/Patient.read",
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}

    def get(path: str) -> int:
        return requests.get(f"{smart_server.iss}/{path}", headers=headers, timeout=10).status_code

    assert get(f"Condition?subject=Patient/{patient_id}") == 200
    assert get(f"Patient/{patient_id}") == 200  # SMART v1 read
    assert get(f"Device?patient=Patient/{patient_id}") == 403
    assert get(f"MedicationRequest?subject=Patient/{patient_id}") == 403
    assert smart_server.refused[-2:] == ["s Device", "s MedicationRequest"]


def test_a_forged_confirmation_is_refused_and_writes_nothing(
    service_url: str, smart_server: SmartServer, fhir_server: FhirTestServer, patient_id: str
) -> None:
    with requests.Session() as browser:
        page = browser.get(f"{service_url}/review/launch", params={"iss": smart_server.iss})
        assert page.status_code == 200
        before = _confirmations(fhir_server, patient_id)
        forged = browser.post(
            f"{service_url}/review/confirm",
            data={"criterion": "mdi-impractical", "csrf": "not-the-token"},
        )
        assert forged.status_code == 403
        assert _confirmations(fhir_server, patient_id) == before


def test_a_confirmation_sent_twice_is_written_once(
    service_url: str, smart_server: SmartServer, fhir_server: FhirTestServer, patient_id: str
) -> None:
    """A retry (a double click, a resubmitted form, a lost answer) must not record the
    confirmation twice: it is a conditional create on an identifier of the confirmation."""
    with requests.Session() as browser:
        page = browser.get(f"{service_url}/review/launch", params={"iss": smart_server.iss})
        assert page.status_code == 200
        criterion = re.search(r'name="criterion" value="([^"]+)"', page.text)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert criterion
        assert csrf
        before = _confirmations(fhir_server, patient_id)
        form = {"criterion": criterion[1], "csrf": csrf[1]}
        answers = [
            browser.post(f"{service_url}/review/confirm", data=form, allow_redirects=False)
            for _ in range(2)
        ]
        # The second finds the criterion met: nothing to confirm, nothing written.
        assert [a.status_code for a in answers] == [303, 400]
        assert _confirmations(fhir_server, patient_id) == before + 1


def test_a_confirmation_is_a_conditional_create_on_its_identifier(
    fhir_server: FhirTestServer, patient_id: str
) -> None:
    """Two sessions racing, or an answer lost on the way back: the same confirmation sent
    twice reaches the real FHIR server twice and is one Observation."""
    from concurrent.futures import ThreadPoolExecutor

    from fhirdata import FetchSettings, FhirClient, new_session

    identifier = f"urn:uuid:{uuid.uuid4()}"
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": identifier}],
        "code": {"coding": [{"system": "https://iport-cds.example.org/fhir/CodeSystem/"
                             "iport-criteria", "code": "mdi-impractical"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueBoolean": True,
    }  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            fhir = FhirClient(fhir_server.base_url, session=new_session(2), executor=pool,
                              settings=FetchSettings())  # fmt: skip
            fhir.create(resource, f"identifier=urn:ietf:rfc:3986|{identifier}")
            fhir.close()
    found = requests.get(
        f"{fhir_server.base_url}/Observation",
        params={"identifier": f"urn:ietf:rfc:3986|{identifier}"},
        headers={"Accept": "application/fhir+json"},
        timeout=10,
    ).json()
    assert len(found.get("entry", [])) == 1


def test_a_server_off_the_allowlist_is_never_contacted(service_url: str) -> None:
    resp = requests.get(
        f"{service_url}/review/launch",
        params={"iss": "https://fhir.example.org/r4", "launch": "abc"},
        allow_redirects=False,
    )
    assert resp.status_code == 400
    assert "allowlist" in resp.text


def test_an_unknown_state_is_refused(service_url: str) -> None:
    resp = requests.get(f"{service_url}/review/callback", params={"state": "x", "code": "y"})
    assert resp.status_code == 400


def test_a_callback_in_another_browser_is_refused(
    service_url: str, smart_server: SmartServer
) -> None:
    # An attacker starts a launch and gets a code; the victim's browser opens the callback.
    with requests.Session() as attacker:
        start = attacker.get(
            f"{service_url}/review/launch", params={"iss": smart_server.iss}, allow_redirects=False
        )
        approved = attacker.get(start.headers["Location"], allow_redirects=False)
        callback = approved.headers["Location"]
    with requests.Session() as victim:
        resp = victim.get(callback, allow_redirects=False)
        assert resp.status_code == 400
        assert "iport_review" not in resp.cookies


def _confirmations(fhir: FhirTestServer, patient_id: str) -> int:
    resp = requests.get(
        f"{fhir.base_url}/Observation",
        params={"patient": patient_id, "code": "https://iport-cds.example.org/fhir/CodeSystem/iport-criteria|"},
        headers={"Accept": "application/fhir+json"},
        timeout=10,
    )  # fmt: skip
    resp.raise_for_status()
    return len(resp.json().get("entry", []))


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://auth.example.org/authorize", True),
        ("http://127.0.0.1:9090/auth/authorize", True),
        ("http://auth.example.org/authorize", False),
        ("ftp://auth.example.org/authorize", False),
    ],
)
def test_authorization_endpoints_must_be_https_unless_on_this_machine(url: str, ok: bool) -> None:
    doc = {"authorization_endpoint": url}
    if ok:
        assert smart._endpoint(doc, "authorization_endpoint") == url
    else:
        with pytest.raises(smart.LaunchError):
            smart._endpoint(doc, "authorization_endpoint")


def test_the_sandbox_launch_request_gets_a_launch_id(smart_server: SmartServer) -> None:
    url = f"{smart_server.iss}/_services/smart/Launch"
    launch = "http://127.0.0.1:8080/review/launch"
    ok = requests.post(url, json={"launchUrl": launch, "parameters": {"patient": "p1"}}, timeout=5)
    assert ok.status_code == 200
    assert smart_server.launches[ok.json()["launch_id"]] == {"patient": "p1"}
    bad = requests.post(url, json={"launchUrl": launch, "parameters": {}}, timeout=5)
    assert bad.status_code == 400


def test_the_fhir_api_behind_it_needs_a_token_it_issued(
    smart_server: SmartServer, patient_id: str
) -> None:
    url = f"{smart_server.iss}/Patient/{patient_id}"
    assert requests.get(url, timeout=5).status_code == 401
    forged = requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=5)
    assert forged.status_code == 401


def test_open_reads_answer_the_sandboxs_searches_and_nothing_else(
    fhir_server: FhirTestServer, patient_id: str
) -> None:
    """With ``open_reads`` (for the CDS Hooks Sandbox), token-less reads and searches pass, as
    the Sandbox makes them (a POST to ``_search`` first); writes still need a token."""
    with SmartServer(fhir_server.base_url, free_port(), open_reads=True).serve() as smart:
        read = requests.get(f"{smart.iss}/Patient/{patient_id}", timeout=5)
        assert read.status_code == 200
        assert read.headers["Access-Control-Allow-Origin"] == "*"
        search = requests.post(
            f"{smart.iss}/Condition/_search",
            data={"subject": f"Patient/{patient_id}"},
            timeout=5,
        )
        assert search.status_code == 200
        assert search.json()["resourceType"] == "Bundle"
        write = requests.put(f"{smart.iss}/Patient/{patient_id}", json=read.json(), timeout=5)
        assert write.status_code == 401
        create = requests.post(f"{smart.iss}/Observation", json={}, timeout=5)
        assert create.status_code == 401


# -- several workers and pods ------------------------------------------------------------------
# Every worker retires after one request (MAX_REQUESTS=1), so each request of a launch is
# served by a different process than the one before it: state in a worker's memory is lost.
ONE_REQUEST_PER_WORKER = {
    "FHIR_ALLOW_LOOPBACK": "true",
    "MAX_REQUESTS": "1",
    "MAX_REQUESTS_JITTER": "0",
    "LOG_LEVEL": "INFO",
}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


class Balancer:
    """A browser behind a round-robin load balancer: each request to the service goes to the
    next pod, redirects are followed by hand, and no connection is reused."""

    def __init__(self, pods: list[ServiceProcess]) -> None:
        self.pods = [p.url for p in pods]
        self._next = itertools.cycle(self.pods)
        self.browser = requests.Session()
        self.browser.headers["Connection"] = "close"
        self.service_requests = 0

    def _route(self, url: str) -> str:
        for pod in self.pods:
            if url.startswith(pod):
                self.service_requests += 1
                return next(self._next) + url.removeprefix(pod)
        return url

    def go(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        resp = self.browser.request(method, self._route(url), allow_redirects=False, **kwargs)
        while resp.is_redirect:
            url = urljoin(resp.url, resp.headers["Location"])
            resp = self.browser.get(self._route(url), allow_redirects=False)
        return resp


def _launch_across_processes(
    pods: list[ServiceProcess], smart_server: SmartServer, database_url: str, patient_id: str
) -> None:
    lb = Balancer(pods)
    page = lb.go("GET", f"{pods[0].url}/review/launch", params={"iss": smart_server.iss})
    assert page.status_code == 200, page.text[:2000]
    assert 'id="outcome" data-outcome="' in page.text  # assessed (a test may have confirmed)
    csrf = _CSRF.search(page.text)
    assert csrf
    summary = lb.go("GET", f"{pods[0].url}/review/summary")
    assert summary.status_code == 200
    assert "Commissioning evidence" in summary.text

    # At rest: one session row, holding no token, patient id or cookie value in clear.
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(sa.select(ReviewAppSession))]
    finally:
        engine.dispose()
    assert [r[1] for r in rows] == ["session"]
    secrets = [*smart_server.tokens, patient_id, lb.browser.cookies["iport_review"]]
    for secret in secrets:
        assert secret not in repr(rows)

    # Sign out (a form with the session's CSRF token) on yet another process: the row goes.
    out = lb.go("POST", f"{pods[0].url}/review/logout", data={"csrf": csrf.group(1)})
    assert out.status_code == 200
    assert "You have signed out" in out.text
    assert "iport_review" not in lb.browser.cookies
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(ReviewAppSession)).scalar() == 0
            )
    finally:
        engine.dispose()
    lb.browser.close()

    # launch, authorize (not ours), callback, assessment, summary, logout: 5 service requests,
    # each served by a worker process that served nothing else and then exited.
    assert lb.service_requests == 5

    def retired() -> int:
        return sum(p.log.count("Autorestarting worker after current request") for p in pods)

    deadline = time.monotonic() + 10
    while retired() < lb.service_requests and time.monotonic() < deadline:
        time.sleep(0.1)
    assert retired() >= lb.service_requests
    for pod in pods:
        for secret in secrets:
            assert secret not in pod.log


def test_a_launch_completes_when_every_request_lands_on_another_worker(
    smart_server: SmartServer, patient_id: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    settings = {**ONE_REQUEST_PER_WORKER, "DATABASE_URL": url, "REVIEW_APP_SESSION_KEY": KEY}
    with ServiceProcess(settings, workers=2) as svc:
        _launch_across_processes([svc], smart_server, url, patient_id)


def test_a_launch_completes_across_pods_sharing_postgresql(
    smart_server: SmartServer, patient_id: str, postgres: PostgresServer
) -> None:
    url = postgres.new_database()
    settings = {**ONE_REQUEST_PER_WORKER, "DATABASE_URL": url, "REVIEW_APP_SESSION_KEY": KEY}
    with ServiceProcess(settings, workers=2) as a, ServiceProcess(settings, workers=2) as b:
        _launch_across_processes([a, b], smart_server, url, patient_id)


def test_a_token_the_fhir_server_refuses_ends_the_session_and_its_row(
    service_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        known = set(smart_server.tokens)
        page = browser.get(f"{service_url}/review/launch", params={"iss": smart_server.iss})
        assert page.status_code == 200
        cookie = browser.cookies["iport_review"]
        [token] = set(smart_server.tokens) - known
        grant = smart_server.tokens.pop(token)  # revoked by the EHR
        refused = browser.get(f"{service_url}/review/")
        assert refused.status_code == 401
        assert "iport_review" not in browser.cookies
        smart_server.tokens[token] = grant  # valid again: the session is gone all the same
        again = requests.get(f"{service_url}/review/", cookies={"iport_review": cookie})
        assert again.status_code == 401


def test_a_deceased_patient_is_not_assessed_and_nothing_can_be_confirmed(
    service_url: str, fhir_server: FhirTestServer
) -> None:
    deceased = demo.get_patient("t1-deceased")
    fhir_server.load(deceased.bundle(date.today()))
    pid = deceased.patient_id
    with (
        SmartServer(fhir_server.base_url, free_port(), standalone_patient=pid).serve() as smart,
        requests.Session() as browser,
    ):
        page = browser.get(f"{service_url}/review/launch", params={"iss": smart.iss})
        assert page.status_code == 200
        assert "recorded as deceased" in page.text
        assert "Record that I confirm" not in page.text
        assert 'id="criterion-' not in page.text  # no criteria are assessed
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf  # the sign-out form's: a real session's token
        before = _confirmations(fhir_server, pid)
        resp = browser.post(
            f"{service_url}/review/confirm",
            data={"criterion": "needle-phobia", "policy": "hny-iport-advance", "csrf": csrf[1]},
        )
        assert resp.status_code == 400
        assert "cannot be confirmed" in resp.text
        assert _confirmations(fhir_server, pid) == before
        summary = browser.get(f"{service_url}/review/summary")
        assert "recorded as deceased" in summary.text
        assert 'id="ifr-route"' not in summary.text


# -- with authentication on: a launch's FHIR server is one tenant's, and the session keeps it --
ISSUER = "https://integration-engine.example.nhs.uk"


def _authenticated(folder: Path, tenants: dict[str, list[str]], **env: str) -> ServiceProcess:
    """The service under gunicorn with authentication on: one integration engine whose
    tenants each have their own FHIR servers; database and session key in ``folder``."""
    issuers = folder / f"issuers-{uuid.uuid4().hex}.json"
    issuers.write_text(
        json.dumps(
            [
                {
                    "iss": ISSUER,
                    "jwks": {"keys": [public_jwk(JWT_KEY, "k1", "ES384")]},
                    "tenants": {t: {"fhir_servers": s} for t, s in tenants.items()},
                }
            ]
        )
    )
    port = free_port()
    settings = {
        "REQUIRE_AUTH": "true",
        "TRUSTED_ISSUERS_FILE": str(issuers),
        "EXTERNAL_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{folder / 'service.sqlite3'}",
        "REVIEW_APP_SESSION_KEY": KEY,
        **env,
    }
    return ServiceProcess(settings, port=port)


def test_with_authentication_only_a_tenants_fhir_server_may_launch_the_app(
    smart_server: SmartServer, tmp_path: Path
) -> None:
    with SlowFhirServer() as elsewhere:
        tenants = {"trust-a": [smart_server.iss], "trust-b": ["https://fhir.trust-b.example/r4"]}
        # On the deployment-wide allowlist, but no tenant's FHIR server.
        allowlist = json.dumps([elsewhere.base_url])
        with _authenticated(tmp_path, tenants, FHIR_SERVER_ALLOWLIST=allowlist) as svc:
            refused = requests.get(
                f"{svc.url}/review/launch",
                params={"iss": elsewhere.base_url, "launch": "abc"},
                allow_redirects=False,
                timeout=10,
            )
            assert refused.status_code == 400
            assert "cannot be used" in refused.text
            assert elsewhere.requests == 0  # not even its SMART configuration was asked for
            with requests.Session() as browser:
                page = browser.get(f"{svc.url}/review/launch", params={"iss": smart_server.iss})
            assert page.status_code == 200, page.text[:2000]
            assert (
                'id="outcome" data-outcome="' in page.text
            )  # assessed (a test may have confirmed)


def test_a_session_sends_its_token_only_to_the_servers_of_the_tenant_it_was_started_for(
    smart_server: SmartServer, tmp_path: Path
) -> None:
    with (
        _authenticated(tmp_path, {"trust-a": [smart_server.iss]}) as svc,
        requests.Session() as browser,
    ):
        known = set(smart_server.tokens)
        page = browser.get(f"{svc.url}/review/launch", params={"iss": smart_server.iss})
        assert page.status_code == 200, page.text[:2000]
        [token] = set(smart_server.tokens) - known
        cookie = browser.cookies["iport_review"]
    assert token in smart_server.presented  # the record was read with the session's token
    # The same database and key, but that FHIR server is now trust-b's, not trust-a's.
    moved = {"trust-a": ["https://fhir.trust-a.example/r4"], "trust-b": [smart_server.iss]}
    with _authenticated(tmp_path, moved) as svc:
        sent_before = smart_server.presented.count(token)
        page = requests.get(f"{svc.url}/review/", cookies={"iport_review": cookie}, timeout=15)
        assert page.status_code == 502
        assert "no request was sent to it" in page.text
        summary = requests.get(
            f"{svc.url}/review/summary", cookies={"iport_review": cookie}, timeout=15
        )
        assert summary.status_code == 502
    assert smart_server.presented.count(token) == sent_before  # trust-a's token went nowhere


def test_a_patient_whose_date_of_death_is_after_today_is_not_assessed_and_the_app_says_why(
    service_url: str, fhir_server: FhirTestServer
) -> None:
    # A date of death a month ahead: the record cannot be true as it stands, so whether the
    # patient is alive is unknown.
    dead_or_alive = demo.get_patient("t1-death-date-after-today")
    fhir_server.load(dead_or_alive.bundle(date.today()))
    pid = dead_or_alive.patient_id
    with (
        SmartServer(fhir_server.base_url, free_port(), standalone_patient=pid).serve() as smart,
        requests.Session() as browser,
    ):
        page = browser.get(f"{service_url}/review/launch", params={"iss": smart.iss})
        assert page.status_code == 200
        assert "Date of death in the record is not plausible" in page.text
        assert "is after today" in page.text
        assert "whether the patient is alive is unknown" in page.text
        assert 'id="criterion-' not in page.text  # no criteria are assessed
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        before = _confirmations(fhir_server, pid)
        resp = browser.post(
            f"{service_url}/review/confirm",
            data={"criterion": "needle-phobia", "policy": "hny-iport-advance", "csrf": csrf[1]},
        )
        assert resp.status_code == 400
        assert _confirmations(fhir_server, pid) == before
        summary = browser.get(f"{service_url}/review/summary")
        assert "Date of death in the record is not plausible" in summary.text
        assert 'id="ifr-route"' not in summary.text
