"""One withdraw button per confirmation, on the criterion it confirms: a confirmation that
also decides a criterion built from it (the i-Port policy's "meets the NICE pump criteria",
from disabling hypoglycaemia) is withdrawn from one place, labelled with its own criterion.

Real parts: sekmet holding a demo patient (under this module's own ids) and the clinician's
Practitioner record, the local Authlib authorization server, the service on a loopback port.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

import demo
from tests.fhir_server import FhirTestServer
from tests.integration.ehr import confirm, launch_app, smart_for
from tests.integration.test_evidence_pack import CLINICIAN
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

DEMO = demo.get_patient("t1-hypo-lipohypertrophy")  # disabling hypoglycaemia to confirm
PID = "one-withdraw-hypo-lipohypertrophy"
_ROW = re.compile(r'<tr class="nhsuk-table__row" id="criterion-([^"]+)"(.*?)</tr>', re.S)
_OBSERVATION = re.compile(r'name="observation" value="([^"]+)"')


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    with smart_for(fhir_server, DEMO, PID, CLINICIAN) as s:
        yield s


def confirmed(browser: requests.Session, review_url: str, iss: str) -> tuple[str, str]:
    """The assessment page with disabling hypoglycaemia confirmed (by this call, unless an
    earlier test's confirmation stands), and the form token."""
    page, csrf = launch_app(browser, review_url, iss)
    if 'name="criterion" value="disabling-hypoglycaemia"' in page:
        page = confirm(browser, review_url, csrf, "disabling-hypoglycaemia")
    return page, csrf


def withdraw_buttons(page: str) -> dict[str, list[str]]:
    """The Observations each criterion's row offers to withdraw, by criterion id."""
    return {
        cid: _OBSERVATION.findall(body)
        for cid, body in _ROW.findall(page)
        if _OBSERVATION.search(body)
    }


def test_a_confirmation_deciding_two_criteria_has_one_withdraw_button(
    review_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        done, _ = confirmed(browser, review_url, smart_server.iss)
        assert 'data-outcome="meets-criteria"' in done
        # the confirmation decides the pump criteria too: it is listed there as evidence
        pump_row = dict(_ROW.findall(done))["nice-pump-criteria"]
        assert "confirmed met by Dr Asha Patel" in pump_row
        offered = withdraw_buttons(done)
        assert list(offered) == ["disabling-hypoglycaemia"]
        assert len(offered["disabling-hypoglycaemia"]) == 1
        flat = " ".join(done.split())
        assert flat.count("Withdraw the confirmation of") == 1
        assert "Withdraw the confirmation of “Disabling hypoglycaemia”" in flat


_FORM = re.compile(r'name="observation" value="([^"]+)">\s*<input type="hidden" '
                   r'name="version" value="([^"]+)">')  # fmt: skip


def test_withdrawing_again_from_another_tab_shows_who_withdrew_it_and_the_page_read_again(
    review_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        page, csrf = confirmed(browser, review_url, smart_server.iss)
        found = _FORM.search(page)  # the same page open in two tabs
        assert found
        form = {
            "csrf": csrf,
            "policy": "iport-advance",
            "observation": found.group(1),
            "version": found.group(2),
            "reason": "Recorded against the wrong patient",
        }
        first = browser.post(f"{review_url}/review/withdraw", data=form, timeout=20)
        assert first.status_code == 200
        second = browser.post(f"{review_url}/review/withdraw", data=form, timeout=20)
        assert second.status_code == 200, second.text[:500]
        shown = " ".join(second.text.split())
        assert "not a confirmation of this patient's" not in shown
        assert "This confirmation had already been withdrawn" in shown
        assert "withdrawn by Dr Asha Patel on" in shown
        assert "because: Recorded against the wrong patient" in shown
        assert 'data-outcome="insufficient-information"' in shown  # the page, read again
        assert "Record that I confirm" in shown  # and the way on: confirm afresh

        # the reason is stored with the withdrawal, in the record
        stored = requests.get(
            f"{smart_server.fhir_base}/Observation/{found.group(1)}", timeout=10
        ).json()
        assert stored["status"] == "entered-in-error"
        assert "Recorded against the wrong patient" in stored["note"][-1]["text"]


def test_the_withdraw_form_asks_for_an_optional_reason(
    review_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        page, _ = confirmed(browser, review_url, smart_server.iss)
        assert 'for="withdraw-reason-' in page
        assert "Reason for withdrawing (optional)" in page
