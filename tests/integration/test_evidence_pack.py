"""The commissioning evidence pack as a PDF, from a real launch: sekmet with a demo patient and
the clinician's Practitioner record, the local Authlib authorization server, the service on a
loopback port, and the PDF read back with pypdf.

What a funding panel needs: who it is about on every page, page numbers, the deciding pathway
first, each clinician's confirmation beside what the record holds, the clinician's name, role
and registration, and room for exceptional circumstances when the criteria are not met.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests
from pypdf import PdfReader

import demo
from tests.fhir_server import FhirTestServer
from tests.integration.ehr import review_service
from tests.service_process import free_port
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

PATIENT = "t1-stale-needle-phobia"  # meets but for a needle phobia last recorded 5 years ago
CLINICIAN = {
    "resourceType": "Practitioner",
    "id": "demo-clinician",
    "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "7654321"}],
    "name": [{"text": "Dr Asha Patel", "family": "Patel", "given": ["Asha"]}],
    "qualification": [{"code": {"text": "Consultant diabetologist"}}],
}
NAME, NHS_NUMBER, BORN = "Grace Okafor", "9997000005", "23 Apr 1991"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_OFFERED = re.compile(r'name="criterion" value="([^"]+)"')
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture(scope="module")
def patient(fhir_server: FhirTestServer) -> demo.DemoPatient:
    p = demo.get_patient(PATIENT)
    fhir_server.load(p.bundle(date.today()))
    requests.put(
        f"{fhir_server.base_url}/Practitioner/demo-clinician",
        json=CLINICIAN,
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    ).raise_for_status()
    return p


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer, patient: demo.DemoPatient) -> Iterator[SmartServer]:
    with SmartServer(
        fhir_server.base_url, free_port(), standalone_patient=patient.patient_id
    ).serve() as s:
        yield s


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with review_service(tmp_path_factory.mktemp("pack")) as url:
        yield url


def launched_pack(
    browser: requests.Session, service_url: str, smart_server: SmartServer
) -> requests.Response:
    """The evidence pack's answer after a standalone launch of the assessment app."""
    page = browser.get(
        f"{service_url}/review/launch",
        params={"iss": smart_server.iss, "policy": "iport-advance"},
        timeout=20,
    )
    assert page.status_code == 200, page.text[:500]
    pack = browser.get(f"{service_url}/review/summary.pdf", timeout=30)
    assert pack.status_code == 200, pack.text[:500]
    return pack


def pages_of(pdf: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages]


POLICY_URL = "https://icb.example.nhs.uk/policies/iport-advance.pdf"
IFR_URL = "https://icb.example.nhs.uk/ifr"


def test_the_pack_gives_the_policy_and_ifr_addresses_the_deployment_sets(
    smart_server: SmartServer, tmp_path: Path
) -> None:
    # Runs before the confirmation below: the criteria are not met yet, so the IFR route shows
    links = {"policyUrl": POLICY_URL, "fundingRequestUrl": IFR_URL}
    with (
        review_service(tmp_path, POLICY_PARAMETERS=links) as url,
        requests.Session() as browser,
    ):
        pdf = launched_pack(browser, url, smart_server)
    unbroken = "".join("".join(pages_of(pdf.content)).split())  # an address may wrap a line
    assert POLICY_URL in unbroken
    assert IFR_URL in unbroken
    assert "notconfiguredforthisdeployment" not in unbroken


def test_the_pack_names_the_patient_on_every_page_and_keeps_the_record_beside_a_confirmation(
    service_url: str, smart_server: SmartServer, patient: demo.DemoPatient
) -> None:
    with requests.Session() as browser:
        before = launched_pack(browser, service_url, smart_server)
        assert before.headers["Content-Type"] == "application/pdf"
        disposition = before.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")
        assert patient.patient_id not in disposition  # no identifier in a file name

        text = pages_of(before.content)
        # the deciding pathway, then the appendix (the other pathway's criteria, the
        # assumptions) following on: no near-empty page before it (a full page of this pack
        # reads back as some 3,000 characters)
        appendix = next(n for n, t in enumerate(text, start=1) if "Appendix" in t)
        assert appendix <= 2
        assert len(text) <= 3
        assert all(len(t) > 2000 for t in text[:-1]), [len(t) for t in text]
        for n, page_text in enumerate(text, start=1):
            flat = " ".join(page_text.split())
            assert f"{NAME} · NHS number {NHS_NUMBER} · Born {BORN}" in flat, n
            assert f"Page {n} of {len(text)}" in page_text, n  # on one line
        # the clinician's block, from "Prepared by" to the signature, on one page
        assert any("Prepared by" in t and "Signature" in t for t in text)
        first = text[0]
        assert "Commissioning evidence: i-Port Advance" in first
        assert "The type 1 diabetes pathway" in first
        assert "Exceptional circumstances" in "".join(text)  # not met yet: the IFR route
        # This deployment sets no policy document or IFR address: the pack says so plainly
        said = " ".join(" ".join(text).split())
        assert "Policy document link not configured for this deployment." in said
        assert "IFR route link not configured for this deployment" in said
        assert "GMC 7654321" in "".join(text)
        assert "Consultant diabetologist" in "".join(text)

        # Confirm the needle phobia in the app; the pack then shows who confirmed it beside
        # the record it rests on (the entry of five years ago).
        assessment = browser.get(f"{service_url}/review/", params={"policy": "iport-advance"})
        csrf = _CSRF.search(assessment.text)
        assert csrf
        # Only confirmations that could change the outcome are offered: the i-Port criteria of
        # the type 1 pathway, not the type 2 pathway's specialist recommendation.
        offered = set(_OFFERED.findall(assessment.text))
        assert "needle-phobia" in offered
        assert "diabetes-specialist-recommendation" not in offered
        done = browser.post(
            f"{service_url}/review/confirm",
            data={
                "csrf": csrf.group(1),
                "policy": "iport-advance",
                "criterion": "needle-phobia",
                "reason": "Faints at injections; misses evening doses",
            },
            timeout=20,
        )
        assert done.status_code == 200
        assert "Record that I confirm" not in done.text  # meets: nothing left to offer
        after = browser.get(f"{service_url}/review/summary.pdf", timeout=30)
        text = pages_of(after.content)
        whole = " ".join(" ".join(text).split())
        assert "confirmed met by Dr Asha Patel" in whole
        assert "because: Faints at injections; misses evening doses" in whole
        assert "What the record holds:" in whole
        assert whole.count("Faints at injections") == 1  # each confirmation's text once
        assert "Prepared by" in " ".join(t for t in text if "Signature" in t)
        assert "Exceptional circumstances" not in whole  # met now
        if os.environ.get("SAVE_DOC_SCREENSHOTS") == "1":  # docs/sandbox.md's pictures
            pdf = DOCS_IMAGES / "evidence-pack.pdf"
            pdf.write_bytes(after.content)
            subprocess.run(  # Debian's poppler-utils
                ["pdftoppm", "-r", "70", "-png", str(pdf), str(DOCS_IMAGES / "evidence-pack")],
                check=True,
            )
            pdf.unlink()
