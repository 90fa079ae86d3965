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
from tests.integration.ehr import confirm, demo_as, launch_app, put_resource, review_service
from tests.integration.test_evidence_pack import CLINICIAN
from tests.service_process import free_port
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

DEMO = demo.get_patient("t1-hypo-lipohypertrophy")  # disabling hypoglycaemia to confirm
PID = "one-withdraw-hypo-lipohypertrophy"
_ROW = re.compile(r'<tr class="nhsuk-table__row" id="criterion-([^"]+)"(.*?)</tr>', re.S)
_OBSERVATION = re.compile(r'name="observation" value="([^"]+)"')


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    fhir_server.load(demo_as(DEMO, PID))
    put_resource(fhir_server, CLINICIAN)
    with SmartServer(fhir_server.base_url, free_port(), standalone_patient=PID).serve() as s:
        yield s


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with review_service(tmp_path_factory.mktemp("one-withdraw")) as url:
        yield url


def withdraw_buttons(page: str) -> dict[str, list[str]]:
    """The Observations each criterion's row offers to withdraw, by criterion id."""
    return {
        cid: _OBSERVATION.findall(body)
        for cid, body in _ROW.findall(page)
        if _OBSERVATION.search(body)
    }


def test_a_confirmation_deciding_two_criteria_has_one_withdraw_button(
    service_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        _, csrf = launch_app(browser, service_url, smart_server.iss)
        done = confirm(browser, service_url, csrf, "disabling-hypoglycaemia")
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
