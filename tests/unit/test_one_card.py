"""One card per patient per moment on patient-view.

When several technologies would prompt for one patient, only the one first in the policies'
precedence speaks (``presentation.patientViewPrecedence``: hybrid closed loop, then insulin
pump, then i-Port, NICE's order) and names the others in one line; the other services are
silent for that patient. A deployment may also let a patient-view card speak for a patient one
clinician judgement away from meeting the criteria (``PATIENT_VIEW_SPEAKS``).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import demo
from policy import Outcome, PolicyError, evaluate, load_policy
from policy.decide import Evaluations, decide, patient_view_turn, speaks_proactively
from policy.loading import POLICY_DIR, policy_names
from service import create_app
from tests.builders import demo_record
from tests.hooks import hook_request
from valuesets import ValueSetLibrary

TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)


GOLDEN_PATIENT_VIEW = Path(__file__).resolve().parents[1] / "golden" / "patient-view"


def client(**config: Any) -> FlaskClient:
    uuids = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 10**6))
    return create_app(
        {
            "REQUIRE_AUTH": False,
            "CLOCK": lambda: NOW,
            "UUID_FACTORY": lambda: next(uuids),
            **config,
        }
    ).test_client()


def patient_view_services(c: FlaskClient) -> list[str]:
    services = c.get("/cds-services").get_json()["services"]
    return [s["id"] for s in services if s["hook"] == "patient-view"]


def patient_view_cards(c: FlaskClient, name: str) -> dict[str, list[dict[str, Any]]]:
    """Every patient-view service's cards for a demo patient, by service id."""
    patient = demo.get_patient(name)
    resources = demo.bundle_resources(patient.bundle(TODAY))
    body = hook_request("patient-view", resources=resources, patient_id=patient.patient_id)
    out = {}
    for sid in patient_view_services(c):
        resp = c.post(f"/cds-services/{sid}", json=body)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        out[sid] = resp.get_json()["cards"]
    return out


@pytest.fixture(scope="module")
def default() -> FlaskClient:
    return client()


@pytest.mark.parametrize("name", [p.name for p in demo.list_patients()])
def test_every_demo_patient_gets_one_patient_view_card_at_most(
    default: FlaskClient, name: str
) -> None:
    cards = patient_view_cards(default, name)
    assert sum(len(c) for c in cards.values()) <= 1, {k: len(v) for k, v in cards.items()}
    patient = demo.get_patient(name)
    # the declared expectations are those of the default deployment: one card per patient
    assert (
        bool(cards["nice-insulin-pump-patient-view"]) is patient.expected["nice-insulin-pump"].card
    )
    assert (
        bool(cards["nice-hybrid-closed-loop-patient-view"])
        is patient.expected["nice-hybrid-closed-loop"].card
    )


@pytest.mark.parametrize("name", [p.name for p in demo.list_patients()])
def test_the_card_each_demo_patient_gets_on_patient_view(name: str) -> None:
    """The one card (or none) the default deployment shows each demo patient on opening the
    record: tests/golden/patient-view/<patient>.json, measured in a browser against the
    pop-up budget by tests/browser/test_card_pixel_budget.py. UPDATE_GOLDEN=1 rewrites them.
    A deployment of its own for each patient: its uuids (cards, links) count from 1."""
    cards = [
        card for sid_cards in patient_view_cards(client(), name).values() for card in sid_cards
    ]
    expected = GOLDEN_PATIENT_VIEW / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(json.dumps(cards, indent=2, ensure_ascii=False) + "\n")
    assert cards == json.loads(expected.read_text())


def test_the_child_gets_the_hybrid_closed_loop_card_naming_the_pump_and_the_iport(
    default: FlaskClient,
) -> None:
    cards = patient_view_cards(default, "t1-child-mdi-impractical")
    (card,) = cards.pop("nice-hybrid-closed-loop-patient-view")
    assert all(c == [] for c in cards.values())  # the pump and i-Port services are silent
    assert card["summary"].startswith("Meets NICE TA943 criteria for a hybrid closed loop")
    lead = card["detail"].split("\n\n")[0]
    assert lead.endswith(
        "pathway. Also meets insulin pump (NICE TA151) and i-Port Advance "
        "(Humber and North Yorkshire)."
    )
    assert any(link["type"] == "smart" for link in card.get("links", []))


def test_without_one_card_each_service_speaks_for_itself() -> None:
    cards = patient_view_cards(client(PATIENT_VIEW_ONE_CARD=False), "t1-child-mdi-impractical")
    assert {sid: len(c) for sid, c in cards.items()} == {
        "iport-advance-patient-view": 1,
        "nice-insulin-pump-patient-view": 1,
        "nice-hybrid-closed-loop-patient-view": 1,
    }
    assert all("Also meets" not in c[0]["detail"] for c in cards.values())


