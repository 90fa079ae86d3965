"""Withdrawing a clinician's confirmation in the assessment app, over HTTP, against real parts.

Real parts: sekmet holding a demo patient (under ids of this module's own) and the clinician's
Practitioner record, the local Authlib authorization server in front of it enforcing the
token's scopes (tests/smart_server.py), and the service on a loopback port; ``requests``
follows the redirects a browser would.

A withdrawal is an update of the confirmation Observation to ``entered-in-error`` with who
and when, naming the version the clinician's page showed (``If-Match``); the assessment is
made again without it, and the hook path no longer counts it either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests

import demo
from tests.fhir_server import FhirTestServer
from tests.integration.ehr import demo_as, order_sign_card, put_resource, review_service
from tests.integration.test_evidence_pack import CLINICIAN
from tests.service_process import free_port
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

DEMO = demo.get_patient("t1-stale-needle-phobia")  # meets but for a needle phobia from 2021
PID = "withdraw-stale-needle-phobia"
OTHER = "withdraw-someone-else"
CRITERIA_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/iport-criteria"
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_WITHDRAW = re.compile(r'name="observation" value="([^"]+)">\s*<input type="hidden" '
                       r'name="version" value="([^"]+)">')  # fmt: skip


@pytest.fixture(scope="module")
def patient(fhir_server: FhirTestServer) -> str:
    fhir_server.load(demo_as(DEMO, PID))
    fhir_server.load(demo_as(DEMO, OTHER))
    put_resource(fhir_server, CLINICIAN)
    return PID


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer, patient: str) -> Iterator[SmartServer]:
    with SmartServer(fhir_server.base_url, free_port(), standalone_patient=patient).serve() as s:
        yield s


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with review_service(tmp_path_factory.mktemp("withdraw")) as url:
        yield url


# A confirmation as the card's suggestion writes it, about another patient.
OTHERS_CONFIRMATION = {
    "resourceType": "Observation",
    "id": "withdraw-theirs",
    "status": "final",
    "code": {"coding": [{"system": CRITERIA_SYSTEM, "code": "needle-phobia"}]},
    "subject": {"reference": f"Patient/{OTHER}"},
    "effectiveDateTime": date.today().isoformat(),
    "valueBoolean": True,
}


def confirmations(fhir: FhirTestServer, pid: str) -> list[dict[str, Any]]:
    """Every needle-phobia confirmation of ``pid`` on the FHIR server, oldest first."""
    found = requests.get(
        f"{fhir.base_url}/Observation",
        params={
            "patient": pid,
            "code": f"{CRITERIA_SYSTEM}|needle-phobia",
            "_sort": "_lastUpdated",
        },
        headers=FHIR_JSON,
        timeout=10,
    ).json()
    return [e["resource"] for e in found.get("entry", [])]


def outcome(page: requests.Response) -> str:
    m = re.search(r'id="outcome" data-outcome="([^"]+)"', page.text)
    assert m, page.text[:500]
    return m[1]


def launch(browser: requests.Session, service_url: str, smart: SmartServer) -> requests.Response:
    page = browser.get(f"{service_url}/review/launch", params={"iss": smart.iss})
    assert page.status_code == 200, page.text[:500]
    return page


def confirm(
    browser: requests.Session, service_url: str, page: requests.Response
) -> requests.Response:
    csrf = _CSRF.search(page.text)
    assert csrf
    form = {"criterion": "needle-phobia", "csrf": csrf[1], "reason": "Faints at injections"}
    return browser.post(f"{service_url}/review/confirm", data=form)


def withdraw_form(page: requests.Response) -> dict[str, str]:
    csrf, found = _CSRF.search(page.text), _WITHDRAW.search(page.text)
    assert csrf
    assert found, "no withdraw control on the page"
    return {"csrf": csrf[1], "observation": found[1], "version": found[2]}


def order_sign_outcome(service_url: str, fhir: FhirTestServer, pid: str) -> str:
    """The hook path: the outcome on the i-Port card an EHR gets when an i-Port order is
    signed, the service reading the record from the same FHIR server."""
    card = order_sign_card(service_url, fhir.base_url, pid)
    return str(card["extension"]["iport-cds.eligibility"]["outcome"])


def test_a_withdrawn_confirmation_is_entered_in_error_with_who_and_when_and_stops_counting(
    service_url: str, smart_server: SmartServer, fhir_server: FhirTestServer, patient: str
) -> None:
    with requests.Session() as browser:
        page = launch(browser, service_url, smart_server)
        assert outcome(page) == "insufficient-information"
        page = confirm(browser, service_url, page)
        assert outcome(page) == "meets-criteria"
        assert order_sign_outcome(service_url, fhir_server, patient) == "meets-criteria"

        before = len(smart_server.interactions)
        page = browser.post(f"{service_url}/review/withdraw", data=withdraw_form(page))
        assert page.status_code == 200, page.text[:500]
        assert "withdrawn=needle-phobia" in page.url
        assert outcome(page) == "insufficient-information"  # made again without it
        assert "The confirmation was withdrawn" in page.text
        assert "u Observation" in smart_server.interactions[before:]  # an update, not a delete
        (obs,) = confirmations(fhir_server, patient)
        assert obs["status"] == "entered-in-error"
        assert obs["meta"]["versionId"] == "2"
        assert obs["note"][0] == {"text": "Faints at injections"}  # the reason stays
        withdrawal = obs["note"][-1]
        assert withdrawal["text"] == "Withdrawn: entered in error."
        assert withdrawal["authorReference"] == {
            "reference": "Practitioner/demo-clinician",
            "display": "Dr Asha Patel",
        }
        assert withdrawal["time"][:10] == date.today().isoformat()
        # Listed as withdrawn, by whom, and no longer offered for withdrawal.
        row = page.text[page.text.index('id="criterion-needle-phobia"') :]
        row = row[: row.index("</tr>")]
        assert "Withdrawn:" in row
        assert "withdrawn by Dr Asha Patel on" in row
        assert 'name="observation"' not in row
        # No path counts it: not the hook, not the summary.
        assert order_sign_outcome(service_url, fhir_server, patient) == "insufficient-information"
        summary = browser.get(f"{service_url}/review/summary")
        assert "withdrawn by Dr Asha Patel" in summary.text

        # Confirming again (the same clinician, the same day) writes a new confirmation.
        page = confirm(browser, service_url, page)
        assert outcome(page) == "meets-criteria"
        statuses = [o["status"] for o in confirmations(fhir_server, patient)]
        assert sorted(statuses) == ["entered-in-error", "final"]
        assert order_sign_outcome(service_url, fhir_server, patient) == "meets-criteria"
        # The standing one can be withdrawn in turn; the withdrawn one is still named.
        assert withdraw_form(page)["observation"] != obs["id"]
        assert "withdrawn by Dr Asha Patel on" in page.text


def test_a_confirmation_changed_since_the_page_was_shown_is_not_overwritten(
    service_url: str, smart_server: SmartServer, fhir_server: FhirTestServer, patient: str
) -> None:
    with requests.Session() as browser:
        page = launch(browser, service_url, smart_server)
        if outcome(page) != "meets-criteria":
            page = confirm(browser, service_url, page)
        form = withdraw_form(page)
        # Someone else changes it meanwhile (a note added in the EHR): a new version.
        url = f"{fhir_server.base_url}/Observation/{form['observation']}"
        changed = requests.get(url, headers=FHIR_JSON, timeout=10).json()
        changed["note"] = [*changed.get("note", []), {"text": "Seen by the psychologist too"}]
        requests.put(url, json=changed, headers=FHIR_JSON, timeout=10).raise_for_status()

        refused = browser.post(f"{service_url}/review/withdraw", data=form)
        assert refused.status_code == 409
        assert "changed in the record since this page was shown" in refused.text
        now = requests.get(url, headers=FHIR_JSON, timeout=10).json()
        assert now["status"] == "final"
        assert now["note"][-1] == {"text": "Seen by the psychologist too"}

        # The page shown again names the new version, and withdrawing it works.
        page = browser.get(f"{service_url}/review/")
        again = browser.post(f"{service_url}/review/withdraw", data=withdraw_form(page))
        assert again.status_code == 200
        assert outcome(again) == "insufficient-information"


def test_only_a_standing_confirmation_of_this_patient_can_be_withdrawn(
    service_url: str, smart_server: SmartServer, fhir_server: FhirTestServer, patient: str
) -> None:
    """A forged form naming another patient's confirmation, a record that is not a
    confirmation, or one already withdrawn changes nothing."""
    put_resource(fhir_server, OTHERS_CONFIRMATION)
    hba1c = next(
        e["resource"]
        for e in demo_as(DEMO, PID)["entry"]
        if e["resource"]["resourceType"] == "Observation"
    )
    with requests.Session() as browser:
        page = launch(browser, service_url, smart_server)
        csrf = _CSRF.search(page.text)
        assert csrf
        withdrawn = [o["id"] for o in confirmations(fhir_server, patient)
                     if o["status"] == "entered-in-error"]  # fmt: skip
        for target in ["withdraw-theirs", hba1c["id"], "../Patient/x"]:
            form = {"csrf": csrf[1], "observation": target, "version": "1"}
            refused = browser.post(f"{service_url}/review/withdraw", data=form)
            assert refused.status_code == 400, target
            assert "cannot be withdrawn" in refused.text or "not a confirmation" in refused.text
        for target in withdrawn[:1]:  # already withdrawn: the page again, saying by whom
            before = requests.get(f"{fhir_server.base_url}/Observation/{target}", timeout=10)
            form = {"csrf": csrf[1], "observation": target, "version": "1"}
            again = browser.post(f"{service_url}/review/withdraw", data=form)
            assert again.status_code == 200, target
            assert "This confirmation had already been withdrawn" in again.text
            after = requests.get(f"{fhir_server.base_url}/Observation/{target}", timeout=10)
            assert after.json()["meta"] == before.json()["meta"]  # nothing written
        forged = browser.post(
            f"{service_url}/review/withdraw",
            data={"csrf": "not-the-token", "observation": "withdraw-theirs", "version": "1"},
        )
        assert forged.status_code == 403
    found = requests.get(
        f"{fhir_server.base_url}/Observation/withdraw-theirs", headers=FHIR_JSON, timeout=10
    ).json()
    assert (found["status"], found["meta"]["versionId"]) == ("final", "1")


@pytest.mark.parametrize(
    ("withheld", "said"),
    [
        # An EHR that grants the app no update of Observations: the scope it needs is named.
        ("patient/Observation.cu", "did not give this app permission"),
        # No id_token (no openid granted): the record could not say who withdrew it.
        ("openid", "only by a named clinician"),
    ],
)
def test_a_session_that_cannot_withdraw_offers_no_withdrawal_and_says_why(
    service_url: str, fhir_server: FhirTestServer, patient: str, withheld: str, said: str
) -> None:
    narrow = SmartServer(
        fhir_server.base_url,
        free_port(),
        standalone_patient=patient,
        withheld=frozenset({withheld}),
    )
    standing = {**OTHERS_CONFIRMATION, "id": f"withdraw-not-{withheld.split('/')[-1]}",
                "subject": {"reference": f"Patient/{patient}"}}  # fmt: skip
    put_resource(fhir_server, standing)
    with narrow.serve(), requests.Session() as browser:
        page = launch(browser, service_url, narrow)
        assert withheld not in next(iter(narrow.tokens.values()))["scope"].split()
        assert outcome(page) == "meets-criteria"
        assert 'name="observation"' not in page.text
        assert said in page.text
        csrf = _CSRF.search(page.text)
        assert csrf
        before = len(narrow.interactions)
        form = {"csrf": csrf[1], "observation": standing["id"], "version": "1"}
        refused = browser.post(f"{service_url}/review/withdraw", data=form)
        assert refused.status_code == 403
        assert said in refused.text
        # the refused attempt read the record for the page, and wrote nothing
        assert not [i for i in narrow.interactions[before:] if i.startswith("u ")]
    found = requests.get(
        f"{fhir_server.base_url}/Observation/{standing['id']}", headers=FHIR_JSON, timeout=10
    ).json()
    assert found["status"] == "final"
