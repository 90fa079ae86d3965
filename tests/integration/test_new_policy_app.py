"""A policy added as a file is in the assessment app too: the app launched for a patient,
with the new policy in the deployment's policy folder, lists it and assesses by it.

Real parts: sekmet with a demo patient, the local Authlib authorization server, the service
on a loopback port with ``POLICY_DIR`` naming a folder of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

import demo
from service import create_app
from tests.fhir_server import FhirTestServer
from tests.policy_folder import folder_with_a_copy
from tests.service_process import free_port, serving
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

NEW_ID = "local-insulin-pump"
NEW_TITLE = "Insulin pump therapy: a local copy of the NICE TA151 criteria"
PATIENT = "t1-mdi-needle-phobia"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return folder_with_a_copy(
        tmp_path_factory.mktemp("policies"), "nice-insulin-pump", NEW_ID, {"title": NEW_TITLE}, {}
    )


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    patient = demo.get_patient(PATIENT)
    fhir_server.load(patient.bundle(date.today()))
    with SmartServer(
        fhir_server.base_url, free_port(), standalone_patient=patient.patient_id
    ).serve() as s:
        yield s


@pytest.fixture(scope="module")
def service_url(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "FHIR_ALLOW_LOOPBACK": True,
            "POLICY_DIR": str(folder),
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('app') / 'audit.sqlite3'}",
        }
    )
    with serving(app) as url:
        yield url


def test_the_assessment_app_lists_and_assesses_by_a_new_policy(
    service_url: str, smart_server: SmartServer
) -> None:
    with requests.Session() as browser:
        first = browser.get(
            f"{service_url}/review/launch", params={"iss": smart_server.iss}, timeout=20
        )
        assert first.status_code == 200, first.text[:500]
        assert NEW_TITLE in first.text  # in the policy switch
        page = browser.get(f"{service_url}/review/", params={"policy": NEW_ID}, timeout=20)
        assert page.status_code == 200
        assert f"<strong>{NEW_TITLE}</strong>" in page.text  # the policy assessed
        assert 'data-outcome="meets-criteria"' in page.text