def test_the_precedence_is_the_policy_files(tmp_path: Path) -> None:
    """A deployment that puts the pump first (its own copy of the policy files) gets the pump
    card for the child, naming the hybrid closed loop and the i-Port."""
    for name in policy_names():
        shutil.copy(POLICY_DIR / f"{name}.json", tmp_path / f"{name}.json")
    pump_file = tmp_path / "nice-insulin-pump.json"
    doc = json.loads(pump_file.read_text(encoding="utf-8"))
    doc["presentation"]["patientViewPrecedence"] = 1
    pump_file.write_text(json.dumps(doc), encoding="utf-8")
    cards = patient_view_cards(client(POLICY_DIR=str(tmp_path)), "t1-child-mdi-impractical")
    (card,) = cards["nice-insulin-pump-patient-view"]
    assert cards["nice-hybrid-closed-loop-patient-view"] == []
    assert "hybrid closed loop (NICE TA943) and i-Port Advance" in card["detail"]


def test_a_patient_one_judgement_away_is_silent_unless_the_deployment_chooses() -> None:
    """t2-no-specialist: type 2, twice-daily insulin and needle phobia; only a diabetes
    specialist's recommendation (a clinician's confirmation) is missing."""
    silent = patient_view_cards(client(), "t2-no-specialist")
    assert silent["iport-advance-patient-view"] == []
    chosen = client(PATIENT_VIEW_SPEAKS="when-met-or-one-judgement-away")
    (card,) = patient_view_cards(chosen, "t2-no-specialist")["iport-advance-patient-view"]
    assert card["summary"].startswith("May be eligible for i-Port: one judgement away")
    assert card["indicator"] == "warning"
    labels = [s["label"] for s in card.get("suggestions", [])]
    assert any("diabetes specialist" in label.lower() for label in labels), labels
    assert any(link["type"] == "smart" for link in card["links"])  # the app, to confirm it


def test_two_judgements_away_is_not_one(vsl: ValueSetLibrary) -> None:
    """The core's reading: a confirmable unknown counts only when confirming it alone makes
    the outcome "meets"."""
    iport = load_policy("iport-advance")
    for name, expected in [
        ("t2-no-specialist", ("diabetes-specialist-recommendation",)),
        ("t1-hypo-lipohypertrophy", ("disabling-hypoglycaemia",)),
        ("t1-no-recent-hba1c", ()),  # the HbA1c is data, not a judgement
        ("t1-mdi-needle-phobia", ()),  # already meets
    ]:
        patient = demo.get_patient(name)
        record = demo_record(patient, vsl, iport.info.criteria_system, TODAY)
        decision = evaluate(iport, record, TODAY)
        assert decision.one_judgement_away == expected, name
        if expected:
            assert decision.outcome is Outcome.INSUFFICIENT


def test_an_unknown_patient_view_setting_stops_start_up() -> None:
    with pytest.raises(PolicyError, match="PATIENT_VIEW_SPEAKS 'sometimes'"):
        client(PATIENT_VIEW_SPEAKS="sometimes")


def test_a_request_evaluates_each_policy_once(vsl: ValueSetLibrary) -> None:
    """A patient-view hook reads its policy, its companions and the other patient-view
    policies: one Evaluations per request keeps each to one evaluation."""
    patient = demo.get_patient("t1-child-mdi-impractical")
    policies = [load_policy(name) for name in policy_names()]
    record = demo_record(patient, vsl, policies[0].info.criteria_system, TODAY)
    done = Evaluations(record, TODAY)
    first = [done.of(p) for p in policies]
    assert [done.of(p) for p in policies] == first
    assert all(a is b for a, b in zip(first, (done.of(p) for p in policies), strict=True))
    iport = next(p for p in policies if p.info.id == "hny-iport-advance")
    rivals = [(p, "when-met") for p in policies if p is not iport]
    turn = patient_view_turn(iport, done.of(iport), record, TODAY, rivals, evaluations=done)
    assert not turn.speaks  # the hybrid closed loop ranks first for this child
    assert decide(record, iport, TODAY, [rivals[0][0]], done).decision is first[0]


@pytest.mark.parametrize(
    ("name", "explained", "note"),
    [
        # Neither NICE technology is met for a type 2 adult: the companions are assessed
        # (criteria and outcome) but nothing they would explain is ever read.
        ("t2-specialist-bd-insulin", ["hny-iport-advance"], False),
        # The hybrid closed loop is met: its note leads the i-Port card, and whether it
        # speaks needs only its criteria and outcome.
        ("t1-hcl-pregnant", ["hny-iport-advance"], True),
    ],
)
def test_a_companion_note_needs_no_explanation_of_the_companion(
    vsl: ValueSetLibrary, name: str, explained: list[str], note: bool
) -> None:
    patient = demo.get_patient(name)
    policies = {p.info.id: p for p in (load_policy(n) for n in policy_names())}
    record = demo_record(patient, vsl, policies["hny-iport-advance"].info.criteria_system, TODAY)
    iport = policies["hny-iport-advance"]
    companions = [policies[c] for c in iport.companions]
    done = Evaluations(record, TODAY)
    decided = decide(record, iport, TODAY, companions, done)
    assert list(done.explained) == explained
    assert (decided.companion_note is not None) is note
    # The note explaining every companion in full gives.
    assert decided.companion_note == next(
        (
            c.info.presentation.get("companionNote")
            for c in companions
            if speaks_proactively(evaluate(c, record, TODAY), record)
        ),
        None,
    )
