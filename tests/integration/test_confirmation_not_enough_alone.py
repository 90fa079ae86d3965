"""A confirmation that cannot change the outcome on its own: the app says so before the
clinician confirms, and after, what else the record needs.

Real parts: sekmet holding a demo patient (under this module's own ids) and the clinician's
Practitioner record, the local Authlib authorization server, the service on a loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

import demo
from tests.fhir_server import FhirTestServer
from tests.integration.ehr import confirm, launch_app, smart_for
from tests.integration.test_evidence_pack import CLINICIAN
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

# A 9-year-old on a pump with no insulin prescription in the record: "MDI impractical" is
# offered, but the insulin prescription is missing too.
DEMO = demo.get_patient("t1-hcl-child-on-omnipod-5")
PID = "not-alone-child-on-omnipod"
NEEDS = "the record also needs a current insulin prescription."


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    with smart_for(fhir_server, DEMO, PID, CLINICIAN) as s:
        yield s


def test_a_confirmation_that_cannot_decide_alone_says_what_else_is_needed(
    review_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        page, csrf = launch_app(browser, review_url, smart_server.iss)
        before = " ".join(page.split())
        assert 'name="criterion" value="mdi-impractical"' in before
        assert f"This alone will not change the outcome: {NEEDS}" in before.replace("</strong>", "")
        after = " ".join(confirm(browser, review_url, csrf, "mdi-impractical").split())
        assert 'data-outcome="insufficient-information"' in after
        assert f"The outcome is unchanged because {NEEDS}" in after
