"""The concise card for every demo patient and both policies, fixed as golden files.

A card must fit an EHR pop-up: at most 12 lines of detail, no FHIR references or resource ids
in anything a clinician reads (they stay in the ``iport-cds.eligibility`` extension), and
buttons only for the unknowns that could change the outcome.

To accept intended changes: UPDATE_GOLDEN=1 pytest tests/unit/test_concise_cards.py, then
review the diff of tests/golden/cards/ like any other code change.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from cds_cards import CardContext, eligibility_card
from cds_cards.render import MAX_DETAIL_LINES, MAX_SUGGESTIONS, rendered_lines
from cli.evaluate import Core, decide_file, load_core
from demo import PATIENTS_DIR
from policy import Outcome, Tri

CARDS = Path(__file__).resolve().parents[1] / "golden" / "cards"
TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
APP_URL = "https://cds.example.nhs.uk/review/launch"
POLICIES = {"iport-advance": False, "nice-insulin-pump": True}  # name → patient-view wording
PATIENTS = sorted(p.stem for p in PATIENTS_DIR.glob("*.json"))
# "Condition/abc", "Patient/iport-demo-x": any FHIR reference, in whatever a clinician reads.
FHIR_REFERENCE = re.compile(r"\b[A-Z][a-z][A-Za-z]*/[A-Za-z0-9\-.]{1,64}\b")


@functools.cache
def _core(policy: str) -> Core:
    return load_core(policy)


def card_for(policy: str, patient: str) -> dict[str, Any]:
    decision, pid = decide_file(_core(policy), PATIENTS_DIR / f"{patient}.json", TODAY, None)
    uuids = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 100))
    ctx = CardContext(
        patient_id=pid or "unknown",
        user_ref="Practitioner/demo-clinician",
        now=NOW,
        new_uuid=lambda: next(uuids),
        app_url=APP_URL,
    )
    # patient-view speaks only when the criteria are met; otherwise it is the order-hook card
    patient_view = POLICIES[policy] and decision.outcome is Outcome.MEETS
    return eligibility_card(decision, ctx, patient_view=patient_view)


def _read_texts(card: dict[str, Any]) -> list[str]:
    """Everything on the card a clinician reads (not the machine-readable extension)."""
    texts = [card["summary"], card["detail"]]
    texts += [s["label"] for s in card.get("suggestions", [])]
    texts += [a["description"] for s in card.get("suggestions", []) for a in s["actions"]]
    texts += [link["label"] for link in card["links"]]
    return texts


CASES = [(policy, patient) for policy in POLICIES for patient in PATIENTS]


@pytest.mark.parametrize(("policy", "patient"), CASES)
def test_concise_card_golden(policy: str, patient: str) -> None:
    card = card_for(policy, patient)
    expected = CARDS / policy / f"{patient}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    assert card == json.loads(expected.read_text())


@pytest.mark.parametrize(("policy", "patient"), CASES)
def test_card_fits_a_pop_up_and_names_no_resources(policy: str, patient: str) -> None:
    card = card_for(policy, patient)
    assert rendered_lines(card["detail"]) <= MAX_DETAIL_LINES, card["detail"]
    for text in _read_texts(card):
        assert not FHIR_REFERENCE.search(text), text
    assert len(card["summary"]) < 140
    assert "Advisory" in card["detail"]
    ext = card["extension"]["iport-cds.eligibility"]
    assert ext["policy"]["version"] in card["detail"]


@pytest.mark.parametrize(("policy", "patient"), CASES)
def test_buttons_only_for_decisive_confirmable_unknowns(policy: str, patient: str) -> None:
    decision, _ = decide_file(_core(policy), PATIENTS_DIR / f"{patient}.json", TODAY, None)
    card = card_for(policy, patient)
    confirmations = [
        a["resource"]["code"]["coding"][0]["code"]
        for s in card.get("suggestions", [])
        for a in s["actions"]
        if a["resource"]["resourceType"] == "Observation"
    ]
    assert len(confirmations) <= MAX_SUGGESTIONS
    for cid in confirmations:
        assert cid in decision.decisive
        assert decision.criteria[cid].result is Tri.UNKNOWN
        assert decision.criteria[cid].confirmable


def test_every_card_links_the_assessment_app_with_the_decision() -> None:
    card = card_for("iport-advance", "t2-no-specialist")
    (smart,) = [link for link in card["links"] if link["type"] == "smart"]
    assert smart["url"] == APP_URL
    assert json.loads(smart["appContext"]) == {
        "policy": "hny-iport-advance",
        "version": "2025-12-04",
        "outcome": "insufficient-information",
        "pathway": "type-2",
        "evaluated": "2026-11-21",
    }


def test_a_type_2_patient_with_needle_phobia_is_asked_only_about_the_specialist() -> None:
    card = card_for("iport-advance", "t2-no-specialist")
    labels = [s["label"] for s in card["suggestions"]]
    assert labels == ["Record that I confirm: Recommended by a diabetes specialist"]
    assert "Needle phobia" in card["detail"]  # already met: shown as deciding, not asked
    assert "MDI impractical" not in card["detail"]


def test_a_long_card_is_cut_with_a_pointer_to_the_assessment() -> None:
    # Four alternatives still open, a companion note, the "not checked" line and an unreadable
    # record: the criteria already met give way to the ones that could change the outcome.
    decision, pid = decide_file(
        _core("iport-advance"), PATIENTS_DIR / "t1-no-iport-criterion.json", TODAY, None
    )
    decision = dataclasses.replace(decision, warnings=("an HbA1c result could not be read",))
    ctx = CardContext(str(pid), None, NOW, lambda: "u", note="A companion policy's note.")
    detail = eligibility_card(decision, ctx)["detail"]
    assert rendered_lines(detail) == MAX_DETAIL_LINES
    assert "more criteria in the full assessment" in detail
    assert detail.count("could change the outcome") == 4
    assert "1 warning from reading the record" in detail


def test_there_is_a_card_golden_for_every_demo_patient() -> None:
    assert len(PATIENTS) >= 10
