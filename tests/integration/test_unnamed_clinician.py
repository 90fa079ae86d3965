"""A clinician whose name the EHR cannot give: the app says so before they confirm, and the
record, the app and the evidence pack never pass a bare "a clinician" off as a name.

Real parts: sekmet holding a demo patient (under this module's own ids) and no Practitioner
for the signed-in user, the local Authlib authorization server signing in as that user
(``fhirUser``), the service on a loopback port, the PDF read back with pypdf.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

import demo
from tests.fhir_server import FhirTestServer
from tests.integration.ehr import confirm, launch_app, smart_for
from tests.integration.test_evidence_pack import pages_of
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

DEMO = demo.get_patient("t1-stale-needle-phobia")  # meets but for a needle phobia from 2021
PID = "unnamed-stale-needle-phobia"
USER = "Practitioner/unnamed-no-such-clinician"  # no such resource on the FHIR server
NOT_READ = (
    f"Your name could not be read from the EHR; this confirmation will be recorded as {USER}."
)


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    with smart_for(fhir_server, DEMO, PID, user=USER) as s:
        yield s


def test_an_unnamed_clinician_is_told_before_confirming_and_never_shown_as_a_clinician(
    review_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        page, csrf = launch_app(browser, review_url, smart_server.iss)
        assert "Record that I confirm" in page
        assert NOT_READ in " ".join(page.split())
        done = confirm(browser, review_url, csrf, "needle-phobia")
        shown = " ".join(done.split())
        assert 'data-outcome="meets-criteria"' in shown
        assert "a clinician recorded" not in shown.lower()
        assert "confirmed met by a clinician on" not in shown
        assert "name not available from the EHR" in shown

        summary = browser.get(f"{review_url}/review/summary", timeout=20)
        assert "Name not available from the EHR" in summary.text
        assert USER not in summary.text

        pdf = browser.get(f"{review_url}/review/summary.pdf", timeout=30)
        whole = " ".join(" ".join(pages_of(pdf.content)).split())
        assert "Prepared by Name not available from the EHR" in whole
        assert "The clinician signing below" not in whole
        assert USER not in whole
        assert "confirmed met by a clinician on" not in whole
