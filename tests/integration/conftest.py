"""Fixtures for integration tests against a real FHIR R4 server (sekmet, see tests/fhir_server.py).

The first run creates <repo>/.cache/sekmet-venv and pip-installs sekmet-fhir into it (~30 s);
later runs reuse it. Each test session gets one fresh, empty, in-memory server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fhir_server import DEFAULT_VENV, FhirTestServer, ensure_sekmet


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirTestServer]:
    """A running sekmet FHIR server shared by the whole session; use unique ids per test module."""
    exe = ensure_sekmet(DEFAULT_VENV)
    with FhirTestServer(exe) as server:
        yield server


@pytest.fixture(scope="module")
def review_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with its assessment app on a loopback port, one per test module."""
    from tests.integration.ehr import review_service

    with review_service(tmp_path_factory.mktemp("review")) as url:
        yield url
