"""The command line starts as the service does and decides as it does.

``iport-cds evaluate`` (one file or a population) reads the deployment's settings (the config
file and IPORT_CDS_* variables): its POLICY_PARAMETERS and VALUESET_EXTRA_DIR reach the core
exactly as they reach the service, and the decision is the one a hook call gets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import demo
from cds_cards import EXTENSION_KEY
from service import create_app
from tests.cli.conftest import TODAY, Run, one_line_error
from tests.hooks import SERVICE, hook_request

Cli = Callable[..., Run]
PATIENT = demo.get_patient("t1-hypo-lipohypertrophy")  # latest HbA1c 58 mmol/mol
LOWER = {"iportHba1cThreshold": 40, "niceHba1cThreshold": 40}
HBA1C = ("hba1c-69-or-above-on-mdi", "hba1c-above-69-with-poor-adherence")


def _hba1c_results(criteria: list[dict[str, Any]]) -> dict[str, str]:
    return {c["id"]: c["result"] for c in criteria if c["id"] in HBA1C}


def _cli_criteria(cli: Cli) -> list[dict[str, Any]]:
    run = cli("evaluate", str(PATIENT.path), "--today", TODAY.isoformat(), "--json")
    assert run.code == 0, run.err
    criteria: list[dict[str, Any]] = json.loads(run.out)["criteria"]
    return criteria


def test_a_policy_parameter_override_reaches_evaluate(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _hba1c_results(_cli_criteria(cli)) == dict.fromkeys(HBA1C, "not-met")
    monkeypatch.setenv("IPORT_CDS_POLICY_PARAMETERS", json.dumps(LOWER))
    assert _hba1c_results(_cli_criteria(cli)) == {HBA1C[0]: "met", HBA1C[1]: "unknown"}


def test_evaluate_and_a_hook_call_decide_alike_under_the_same_override(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPORT_CDS_POLICY_PARAMETERS", json.dumps(LOWER))
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "CLOCK": lambda: datetime(2026, 11, 21, 10, tzinfo=UTC),
            "PATIENT_VIEW_ONE_CARD": False,  # the i-Port card, whichever technology ranks first
        }
    )
    resources = demo.bundle_resources(PATIENT.bundle(TODAY))
    body = hook_request("patient-view", resources=resources, patient_id=PATIENT.patient_id)
    with app.test_client() as client:
        resp = client.post(f"/cds-services/{SERVICE['patient-view']}", json=body)
    assert resp.status_code == 200
    (card,) = resp.json["cards"]
    from_service = card["extension"][EXTENSION_KEY]["criteria"]
    assert _hba1c_results(from_service) == {HBA1C[0]: "met", HBA1C[1]: "unknown"}
    assert _cli_criteria(cli) == from_service


def test_a_misspelt_override_stops_evaluate_with_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPORT_CDS_POLICY_PARAMETERS", json.dumps({"hba1cLookbakMonths": 6}))
    run = cli("evaluate", str(PATIENT.path), "--today", TODAY.isoformat())
    assert run.code == 2
    assert "hba1cLookbakMonths" in one_line_error(run)
