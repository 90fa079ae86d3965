"""The clinician's whole flow in a real headless browser, axe-core clean on every page.

A card from a real hook call to the running service → its SMART link launched as the CDS
Hooks Sandbox launches it → confirm a criterion with a reason → withdraw it → confirm it
again → the commissioning evidence summary → the PDF evidence pack, read back with pypdf.

Real parts throughout: the suite's FHIR server (sekmet) holding a demo patient and the
clinician's Practitioner record, the local SMART authorization server (tests/smart_server.py,
Authlib) enforcing the token's scopes, the service on a loopback port, Debian's Chromium
through Playwright, and axe-core from the npm registry. Screenshots of the withdraw control
and of a withdrawn confirmation: test-artifacts/, and docs/images/ with
``SAVE_DOC_SCREENSHOTS=1``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page
from pypdf import PdfReader

import demo
from tests.browser.axe import serious_violations
from tests.browser.test_review_app import card_page, sandbox_launch, shoot, watch
from tests.fhir_server import FhirTestServer
from tests.integration.conftest import fhir_server
from tests.integration.ehr import demo_as, order_sign_card, put_resource, review_service
from tests.integration.test_evidence_pack import BORN, CLINICIAN, NAME, NHS_NUMBER
from tests.service_process import free_port
from tests.smart_server import SmartServer

__all__ = ["fhir_server"]

DEMO = demo.get_patient("t1-stale-needle-phobia")  # meets but for a needle phobia from 2021
PID = "flow-stale-needle-phobia"
CRITERIA_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/iport-criteria"
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
ROW = "#criterion-needle-phobia"


@pytest.fixture(scope="module")
def patient(fhir_server: FhirTestServer) -> str:
    fhir_server.load(demo_as(DEMO, PID))
    put_resource(fhir_server, CLINICIAN)
    return PID


@pytest.fixture(scope="module")
def smart(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    with SmartServer(fhir_server.base_url, free_port()).serve() as server:
        yield server


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with review_service(tmp_path_factory.mktemp("flow")) as url:
        yield url


def accessible(page: Page, where: str) -> None:
    assert serious_violations(page) == [], where


def outcome(page: Page) -> str | None:
    return page.locator("h1#outcome").get_attribute("data-outcome")


def confirm(page: Page, reason: str) -> None:
    row = page.locator(ROW)
    row.locator("textarea").fill(reason)
    row.get_by_role("button", name="Record that I confirm").click()
    page.wait_for_url("**confirmed=needle-phobia**")


def confirmations(fhir: FhirTestServer) -> list[dict[str, Any]]:
    found = requests.get(
        f"{fhir.base_url}/Observation",
        params={"patient": PID, "code": f"{CRITERIA_SYSTEM}|needle-phobia"},
        headers=FHIR_JSON,
        timeout=10,
    ).json()
    return [e["resource"] for e in found.get("entry", [])]


def test_card_launch_confirm_withdraw_confirm_summary_and_pdf(
    browser: Browser,
    fhir_server: FhirTestServer,
    smart: SmartServer,
    service_url: str,
    patient: str,
) -> None:
    card = order_sign_card(service_url, fhir_server.base_url, patient)
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "insufficient-information"
    (link,) = [x for x in card["links"] if x["type"] == "smart"]

    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    errors, requested = watch(page)
    try:
        page.set_content(card_page(card))
        accessible(page, "the card")

        # The launch, as the Sandbox makes it: launch id, authorize (PKCE), token, the app.
        page.goto(sandbox_launch(smart, link, patient))
        page.wait_for_url(f"{service_url}/review/**")
        assert outcome(page) == "insufficient-information"
        assert page.locator(ROW).get_attribute("data-result") == "unknown"
        accessible(page, "the app, launched")

        # Confirm with a reason: the outcome changes and the confirmation can be withdrawn.
        confirm(page, "Faints at injections; misses evening doses")
        assert outcome(page) == "meets-criteria"
        row = page.locator(ROW)
        assert row.get_attribute("data-result") == "met"
        assert "because: Faints at injections" in row.text_content()
        withdraw = row.get_by_role("button", name="Withdraw the confirmation of")
        assert withdraw.is_visible()
        accessible(page, "the app, confirmed")
        shoot(row, "review-app-withdraw")

        # Withdraw it: entered in error on the FHIR server, the outcome back to unknown.
        withdraw.click()
        page.wait_for_url("**withdrawn=needle-phobia**")
        assert outcome(page) == "insufficient-information"
        status = " ".join(page.get_by_role("status").text_content().split())
        assert status.startswith("Information: The confirmation was withdrawn"), status
        row = page.locator(ROW)
        assert row.get_attribute("data-result") == "unknown"
        listed = row.locator(".review-withdrawn").text_content()
        assert "Confirmed by Dr Asha Patel on" in listed
        assert "(reason given: Faints at injections; misses evening doses)" in listed
        assert "withdrawn by Dr Asha Patel on" in listed
        assert row.get_by_role("button", name="Withdraw the confirmation of").count() == 0
        (withdrawn,) = confirmations(fhir_server)
        assert withdrawn["status"] == "entered-in-error"
        accessible(page, "the app, withdrawn")
        shoot(row, "review-app-withdrawn")

        # Confirm again: a new confirmation, and the withdrawn one still named.
        confirm(page, "Needle phobia confirmed at today's review")
        assert outcome(page) == "meets-criteria"
        assert "withdrawn by Dr Asha Patel" in page.locator(ROW).text_content()
        assert sorted(o["status"] for o in confirmations(fhir_server)) == [
            "entered-in-error",
            "final",
        ]
        accessible(page, "the app, confirmed again")

        # The evidence summary: the standing confirmation, and the withdrawn one named.
        page.click("#summary-link")
        page.wait_for_url("**/review/summary**")
        main = page.text_content("main")
        assert "Needle phobia confirmed at today's review" in main
        assert "withdrawn by Dr Asha Patel" in main
        assert NHS_NUMBER in main
        accessible(page, "the summary")

        # The PDF evidence pack, downloaded as the clinician would.
        with page.expect_download() as download:
            page.click("#pack-link")
        path = download.value.path()
        assert download.value.suggested_filename.endswith(".pdf")
        assert patient not in download.value.suggested_filename
        with open(path, "rb") as f:
            pages = [p.extract_text() or "" for p in PdfReader(io.BytesIO(f.read())).pages]
        assert pages
        for n, text in enumerate(pages, start=1):
            flat = " ".join(text.split())
            assert f"{NAME} · NHS number {NHS_NUMBER} · Born {BORN}" in flat, n
            assert f"Page {n} of {len(pages)}" in flat, n
        whole = " ".join(" ".join(pages).split())
        assert "confirmed met by Dr Asha Patel" in whole
        assert "because: Needle phobia confirmed at today's review" in whole
        assert "Withdrawn: Confirmed by Dr Asha Patel" in whole
        assert "GMC 7654321" in whole

        assert errors == []
        hosts = {urlsplit(u).hostname for u in requested if u.startswith("http")}
        assert hosts == {"127.0.0.1"}, hosts  # nothing leaves the deployment
    finally:
        context.close()
