"""The SMART assessment app in a real headless browser, launched from a real card.

Real parts throughout: the suite's FHIR server (sekmet) holding a demo patient, the local
SMART authorization server (tests/smart_server.py, Authlib) in front of it, the service on a
loopback port, Debian's Chromium through Playwright, and axe-core from the npm registry.

The test calls the order-sign hook, takes the card's SMART link, makes the Sandbox's
launch-context request, opens the link as an EHR would (``?launch=…&iss=…``) and follows the
full authorization-code-with-PKCE launch. The app shows the assessment; the clinician records a
confirmation; the Observation is on the FHIR server and the assessment changes; the printable
summary renders. Screenshots: test-artifacts/review-*.png, and in docs/images/ with
``SAVE_DOC_SCREENSHOTS=1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from markdown_it import MarkdownIt
from playwright.sync_api import Browser, Locator, Page

import demo
from service import create_app
from tests.browser.axe import serious_violations
from tests.fhir_server import FhirTestServer
from tests.integration.conftest import fhir_server
from tests.integration.ehr import order_sign_card
from tests.service_process import free_port, serving
from tests.smart_server import SmartServer
from tests.store import debian

__all__ = ["fhir_server"]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
DOC_IMAGES = REPO / "docs" / "images"
PATIENT = "t2-no-specialist"  # insufficient: only the specialist recommendation is missing
CRITERIA_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/iport-criteria"


@pytest.fixture(scope="module", autouse=True)
def _emoji_font() -> None:
    """The card's ✅ ❓ ❌ drawn as an EHR on a desktop would draw them."""
    debian.ensure(
        ["fonts-noto-color-emoji"],
        lambda: Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf").exists(),
    )


@pytest.fixture(scope="module")
def patient(fhir_server: FhirTestServer) -> str:
    p = demo.get_patient(PATIENT)
    fhir_server.load(p.bundle(date.today()))
    clinician = {
        "resourceType": "Practitioner",
        "id": "demo-clinician",
        "name": [{"prefix": ["Dr"], "given": ["Asha"], "family": "Patel", "text": "Dr Asha Patel"}],
    }
    requests.put(
        f"{fhir_server.base_url}/Practitioner/demo-clinician",
        json=clinician,
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    ).raise_for_status()
    return p.patient_id


@pytest.fixture(scope="module")
def smart(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    with SmartServer(fhir_server.base_url, free_port()).serve() as server:
        yield server


@pytest.fixture(scope="module")
def service_url(smart: SmartServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "FHIR_ALLOW_LOOPBACK": True,
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('review') / 'audit.sqlite3'}",
        }
    )
    with serving(app) as url:
        yield url


def sandbox_launch(smart: SmartServer, link: dict[str, Any], patient_id: str) -> str:
    """What the CDS Hooks Sandbox does with a SMART link: ask the FHIR server for a launch id,
    then open the link with ``launch`` and ``iss``."""
    resp = requests.post(
        f"{smart.iss}/_services/smart/Launch",
        json={"launchUrl": link["url"],
              "parameters": {"patient": patient_id, "appContext": link["appContext"]}},
        timeout=10,
    )  # fmt: skip
    resp.raise_for_status()
    return f"{link['url']}?launch={resp.json()['launch_id']}&iss={smart.iss}"


def card_page(card: dict[str, Any]) -> str:
    """The card as an EHR pop-up shows it: summary, markdown detail, buttons, links."""
    md = MarkdownIt("commonmark", {"html": False})
    buttons = "".join(f"<button>{s['label']}</button>" for s in card.get("suggestions", []))
    links = "".join(f"<li><a href='#'>{link['label']}</a></li>" for link in card["links"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
    <title>{card["summary"]}</title><style>
      body {{ font: 15px/1.4 system-ui, sans-serif; background: #eef1f4; padding: 16px; }}
      .card {{ max-width: 720px; background: #fff; border-left: 6px solid #e6a700;
               border-radius: 4px; padding: 12px 16px; box-shadow: 0 1px 3px #0003; }}
      h1 {{ font-size: 17px; margin: 0 0 8px; }} p, ul {{ margin: 6px 0; }}
      button {{ margin: 8px 8px 0 0; padding: 6px 10px; }} .links {{ font-size: 14px; }}
    </style></head><body><div class="card"><h1>{card["summary"]}</h1>
      {md.render(card["detail"])}{buttons}<ul class="links">{links}</ul></div></body></html>"""


def watch(page: Page) -> tuple[list[str], list[str]]:
    """The script errors of ``page`` and every URL it requests, as they happen (with the CSP
    bypassed for axe-core, a font or asset from elsewhere would be tried, and seen here)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    return errors, requested


def shoot(target: Page | Locator, name: str) -> None:
    """A screenshot in test-artifacts/, and in docs/images/ with SAVE_DOC_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(exist_ok=True)
    folders = [ARTIFACTS]
    if os.environ.get("SAVE_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        folders.append(DOC_IMAGES)
    for folder in folders:
        if isinstance(target, Page):
            target.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        else:
            target.screenshot(path=str(folder / f"{name}.png"))


def confirmations_on_server(fhir: FhirTestServer, patient_id: str) -> list[dict[str, Any]]:
    resp = requests.get(
        f"{fhir.base_url}/Observation",
        params={"patient": patient_id,
                "code": f"{CRITERIA_SYSTEM}|diabetes-specialist-recommendation"},
        headers={"Accept": "application/fhir+json"},
        timeout=10,
    )  # fmt: skip
    resp.raise_for_status()
    return [e["resource"] for e in resp.json().get("entry", [])]


def test_smart_launch_from_a_card_confirmation_and_evidence_summary(
    browser: Browser,
    fhir_server: FhirTestServer,
    smart: SmartServer,
    service_url: str,
    patient: str,
) -> None:
    card = order_sign_card(service_url, fhir_server.base_url, patient)
    (link,) = [x for x in card["links"] if x["type"] == "smart"]
    assert link["url"] == f"{service_url}/review/launch"
    assert json.loads(link["appContext"])["outcome"] == "insufficient-information"

    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    errors, requested = watch(page)
    try:
        page.set_content(card_page(card))
        shoot(page.locator(".card"), "review-card")

        # The EHR launch: launch id from the Sandbox request, authorize (PKCE), token, app.
        page.goto(sandbox_launch(smart, link, patient))
        page.wait_for_url(f"{service_url}/review/**")
        outcome = page.locator("h1#outcome")
        assert outcome.get_attribute("data-outcome") == "insufficient-information"
        assert "Derek" in page.text_content("main")
        row = page.locator("#criterion-diabetes-specialist-recommendation")
        assert row.get_attribute("data-result") == "unknown"
        assert page.locator("#criterion-needle-phobia").get_attribute("data-result") == "met"
        assert "Could change the outcome" in row.text_content()
        assert page.locator("table.review-criteria tbody tr").count() >= 10  # every criterion
        # a criterion the position states twice (NICE child route, i-Port criterion): both quotes
        quotes = page.locator("#criterion-mdi-impractical .review-policy-text").all_text_contents()
        assert [q[:20] for q in quotes] == ["Policy: “Children yo", "Policy: “multiple da"]
        assert serious_violations(page) == []
        shoot(page, "review-app")

        # The printable summary before the confirmation: the IFR route is offered.
        page.click("#summary-link")
        page.wait_for_url("**/review/summary**")
        assert page.locator("h1").text_content() == "Commissioning evidence summary"
        main = page.text_content("main")
        assert "9992233079" in main  # NHS number
        assert page.locator("#ifr-route").is_visible()  # not met: the IFR route
        assert "2025-12-04" in main  # policy version
        assert "31 Dec 2028" in main  # and review date
        assert serious_violations(page) == []
        page.emulate_media(media="print")
        assert not page.locator(".nhsuk-header").is_visible()
        shoot(page, "review-summary")
        page.emulate_media(media="screen")

        # Record the confirmation; the assessment is made again from the FHIR server.
        page.go_back()
        page.wait_for_url(f"{service_url}/review/?**")
        row = page.locator("#criterion-diabetes-specialist-recommendation")
        row.get_by_role("button").click()
        page.wait_for_url("**confirmed=diabetes-specialist-recommendation**")
        assert page.locator("h1#outcome").get_attribute("data-outcome") == "meets-criteria"
        row = page.locator("#criterion-diabetes-specialist-recommendation")
        assert row.get_attribute("data-result") == "met"
        (obs,) = confirmations_on_server(fhir_server, patient)
        assert obs["valueBoolean"] is True
        assert obs["subject"]["reference"] == f"Patient/{patient}"
        # who confirmed, by name, so the commissioning evidence says who
        assert obs["performer"] == [
            {"reference": "Practitioner/demo-clinician", "display": "Dr Asha Patel"}
        ]
        assert (
            obs["code"]["text"] == "Recommended by a diabetes specialist: confirmed by a clinician"
        )
        assert "Dr Asha Patel recorded on" in row.text_content()

        page.click("#summary-link")
        page.wait_for_url("**/review/summary**")
        assert page.locator("#ifr-route").count() == 0
        assert "Dr Asha Patel" in page.text_content("main")  # the fhirUser's name, read
        assert errors == []
        # Nothing leaves the deployment (the EHR, its FHIR and authorization servers and the
        # service are all on this machine); the app has its own icon.
        hosts = {urlsplit(u).hostname for u in requested if u.startswith("http")}
        assert hosts == {"127.0.0.1"}, hosts
        icon = page.locator("link[rel=icon]").get_attribute("href")
        assert icon is not None
        assert page.request.get(urljoin(page.url, icon)).ok
    finally:
        context.close()


def test_a_launch_from_a_server_off_the_allowlist_is_refused(
    browser: Browser, service_url: str
) -> None:
    page = browser.new_page()
    try:
        resp = page.goto(f"{service_url}/review/launch?iss=https://fhir.example.org/r4&launch=x")
        assert resp is not None
        assert resp.status == 400
        assert "cannot be used" in page.text_content("main")
    finally:
        page.close()


def test_the_confirmation_form_needs_its_csrf_token(service_url: str) -> None:
    # Without a session nothing is written; with a forged form the token check refuses it.
    resp = requests.post(
        f"{service_url}/review/confirm", data={"criterion": "mdi-impractical"}, timeout=10
    )
    assert resp.status_code == 401


def test_evidence_about_another_person_is_named_on_the_card_and_in_the_app(
    browser: Browser, fhir_server: FhirTestServer, smart: SmartServer, service_url: str
) -> None:
    from tests.integration.test_attribution_http import focus_mother
    from tests.integration.test_service_http import put_transaction

    resources = focus_mother()  # an HbA1c whose focus is the patient's mother
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    fhir_server.load(put_transaction(resources))
    card = order_sign_card(service_url, fhir_server.base_url, patient_id)
    (link,) = [x for x in card["links"] if x["type"] == "smart"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    try:
        page.set_content(card_page(card))
        assert "1 result not used: about another person" in page.text_content(".card")
        page.goto(sandbox_launch(smart, link, patient_id))
        page.wait_for_url(f"{service_url}/review/**")
        assert page.locator("h1#outcome").get_attribute("data-outcome") != "meets-criteria"
        assert page.locator("#not-theirs").is_visible()
        listed = page.locator("#not-theirs + ul").text_content()
        assert "not used: about another person (its focus is someone" in listed
        assert serious_violations(page) == []
    finally:
        context.close()
